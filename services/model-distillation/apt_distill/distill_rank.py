"""One rank of a data-parallel distillation: ``python -m apt_distill.distill_rank RUN_FOLDER``,
started by torchrun from ``apt_distill.distill.run_distill`` (apt_model.modeling.distributed)."""

from __future__ import annotations

from apt_model.modeling.distributed import spec_rank_main

from apt_distill.distill import OPERATION, run_distill
from apt_distill.spec import DistillSpec

if __name__ == "__main__":
    spec_rank_main({OPERATION: (DistillSpec, run_distill)})
