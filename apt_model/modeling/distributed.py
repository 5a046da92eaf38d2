"""Data-parallel training on ``torch.distributed``: a training job with ``workers`` > 1 runs
its ranks under torchrun (``torch.distributed.run``: the elastic agent, c10d rendezvous on
loopback), gloo on CPU and NCCL on CUDA, DDP over the service's own loss.

The service process that owns the job (``launch``) writes the job's payload into a run folder,
starts torchrun there and relays what rank 0 writes (progress, warnings, the result) to the
job; a cancelled job leaves a ``cancel`` file that every rank sees at the same step (the flag
is all-reduced), so the ranks checkpoint and stop together. A rank that fails leaves its error
(``error-<rank>.json``) and the elastic agent stops the others; the job fails with that rank's
error, or, for a rank that died without one (killed), with torchrun's account of it.

Inside a rank, ``Ranks`` is this process's place in the run, and ``RankContext`` the job
context the training loop talks to (``apt_model.modeling.loop.Loop`` takes ``ranks``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from apt_model import errors
from apt_model.runtime.joblog import JobLog, job_log_path

EVENTS = "events.jsonl"   # rank 0's reports and warnings, one JSON object a line
RESULT = "result.json"    # rank 0's result
PAYLOAD = "job.json"      # what the ranks run: written by the launcher
CANCEL = "cancel"         # present once the job was cancelled
STOP_GRACE_SECONDS = 20   # after a cancel, how long the ranks get to checkpoint before SIGKILL
POLL_SECONDS = 0.2
LOG_TAIL_LINES = 120   # of torchrun's output, logged when a run fails: its report and a dead rank's stacks

MAX_WORKERS = 64
MAX_NODES = 64

log = logging.getLogger("apt.distributed")


def check_layout(batch_size: int, workers: int, nodes: int = 1,
                 batch_field: str = "batch_size") -> list[tuple[str, str]]:
    """The violations of a data-parallel request's ``workers``, ``nodes`` and ``batch_size`` (each
    of the workers x nodes ranks trains an equal share of the global batch), as (field, why) pairs
    for the caller's INVALID_ARGUMENT: the same rule for every training operation. ``batch_field``:
    the request's name for its global batch (RL's ``questions_per_step``)."""
    if not 1 <= workers <= MAX_WORKERS:
        return [("workers", f"workers must be in 1..{MAX_WORKERS}")]
    if not 1 <= nodes <= MAX_NODES:
        return [("nodes", f"nodes must be in 1..{MAX_NODES}")]
    if batch_size % (workers * nodes):
        ranks = f"workers x nodes ({workers * nodes})" if nodes > 1 else f"workers ({workers})"
        return [(batch_field, f"{batch_field} ({batch_size}) must be a multiple of {ranks}: "
                              "each rank trains an equal share of the global batch")]
    return []


def refuse_multi_node(nodes: int, verb: str, deployer: str) -> None:
    """Multi-node runs are Kubeflow PyTorchJobs, which only the kubernetes deployer submits:
    FAILED_PRECONDITION saying what to do instead under the others."""
    if nodes > 1 and deployer != "kubernetes":
        raise errors.FailedPrecondition(
            f"Multi-node training (nodes > 1) runs as a Kubeflow PyTorchJob, which needs the kubernetes deployer "
            f"(APT_DEPLOYER=kubernetes, now {deployer}) and the Kubeflow training operator in the cluster "
            f"(docs/scaling.md); {verb} on one machine with --workers N instead.",
            reason="MULTI_NODE_NEEDS_KUBERNETES")


@dataclass(frozen=True)
class Ranks:
    """This process's place in a data-parallel run (one rank of one when not under torchrun)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls) -> "Ranks":
        return cls(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def init(self, device: str) -> None:
        """Join the process group (torchrun's env:// rendezvous); nothing for one rank."""
        if self.world > 1:
            import torch.distributed as dist

            if device == "cuda":
                import torch

                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl" if device == "cuda" else "gloo")

    def close(self, *, wait_for_all: bool = False) -> None:
        """Leave the process group; ``wait_for_all``: first wait until every rank leaves it too (a
        rank that is done closes no connection a peer still uses: rank 0 stores the model after
        the last collective)."""
        if self.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                if wait_for_all:
                    dist.barrier()
                dist.destroy_process_group()

    def shard(self, batch):
        """This rank's rows of a global batch that every rank drew the same (contiguous, equal)."""
        if self.world == 1:
            return batch
        per = len(batch) // self.world
        return batch[self.rank * per:(self.rank + 1) * per]

    def agree(self, values: dict[str, float], flags: dict[str, bool]) -> tuple[dict[str, float], dict[str, bool]]:
        """In one all-reduce: the mean over the ranks of each value (the global batch's loss) and,
        for each flag, whether it is set on any rank (so every rank takes the same branch)."""
        if self.world == 1:
            return values, flags
        import torch
        import torch.distributed as dist

        keys, names = sorted(values), sorted(flags)
        t = torch.tensor([values[k] for k in keys] + [1.0 if flags[n] else 0.0 for n in names], dtype=torch.float64,
                         device=_collective_device())
        dist.all_reduce(t)
        out = t.tolist()
        return ({k: v / self.world for k, v in zip(keys, out)},
                {n: v > 0 for n, v in zip(names, out[len(keys):])})

    def sums(self, *counts: float) -> list[float]:
        """Each count summed over the ranks, in one all-reduce: the global batch's count of what
        the ranks hold unequal numbers of (the labelled tokens of variable-length rows, the
        groups a filter kept); the counts themselves for one rank."""
        if self.world == 1:
            return [float(c) for c in counts]
        import torch
        import torch.distributed as dist

        t = torch.tensor([float(c) for c in counts], dtype=torch.float64, device=_collective_device())
        dist.all_reduce(t)
        return t.tolist()

    def gather(self, items: list) -> list:
        """Every rank's ``items`` (JSON-like values), concatenated in rank order: with contiguous
        shards (``shard``), the global batch's order; ``items`` itself for one rank."""
        if self.world == 1:
            return list(items)
        import torch.distributed as dist

        parts: list = [None] * self.world
        dist.all_gather_object(parts, items)
        return [x for part in parts for x in part]

    def part_of_mean(self, mean, count: float, total: float):
        """This rank's part of a mean over the global batch's ``total`` items, from ``mean``, the
        mean over its own ``count`` of them: scaled so that the mean over the ranks (DDP's, of the
        gradients; ``agree``'s, of the logged terms) is the global mean one process computes. A
        rank holding none of the items (``count`` 0) adds nothing, its graph kept for DDP."""
        if self.world == 1:
            return mean
        return mean * (count * self.world / total) if total else mean * 0.0

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def wrap(self, module, device: str, find_unused: bool = False, sharding: str = "ddp", blocks=()):
        """``module`` under DDP (gradients averaged over the ranks in backward); itself for one rank.
        ``find_unused``: some parameters may get no gradient in a step (an objective's unused term).
        ``sharding="fsdp"``: FSDP2 instead (``fully_shard`` on each of ``blocks``, then on ``module``,
        in place): every rank holds 1/world of the weights, gradients and optimiser moments; the
        optimiser must be built after this, on the sharded parameters (DTensors)."""
        if self.world == 1:
            return module
        if sharding == "fsdp":
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.fsdp import fully_shard

            # the run's device, not torch's default accelerator: --device cpu on a GPU machine shards on CPU
            mesh = init_device_mesh("cuda" if device == "cuda" else "cpu", (self.world,))
            for block in blocks:  # a block's weights are gathered only while it runs
                fully_shard(block, mesh=mesh)
            return fully_shard(module, mesh=mesh)  # the rest (embeddings, head, final norm) around the whole forward
        from torch.nn.parallel import DistributedDataParallel

        # bucket views: the gradients are the all-reduce buckets, not copied into them
        return DistributedDataParallel(module, device_ids=[int(os.environ.get("LOCAL_RANK", "0"))]
                                       if device == "cuda" else None, gradient_as_bucket_view=True,
                                       find_unused_parameters=find_unused)


SHARDINGS = ("ddp", "fsdp")


def check_sharding(sharding: str) -> list[tuple[str, str]]:
    """The violation of a ``sharding`` request field, as (field, why) pairs (INVALID_ARGUMENT)."""
    if sharding not in SHARDINGS:
        return [("sharding", f"unknown sharding {sharding!r}; choose one of {', '.join(SHARDINGS)}")]
    return []


def require_sharding(sharding: str) -> str:
    """A request's ``sharding`` (empty: ddp), or INVALID_ARGUMENT naming the field."""
    sharding = sharding or "ddp"
    for field_name, why in check_sharding(sharding):
        raise errors.InvalidArgument(why + ".", violations=[(field_name, why)])
    return sharding


@dataclass
class Parallel:
    """A run's loss module over its ranks (``parallelize``) and the optimizer that steps it."""

    loss: Any              # what the training step calls: DDP, the FSDP2 root, or the plain module
    optimizer: Any
    sharded: Any = None    # the FSDP2 root (``loss``) whose shards a checkpoint gathers; None otherwise

    @property
    def no_sync(self):
        """The context that skips the gradient reduction of a micro-batch (None for one rank)."""
        if self.sharded is not None:
            return functools.partial(fsdp_no_sync, self.sharded)
        return getattr(self.loss, "no_sync", None)


def parallelize(ranks: Ranks, module, device: str, optimizer, make_optimizer: Callable[[], Any], *,
                sharding: str = "ddp", blocks=(), optimizer_state: dict | None = None,
                find_unused: bool = False) -> Parallel:
    """``module`` (a run's loss module) over ``ranks`` (``Ranks.wrap``) with its optimizer, a resumed
    run's ``optimizer_state`` (``state_dict`` form, of any world size and sharding) loaded into it.
    DDP or one rank: ``optimizer`` itself. FSDP2: ``fully_shard`` on each of ``blocks`` then on
    ``module``, and the optimizer built again (``make_optimizer()``, which must number the parameters
    as ``optimizer`` does) on the shards, each rank keeping its share of the moments."""
    loss = ranks.wrap(module, device, find_unused=find_unused, sharding=sharding, blocks=blocks)
    if sharding != "fsdp" or ranks.world == 1:
        if optimizer_state is not None:
            optimizer.load_state_dict(optimizer_state)
        return Parallel(loss, optimizer)
    optimizer = make_optimizer()
    if optimizer_state is not None:
        load_optimizer_state(loss, optimizer, optimizer_state)
    return Parallel(loss, optimizer, loss)


@contextlib.contextmanager
def fsdp_no_sync(module):
    """FSDP2's counterpart of DDP's ``no_sync``: no gradient reduce-scatter in the block (the
    micro-batches before an optimiser step's last), gradients accumulate unsharded."""
    module.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        module.set_requires_gradient_sync(True)


def full_tensor(value):
    """A DTensor's whole value (a collective: every rank calls it); any other value itself."""
    return value.full_tensor() if hasattr(value, "full_tensor") else value


def full_state(module, optimizer=None) -> tuple[dict, dict | None]:
    """The unsharded state of an FSDP2 ``module`` (and its optimizer), on CPU, on rank 0 (empty on
    the others); a collective, every rank calls it. The optimizer's state is returned in
    ``torch.optim.Optimizer.state_dict`` form (parameters numbered in the optimizer's order), so a
    checkpoint of an FSDP run loads in a run of one rank, or of DDP, as one of theirs does."""
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                         get_optimizer_state_dict)

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_sd = get_model_state_dict(module, options=opts)
    if optimizer is None:
        return model_sd, None
    osd = get_optimizer_state_dict(module, optimizer, options=opts)
    if not osd:  # not rank 0
        return model_sd, None
    order = {fqn: i for i, fqn in enumerate(f for g in osd["param_groups"] for f in g["params"])}
    return model_sd, {"state": {order[fqn]: v for fqn, v in osd["state"].items()},
                      "param_groups": [{**g, "params": [order[f] for f in g["params"]]} for g in osd["param_groups"]]}


def submodule_state(state: dict, prefix: str) -> dict:
    """The entries of ``state`` under submodule ``prefix`` (``"model"``), keyed as that submodule's
    own ``state_dict``: a run's loss module's state, split into the parts a checkpoint keeps."""
    return {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}


def whole_states(parts: dict, optimizer, ranks: Ranks, sharded=None) -> tuple[dict, dict] | None:
    """The ``state_dict`` of each of ``parts`` (the modules a checkpoint keeps, by the name the run's
    loss module holds each under, or the root itself) and of the optimizer, whole, on rank 0; None on
    the others. Under
    FSDP (``sharded``: the run's root, that loss module) they are gathered from every rank's shards
    (a collective: every rank calls it); otherwise rank 0's own. The same form for any world size
    and sharding, so a checkpoint of either resumes under the other."""
    if sharded is not None:
        state, optimizer_state = full_state(sharded, optimizer)
        return ({name: state if module is sharded else submodule_state(state, name)
                 for name, module in parts.items()}, optimizer_state) if ranks.main else None
    if not ranks.main:
        return None
    return {name: module.state_dict() for name, module in parts.items()}, optimizer.state_dict()


def gather_model(sharded, model, prefix: str, ranks: Ranks, build: Callable | None = None):
    """An FSDP run's ``model`` (submodule ``prefix`` of the sharded root, or the root itself), whole,
    as a plain model of its config (``build(config)``; a causal LM's by default) on rank 0, for
    storing; None on the others. A collective: every rank calls it."""
    from apt_model.modeling.preset import create_model

    state, _ = full_state(sharded)
    if not ranks.main:
        return None
    plain = (build or create_model)(model.config)
    plain.load_state_dict(state if model is sharded else submodule_state(state, prefix))
    return plain


def load_optimizer_state(module, optimizer, state: dict) -> None:
    """Load a ``state_dict``-form optimizer state (a checkpoint's, of any world size) into the
    optimizer of an FSDP2 ``module``: each rank keeps its shard of every moment."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = {id(p): n for n, p in module.named_parameters()}
    fqns = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
    # a parameter that never had a gradient (a layer the loss does not reach) has no moments: empty,
    # as in the optimizer's own state_dict, where torch's loader wants an entry for each
    osd = {"state": {**{fqn: {} for fqn in fqns}, **{fqns[i]: v for i, v in state["state"].items()}},
           "param_groups": [{**g, "params": [fqns[i] for i in g["params"]]} for g in state["param_groups"]]}
    set_optimizer_state_dict(module, optimizer, osd, options=StateDictOptions(full_state_dict=True))


def _collective_device() -> str:
    """Where a collective's tensor must live: NCCL reduces CUDA tensors, gloo CPU ones."""
    import torch.distributed as dist

    return "cuda" if dist.get_backend() == "nccl" else "cpu"


def global_masked_mean(values, mask):
    """The mean of ``values`` where ``mask`` is set, over the global batch of a data-parallel run
    (summed over the ranks; this rank's alone otherwise). For statistics that need no gradient
    (a frozen teacher's scale): the all-reduce does not carry one."""
    import torch
    import torch.distributed as dist

    m = mask.to(values.dtype)
    parts = torch.stack([(values.detach() * m).sum(), m.sum()]).double()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        parts = parts.to(_collective_device())
        dist.all_reduce(parts)
    return (parts[0] / parts[1].clamp_min(1.0)).to(device=values.device, dtype=values.dtype)


class RankContext:
    """The job context inside a rank: rank 0 reports and warns (into the run folder, for the
    launcher to relay) and keeps the job's running log (``running_log``, the launching job's);
    every rank sees a cancel (the launcher's file in the run folder)."""

    def __init__(self, folder: Path, ranks: Ranks, owner: int | None = None, running_log: JobLog | None = None):
        self.folder, self.ranks, self.owner = Path(folder), ranks, owner
        self.running_log = running_log if ranks.main else None

    def report(self, progress=None, stage=None, message=None, eta_seconds=None, **metrics) -> None:
        if self.ranks.main:
            self._write({"report": {"progress": progress, "stage": stage, "message": message,
                                    "eta_seconds": eta_seconds, **metrics}})

    def warn(self, text: str) -> None:
        if self.ranks.main:
            self._write({"warn": text})

    def check_cancelled(self) -> None:
        """Local, never a collective (rank 0 may call it alone, after the others are done); in
        the training loop the ranks agree on ``cancelled`` instead (``Ranks.agree``)."""
        if self.cancelled:
            raise errors.Cancelled("The job was cancelled.")

    @property
    def cancelled(self) -> bool:
        """The job was cancelled, or the process that owns it is gone (a killed service must not
        leave its ranks training for no one: they checkpoint and stop as on a cancel)."""
        return (self.folder / CANCEL).exists() or (self.owner is not None and not _alive(self.owner))

    def _write(self, event: dict) -> None:
        with open(self.folder / EVENTS, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(event, default=float) + "\n")


def rank_main(run: Callable[[dict, RankContext, Ranks], dict]) -> None:
    """The body of a rank's ``__main__``: ``run(payload, ctx, ranks)`` in the run folder given as
    the first argument; rank 0's result goes to ``result.json``, a rank's error to
    ``error-<rank>.json`` (then it exits 1, and the elastic agent stops the others).

    A rank ends with ``_exit``, skipping the interpreter's shutdown: once the group is left,
    all that shutdown does is tear down what torch still holds (FSDP's sharded modules, their
    device mesh, gloo's threads) in an order nobody controls. In CI on 2026-12-07 a rank of an
    FSDP run died with SIGABRT ("terminate called without an active exception") after its last
    collective, with no error of its own, and failed a run whose model rank 0 was storing."""
    folder = Path(sys.argv[1])
    ranks = Ranks.from_env()
    payload = json.loads((folder / PAYLOAD).read_text())
    if "report_seconds" in payload:  # the launcher's training-loop report interval (``launch``)
        from apt_model.modeling import loop

        loop.REPORT_SECONDS = float(payload["report_seconds"])
    try:
        # the launching job's running log, in this rank's view of the store
        job_id, home = payload.get("job_id"), store_home(payload)
        running_log = JobLog(job_log_path(Path(home), job_id)) if job_id and home else None
        result = run(payload, RankContext(folder, ranks, payload.get("owner_pid"), running_log), ranks)
        if ranks.main:
            tmp = folder / f".{RESULT}.tmp"
            tmp.write_text(json.dumps(result, default=float))
            os.replace(tmp, folder / RESULT)
    except BaseException as exc:  # noqa: BLE001 - every way a rank ends badly is the job's error
        kind = type(exc).__name__ if isinstance(exc, errors.AptError) else "AptError"
        message = exc.message if isinstance(exc, errors.AptError) else f"{type(exc).__name__}: {exc}"
        (folder / f"error-{ranks.rank}.json").write_text(json.dumps(
            {"type": kind, "message": message, "reason": getattr(exc, "reason", "INTERNAL"), "time": time.time()}))
        ranks.close()
        _exit(1)
    ranks.close(wait_for_all=True)
    _exit(0)


def _exit(code: int) -> None:
    """End the rank now: its output flushed, without the interpreter's shutdown (``rank_main``)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def store_home(payload: dict) -> str | None:
    """The store a rank works in: the launcher's (``home`` in the payload); a PyTorchJob pod's
    payload has none, its store is where it mounts the PVC, its APT_HOME."""
    return payload.get("home") or os.environ.get("APT_HOME")


def logging_job(ctx) -> str:
    """The id whose running log rank 0 keeps (``rank_main``): the job's, when its context keeps one
    (``JobContext.running_log``; a test's recorder does not)."""
    return ctx.job_id if getattr(ctx, "running_log", None) is not None else ""


def launch_spec(module: str, operation: str, home: Path, spec, ctx, run: str) -> dict[str, Any]:
    """``launch`` of a job whose work is ``work(store, spec, ctx, ranks)`` (``spec``: a dataclass
    with ``workers``, and ``threads`` per rank if it sets them), in the run folder
    ``home/.runs/<run>``; ``module`` runs ``spec_rank_main``."""
    payload = {"operation": operation, "home": str(home), "spec": dataclasses.asdict(spec)}
    return launch(module, payload, spec.workers, Path(home) / ".runs" / run, ctx,
                  threads=getattr(spec, "threads", 0) or 1)


def spec_rank_main(operations: dict[str, tuple[type, Callable]]) -> None:
    """The ``__main__`` of a rank module of ``launch_spec``: ``operations`` maps each operation
    name to (spec class, work function); the rank rebuilds the spec (validated by the job's
    owner) and calls ``work(Store(home), spec, ctx, ranks)``."""
    from apt_model.store import Store

    def tuples(v):  # JSON lists back into the spec's tuples
        return tuple(tuples(x) for x in v) if isinstance(v, list) else v

    def run(payload: dict, ctx: RankContext, ranks: Ranks) -> dict:
        spec_class, work = operations[payload["operation"]]
        spec = spec_class(**{k: tuples(v) for k, v in payload["spec"].items()})
        home = store_home(payload)
        if home is None:
            raise RuntimeError("This rank has no store: its payload names no home and APT_HOME is not set.")
        return work(Store(home), spec, ctx, ranks)

    rank_main(run)


def write_payload(folder: Path, payload: dict[str, Any]) -> None:
    """A run folder for a new start of its ranks: what an earlier run left (events, result, cancel,
    rank errors) removed, then the ranks' payload written."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (EVENTS, RESULT, CANCEL, *[p.name for p in folder.glob("error-*.json")]):
        (folder / stale).unlink(missing_ok=True)
    (folder / PAYLOAD).write_text(json.dumps(payload))


def launch(module: str, payload: dict[str, Any], workers: int, folder: Path, ctx, *,
           threads: int = 1, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python -m module FOLDER`` as ``workers`` ranks under torchrun and follow it as the job
    ``ctx``; returns rank 0's result, or raises the failed rank's error (``errors.Cancelled`` after
    a cancel)."""
    from apt_model.modeling import loop  # (it imports this module)

    # the ranks report as often as this process's training loop would: a test that follows every
    # step (and cancels at one) sets that interval to 0 here, in the launching process
    write_payload(folder, {**payload, "job_id": logging_job(ctx), "owner_pid": os.getpid(),
                           "report_seconds": loop.REPORT_SECONDS})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={workers}",
           "--monitor-interval=0.5", "-m", module, str(folder)]
    # the ranks import what this process imports (a plugin's own package is on its sys.path)
    path = os.pathsep.join(p for p in [*sys.path, os.environ.get("PYTHONPATH", "")] if p)
    run_env = {**os.environ, **(env or {}), "PYTHONPATH": path, "OMP_NUM_THREADS": str(max(threads, 1)),
               "TORCHELASTIC_ERROR_FILE": str(folder / "torchrun-error.json"),
               # a rank that crashes (SIGABRT, SIGSEGV) prints every thread's Python stack to the log
               "PYTHONFAULTHANDLER": "1"}
    out = open(folder / "torchrun.log", "wb")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=run_env, start_new_session=True)
    relay = _Relay(folder / EVENTS, ctx)
    cancelled_at = None
    try:
        while proc.poll() is None:
            relay.pump()
            if cancelled_at is None and ctx.cancelled:
                (folder / CANCEL).touch()
                cancelled_at = time.monotonic()
            elif cancelled_at is not None and time.monotonic() - cancelled_at > STOP_GRACE_SECONDS:
                os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(POLL_SECONDS)
    except BaseException:
        _stop(proc)
        raise
    finally:
        out.close()
    relay.pump()
    if proc.returncode == 0 and (folder / RESULT).is_file():
        result = json.loads((folder / RESULT).read_text())
        shutil.rmtree(folder, ignore_errors=True)  # a failed run's folder stays, with torchrun's log
        return result
    raise _failure(folder, workers, proc.returncode)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's (not ours: a reused pid)
        return False
    return True


class _Relay:
    """Hands rank 0's events to the job as they are appended."""

    def __init__(self, path: Path, ctx):
        self.path, self.ctx, self.offset = path, ctx, 0

    def pump(self) -> None:
        if not self.path.is_file():
            return
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode("utf-8").splitlines():
            event = json.loads(line)
            if "warn" in event:
                self.ctx.warn(event["warn"])
            else:
                report = event["report"]
                self.ctx.report(report.pop("progress"), report.pop("stage"), report.pop("message"),
                                report.pop("eta_seconds"), **report)


_EXIT = re.compile(r"rank\s*:\s*(\d+).*?\n\s*exitcode\s*:\s*(-?\d+).*?(?:\n\s*error_file.*?)?\n\s*traceback\s*:\s*([^\n]*)")


# What a rank that failed before rank_main printed: the last line of a Python traceback
# ("ModuleNotFoundError: No module named 'x'") or the interpreter's own complaint
# ("/venv/bin/python: No module named x"). torchrun's ChildFailedError report is not the cause.
_RAISED = re.compile(r"^(?:\[[^\]]*\]:?)?\s*((?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception): .+"
                     r"|\S*python[\d.]*: .+)$", re.MULTILINE)


def _failure(folder: Path, workers: int, code: int) -> errors.AptError:
    """The error the job fails with. A rank killed by a signal (not torchrun's own SIGTERM to the
    survivors) is the cause: the errors the others then raise (a peer's connection reset) are its
    consequences. Otherwise the first rank's own error (the others' follow from it); a cancel,
    when that is what they saw."""
    output = (folder / "torchrun.log").read_text(errors="replace")
    own = {int(p.stem.split("-")[1]): json.loads(p.read_text()) for p in folder.glob("error-*.json")}
    died = {int(rank): why.strip() for rank, exit_code, why in _EXIT.findall(output)
            if int(exit_code) < 0 and int(exit_code) != -signal.SIGTERM and int(rank) not in own}
    if died:
        rank = min(died)
        log.warning("torchrun's output of a failed run:\n%s", "\n".join(output.splitlines()[-LOG_TAIL_LINES:]))
        return errors.AptError(f"Rank {rank} of the {workers}-rank run died: {died[rank]} (torchrun exit {code}); "
                               "the service's log has torchrun's output.", reason="RANK_FAILED")
    failed = {rank: err for rank, err in own.items() if err["type"] != "Cancelled"}
    if not failed and own:
        return errors.Cancelled("The job was cancelled.")
    if failed:
        rank = min(failed, key=lambda r: (failed[r].get("time", 0.0), r))
        err = failed[rank]
        cls = getattr(errors, err["type"], errors.AptError)
        return cls(f"rank {rank} of {workers}: {err['message']}", reason=err["reason"])
    log.warning("torchrun's output of a failed run:\n%s", "\n".join(output.splitlines()[-LOG_TAIL_LINES:]))
    raised = [r for r in _RAISED.findall(output) if "ChildFailedError" not in r]  # failed before rank_main
    said = f"; its last error: {raised[-1].strip()[:300]}" if raised else ""
    return errors.AptError(f"The {workers}-rank run ended (torchrun exit {code}) without an error from any rank"
                           f"{said}; the service's log has torchrun's output.", reason="RANK_FAILED")


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
