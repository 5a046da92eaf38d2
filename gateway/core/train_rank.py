"""One rank of a data-parallel ``train`` job: ``python -m gateway.core.train_rank RUN_FOLDER``,
started by torchrun from ``gateway.core.train.run_train`` (apt_model.modeling.distributed)."""

from __future__ import annotations

from apt_model.modeling.distributed import rank_main
from apt_model.store import Store
from gateway.core.train import TrainSpec, run_train


def _run(payload: dict, ctx, ranks) -> dict:
    spec = payload["spec"]
    spec = TrainSpec(**{**spec, "corpus_paths": tuple(spec["corpus_paths"])})  # validated by the job's owner
    return run_train(Store(payload["home"]), spec, ctx, ranks, job_id=payload.get("job_id", ""))


if __name__ == "__main__":
    rank_main(_run)
