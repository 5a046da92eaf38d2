"""One rank of a data-parallel pruning job: ``python -m apt_prune.prune_rank RUN_FOLDER``,
started by torchrun from ``apt_prune.prune.run_prune`` (apt_model.modeling.distributed)."""

from __future__ import annotations

from apt_model.modeling.distributed import rank_main
from apt_model.store import Store

from apt_prune.prune import run_prune
from apt_prune.spec import PruneSpec


def _run(payload: dict, ctx, ranks) -> dict:
    return run_prune(Store(payload["home"]), PruneSpec(**payload["spec"]), ctx, ranks)  # validated by the job's owner


if __name__ == "__main__":
    rank_main(_run)
