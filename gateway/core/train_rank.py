"""One rank of a data-parallel ``train`` job: ``python -m gateway.core.train_rank RUN_FOLDER``,
started by torchrun from ``gateway.core.train.run_train`` (apt_model.modeling.distributed), or in
the pods of a multi-node run's PyTorchJob (apt_model.runtime.pytorchjob)."""

from __future__ import annotations

from apt_model.modeling.distributed import spec_rank_main
from gateway.core.train import OPERATION_KEY, TrainSpec, run_train

if __name__ == "__main__":
    spec_rank_main({OPERATION_KEY: (TrainSpec, run_train)})
