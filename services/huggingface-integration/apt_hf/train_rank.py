"""One rank of a data-parallel Trainer run: ``python -m apt_hf.train_rank RUN_FOLDER``, started by
torchrun from ``apt_hf.trainer.run_train`` (apt_model.modeling.distributed)."""

from __future__ import annotations

from apt_model.modeling.distributed import rank_main
from apt_model.store import Store

from apt_hf.trainer import TrainSpec, run_train


def _run(payload: dict, ctx, ranks) -> dict:
    return run_train(Store(payload["home"]), TrainSpec(**payload["spec"]), ctx, ranks)  # validated by the job's owner


if __name__ == "__main__":
    rank_main(_run)
