"""One rank of a data-parallel ``train`` job: ``python -m gateway.core.train_rank RUN_FOLDER``,
started by torchrun from ``gateway.core.train.run_train`` (apt_model.modeling.distributed), or in
the pods of a multi-node run's PyTorchJob (apt_model.runtime.pytorchjob)."""

from __future__ import annotations

import os

from apt_model.modeling.distributed import rank_main
from apt_model.store import Store
from gateway.core.train import TrainSpec, run_train


def _run(payload: dict, ctx, ranks) -> dict:
    spec = payload["spec"]
    spec = TrainSpec(**{**spec, "corpus_paths": tuple(spec["corpus_paths"])})  # validated by the job's owner
    # the launcher's store; a PyTorchJob pod's is where it mounts the store PVC (apt_model.runtime.pytorchjob)
    home = payload.get("home") or os.environ["APT_HOME"]
    return run_train(Store(home), spec, ctx, ranks)


if __name__ == "__main__":
    rank_main(_run)
