"""TensorBoard event files read directly: the TFRecord framing walked once, every record's
masked CRC32C checked for all records at once with numpy, the events parsed with TensorBoard's
own protos.

Why not EventAccumulator: it checks each record's CRC byte by byte in pure Python and
migrates every event through its data-compat layer, which is most of the time of a large
load (10k steps x 20 tags: the whole round trip took 3.5 s on a quiet 2-vCPU machine, its pure-Python
record reading alone 2.1 s; this reader does the round trip in about 1 s). The values are
the same — a test holds this reader against EventAccumulator on scalars written both ways
(``simple_value`` and the tensor-style scalars of newer writers).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from apt_model import errors

_POLY = 0x82F63B78  # CRC32C (Castagnoli), reflected
_MASK_DELTA = 0xA282EAD8


def _table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_POLY), table >> 1).astype(np.uint32)
    return table


_TABLE = _table()


def masked_crc32c(rows: np.ndarray) -> np.ndarray:
    """The TFRecord masked CRC32C of each row of a (records, bytes) uint8 array."""
    crc = np.full(rows.shape[0], 0xFFFFFFFF, dtype=np.uint32)
    for j in range(rows.shape[1]):
        crc = _TABLE[(crc ^ rows[:, j]) & 0xFF] ^ (crc >> 8)
    crc ^= np.uint32(0xFFFFFFFF)
    return (((crc >> 15) | (crc << 17)) + np.uint32(_MASK_DELTA)).astype(np.uint32)


def records(path: Path) -> list[bytes]:
    """The records of one TFRecord file, every header and data CRC checked (DataLoss naming the
    first bad record). A truncated last record (a file still being written) ends the file, as
    TensorBoard's own reader does."""
    buf = path.read_bytes()
    starts, lengths = [], []
    pos = 0
    while pos + 12 <= len(buf):
        (length,) = struct.unpack_from("<Q", buf, pos)
        if pos + 12 + length + 4 > len(buf):
            break
        starts.append(pos)
        lengths.append(length)
        pos += 16 + length
    data = np.frombuffer(buf, dtype=np.uint8)
    starts_a, lengths_a = np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
    stored = data[(starts_a[:, None] + np.arange(8, 12)).reshape(-1)].view("<u4") if starts else np.zeros(0, "<u4")
    bad = masked_crc32c(data[starts_a[:, None] + np.arange(8)]) != stored if starts else np.zeros(0, bool)
    for length in np.unique(lengths_a):
        group = np.flatnonzero(lengths_a == length)
        body = starts_a[group] + 12
        rows = data[body[:, None] + np.arange(length)] if length else np.zeros((len(group), 0), np.uint8)
        want = data[(body + length)[:, None] + np.arange(4)].reshape(-1).view("<u4")
        bad[group] |= masked_crc32c(rows) != want
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise errors.DataLoss(f"{path.name}: record {first + 1} (byte {starts[first]}) fails its CRC check; "
                              "the event file is corrupt.")
    return [buf[s + 12:s + 12 + n] for s, n in zip(starts, lengths)]


@dataclass
class Scalars:
    """What a TensorBoard run holds: scalar values by tag and step (the last occurrence of a
    step wins, ``repeated`` counts them) and the histogram tags."""

    values: dict[str, dict[int, float]] = field(default_factory=dict)
    repeated: int = 0
    histogram_tags: set[str] = field(default_factory=set)


def read_run(folder: Path) -> Scalars:
    """Every scalar of the event files directly in ``folder`` (one TensorBoard run), files in
    name order (their names start with the time they were opened)."""
    from tensorboard.compat.proto import event_pb2

    out = Scalars()
    parse = event_pb2.Event.FromString
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for record in records(path):
            event = parse(record)
            if event.WhichOneof("what") != "summary":
                continue
            for value in event.summary.value:
                number = _scalar(value, out.histogram_tags)
                if number is None:
                    continue
                by_step = out.values.get(value.tag)
                if by_step is None:
                    by_step = out.values[value.tag] = {}
                if event.step in by_step:
                    out.repeated += 1
                by_step[event.step] = number
    return out


def _scalar(value, histogram_tags: set[str]) -> float | None:
    """A summary value's scalar: ``simple_value`` (torch's and TF1's writers) or a tensor of the
    scalars plugin (newer writers); None for anything else (a histogram's tag is noted)."""
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return float(value.simple_value)
    plugin = value.metadata.plugin_data.plugin_name
    if kind == "histo" or plugin == "histograms":
        histogram_tags.add(value.tag)
    elif kind == "tensor" and plugin == "scalars":
        from tensorboard.util import tensor_util

        return float(tensor_util.make_ndarray(value.tensor).item())
    return None
