"""One rank of a data-parallel distillation: ``python -m apt_distill.distill_rank RUN_FOLDER``,
started by torchrun from ``apt_distill.distill.run_distill`` (apt_model.modeling.distributed)."""

from __future__ import annotations

from apt_model.modeling.distributed import rank_main
from apt_model.store import Store

from apt_distill.distill import run_distill
from apt_distill.spec import spec_from_payload


def _run(payload: dict, ctx, ranks) -> dict:
    return run_distill(Store(payload["home"]), spec_from_payload(payload["spec"]), ctx, ranks)  # validated by the job's owner


if __name__ == "__main__":
    rank_main(_run)
