"""One rank of a data-parallel pruning job: ``python -m apt_prune.prune_rank RUN_FOLDER``,
started by torchrun from ``apt_prune.prune.run_prune`` (apt_model.modeling.distributed)."""

from __future__ import annotations

from apt_model.modeling.distributed import spec_rank_main

from apt_prune.prune import OPERATION, run_prune
from apt_prune.spec import PruneSpec

if __name__ == "__main__":
    spec_rank_main({OPERATION: (PruneSpec, run_prune)})
