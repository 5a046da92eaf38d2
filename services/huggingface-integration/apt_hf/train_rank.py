"""One rank of a data-parallel Trainer run: ``python -m apt_hf.train_rank RUN_FOLDER``, started by
torchrun from ``apt_hf.trainer.run_train`` (apt_model.modeling.distributed), here or in each pod
of its Kubeflow PyTorchJob (apt_model.runtime.pytorchjob)."""

from __future__ import annotations

from apt_model.modeling.distributed import spec_rank_main

from apt_hf.trainer import OPERATION, TrainSpec, run_train

if __name__ == "__main__":
    spec_rank_main({OPERATION: (TrainSpec, run_train)})
