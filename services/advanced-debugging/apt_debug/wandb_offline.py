"""A metric series as a Weights & Biases *offline* run (never online here), then read back.

``wandb.init(mode="offline")`` writes ``wandb/offline-run-*/run-*.wandb``: a LevelDB-style log
of protobuf ``Record``s that ``wandb sync`` uploads later (from the user's machine, after
``apt-model data pull``). The log is read back here with wandb's own ``Record`` message and
every history value compared with the series, so a run that would sync incompletely
(wandb/wandb#5561) is caught before the call answers. wandb keeps its config and caches in a
temporary folder: the service writes nowhere but the output entry.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from apt_model import errors

from apt_debug.series import Series

_ENV_LOCK = threading.Lock()  # wandb reads its folders from the environment: one export at a time
_BLOCK = 32768                # the log's block size (LevelDB's)
_HEADER = 7                   # file header ":W&B" + magic + version; also each record's header size
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
EXIT_WAIT_S = 30.0


def require_wandb():
    try:
        import wandb
        from wandb.proto import wandb_internal_pb2  # noqa: F401
    except ImportError as exc:
        raise errors.FailedPrecondition(
            f"The wandb package is not installed in this service ({exc}); install the plugin's "
            "requirements.txt, or use --tracker tensorboard.") from exc
    return wandb


@contextlib.contextmanager
def _private_wandb_env() -> Iterator[None]:
    keys = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true"}
    with _ENV_LOCK, tempfile.TemporaryDirectory(prefix="apt-wandb-") as tmp:
        for name in ("CONFIG_DIR", "CACHE_DIR", "DATA_DIR", "ARTIFACT_DIR"):
            keys[f"WANDB_{name}"] = str(Path(tmp) / name.lower())
        saved = {k: os.environ.get(k) for k in keys}
        os.environ.update(keys)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def write_offline_run(series: Series, folder: Path, run_name: str) -> Path:
    """The series as one offline run under ``folder``; the run's ``.wandb`` file."""
    wandb = require_wandb()
    by_step: dict[int, dict[str, float]] = {}
    for metric in series.metrics():
        for step, value in zip(*series.get(metric)):
            by_step.setdefault(step, {})[metric] = value
    with _private_wandb_env():
        run = wandb.init(mode="offline", dir=str(folder), project="apt", name=run_name,
                         config={"source": series.source},
                         settings=wandb.Settings(console="off", x_disable_stats=True, save_code=False))
        try:
            for step in sorted(by_step):
                run.log(by_step[step], step=step)
        finally:
            run.finish()
    found = sorted(folder.glob("wandb/offline-run-*/run-*.wandb"))
    if len(found) != 1:
        raise errors.DataLoss(f"wandb wrote {len(found)} offline run files instead of one.")
    _wait_for_exit_record(found[0])
    return found[0]


def _wait_for_exit_record(path: Path) -> None:
    """wandb's core process may still be writing the log when ``finish()`` returns (seen under
    load): wait for the run's closing ``exit`` record, DataLoss after EXIT_WAIT_S."""
    deadline = time.monotonic() + EXIT_WAIT_S
    while not any(r.WhichOneof("record_type") == "exit" for r in records(path)):
        if time.monotonic() > deadline:
            raise errors.DataLoss(f"The W&B run log {path.name} was not closed within {EXIT_WAIT_S:.0f} s.")
        time.sleep(0.1)


def records(path: Path) -> Iterator[Any]:
    """The protobuf Records of a .wandb log, in order."""
    from wandb.proto import wandb_internal_pb2

    raw = path.read_bytes()
    if raw[:4] != b":W&B":
        raise errors.DataLoss(f"{path.name} is not a W&B run log.")
    pos, pending = _HEADER, b""
    while pos + _HEADER <= len(raw):
        room = _BLOCK - pos % _BLOCK
        if room < _HEADER:  # a block's tail too short for a header is padding
            pos += room
            continue
        _crc, length, kind = struct.unpack("<IHB", raw[pos:pos + _HEADER])
        pos += _HEADER
        if kind == 0 and length == 0:
            break
        data, pos = raw[pos:pos + length], pos + length
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending + data if kind == _LAST else data)
            pending = b""
            yield record
        elif kind in (_FIRST, _MIDDLE):
            pending = (pending if kind == _MIDDLE else b"") + data


def history(path: Path) -> dict[int, dict[str, Any]]:
    """The logged values of a run by step (wandb's own _step/_runtime/_timestamp left out); a
    step logged twice keeps its last values."""
    out: dict[int, dict[str, Any]] = {}
    for record in records(path):
        if record.WhichOneof("record_type") != "history":
            continue
        items = {(i.key or ".".join(i.nested_key)): json.loads(i.value_json) for i in record.history.item}
        step = int(items.pop("_step", len(out)))
        out[step] = {k: v for k, v in items.items() if not k.startswith("_")}
    return out


def check_offline_run(series: Series, path: Path) -> list[str]:
    """What differs between the series and the run's history ([] when complete)."""
    logged = history(path)
    problems = []
    for metric in series.metrics():
        for step, value in zip(*series.get(metric)):
            got = logged.get(step, {}).get(metric)
            if got is None:
                problems.append(f"{metric} at step {step} is missing")
            elif not (float(got) == value or (math.isnan(value) and math.isnan(float(got)))):
                problems.append(f"{metric} at step {step}: wrote {value!r}, the log holds {got!r}")
            if len(problems) >= 5:
                return problems
    return problems


def export(series: Series, folder: Path, run_name: str) -> dict[str, Any]:
    """Write and verify; DataLoss when the run log does not hold every value."""
    path = write_offline_run(series, folder, run_name)
    problems = check_offline_run(series, path)
    if problems:
        raise errors.DataLoss("The W&B offline run is incomplete: " + "; ".join(problems))
    run_dir = path.parent.relative_to(folder)
    return {"steps": len(series.steps()), "scalars": sum(len(series.get(m)[0]) for m in series.metrics()),
            "tags": series.metrics(),
            "files": sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()),
            "next_step": f"apt-model data pull NAME, then: wandb sync NAME/{run_dir}"}
