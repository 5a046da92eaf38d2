"""Where a training job's ranks run (#18): ``workers`` ranks under torchrun on this machine, or,
with ``nodes`` > 1, ``workers`` ranks in each pod of a Kubeflow PyTorchJob of this plugin's own
image, which the service submits, follows into the job and deletes on a cancel (the kubernetes
deployer only: the servicer refuses nodes > 1 under any other at Start). Either way the ranks run
``apt_reason.ranks``, each calling the operation's job function with its ``Ranks``."""

from __future__ import annotations

from typing import Any

from apt_model import errors
from apt_model.modeling import distributed
from apt_model.runtime import pytorchjob
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store

RANK_MODULE = "apt_reason.ranks"
SERVICE_ACCOUNT = "apt-reasoning-training"  # its pod's, which may submit PyTorchJobs (plugin.yaml multi_node)


def check_layout(batch_size: int, workers: int, nodes: int, batch_field: str = "batch_size") -> tuple[int, int]:
    """A request's (workers, nodes), 0 read as 1, or INVALID_ARGUMENT naming the field: the global
    batch ``batch_field`` must split evenly over the workers x nodes ranks."""
    workers, nodes = workers or 1, nodes or 1
    for field_name, why in distributed.check_layout(batch_size, workers, nodes, batch_field):
        raise errors.InvalidArgument(why + ".", violations=[(field_name, why)])
    return workers, nodes


def run_ranks(operation: str, kind: str, store: Store, spec, ctx: JobContext) -> dict[str, Any]:
    """Run ``spec`` (a dataclass with ``workers``, ``nodes``, ``output_name``) as ``operation`` of
    ``apt_reason.ranks`` in the run folder ``<kind>-<output_name>`` and return rank 0's result."""
    if spec.nodes > 1:
        return pytorchjob.run_spec(RANK_MODULE, operation, spec, kind, spec.output_name, store.root, ctx,
                                   pytorchjob.Cluster.from_env(), SERVICE_ACCOUNT)
    return distributed.launch_spec(RANK_MODULE, operation, store.root, spec, ctx, f"{kind}-{spec.output_name}")
