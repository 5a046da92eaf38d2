"""A distillation run's resumable checkpoint: the platform's one format and rules
(``apt_model.modeling.checkpoint``) under ``APT_HOME/checkpoints/distill/<output>/``, holding
the student, the learned projections, the optimiser and the RNG states.

A resume must use the settings the run was started with, except those in ``FREE_FIELDS``.
"""

from __future__ import annotations

from apt_model.modeling.checkpoint import RunCheckpoint
from apt_model.store import Store

from apt_distill.spec import DistillSpec

KIND = "distill"
# Settings that may change between the interrupted run and its resume.
# 2 ranks' state (on 1 or 2 nodes) resumes on 1, and a DDP run's under FSDP or back: checkpoints are whole either way
FREE_FIELDS = ("device", "eval_every", "checkpoint_every", "workers", "nodes", "sharding")


def of(store: Store, spec: DistillSpec) -> RunCheckpoint:
    return RunCheckpoint(store, KIND, spec.output_name)


def settings(spec: DistillSpec) -> dict:
    """The settings that shape the run (what a resume must repeat)."""
    return {k: v for k, v in spec.lineage().items() if k not in FREE_FIELDS}
