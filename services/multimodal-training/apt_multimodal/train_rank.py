"""One rank of a data-parallel StartTrain: ``python -m apt_multimodal.train_rank RUN_FOLDER``,
started by torchrun from ``apt_multimodal.train.run_train`` (apt_model.modeling.distributed), here
or in each pod of a multi-node run's PyTorchJob (apt_model.runtime.pytorchjob)."""

from __future__ import annotations

from apt_model.modeling.distributed import spec_rank_main

from apt_multimodal.train import OPERATION, TrainSpec, run_train

if __name__ == "__main__":
    spec_rank_main({OPERATION: (TrainSpec, run_train)})
