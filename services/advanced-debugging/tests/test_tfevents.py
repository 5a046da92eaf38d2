"""The direct event-file reader against TensorBoard's own EventAccumulator: the same scalars,
bit for bit, written the old way (simple_value) and the new (tensor-style); a corrupt record
is DataLoss, a truncated last record (a file still being written) ends the file."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from apt_model import errors

from apt_debug import tfevents

pytest.importorskip("tensorboard")


def write_run(folder: Path, new_style: bool) -> None:
    from torch.utils.tensorboard import SummaryWriter

    rng = np.random.default_rng(0)
    with SummaryWriter(log_dir=str(folder)) as writer:
        for step in range(1, 301):
            writer.add_scalar("loss", float(rng.standard_normal()), global_step=step, new_style=new_style)
            writer.add_scalar("lr", 1e-3 * step, global_step=step, new_style=new_style)
            if step % 100 == 0:
                writer.add_histogram("blocks", rng.standard_normal(8), global_step=step)
        writer.add_scalar("loss", math.nan, global_step=301, new_style=new_style)
        writer.add_scalar("loss", 7.0, global_step=300, new_style=new_style)  # a step logged again


def accumulated(folder: Path) -> tuple[dict[str, dict[int, float]], set[str]]:
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0},
                                             purge_orphaned_data=False)
    acc.Reload()
    out: dict[str, dict[int, float]] = {}
    for tag in acc.Tags()["scalars"]:
        for event in acc.Scalars(tag):
            out.setdefault(tag, {})[event.step] = event.value
    for tag in acc.Tags()["tensors"]:  # tensor-style scalars: the accumulator files them as tensors
        if acc.SummaryMetadata(tag).plugin_data.plugin_name == "scalars":
            for event in acc.Tensors(tag):
                out.setdefault(tag, {})[event.step] = tensor_util.make_ndarray(event.tensor_proto).item()
    return out, set(acc.Tags()["histograms"])


@pytest.mark.parametrize("new_style", [False, True])
def test_the_same_scalars_as_event_accumulator_bit_for_bit(tmp_path, new_style):
    write_run(tmp_path, new_style)
    want, histograms = accumulated(tmp_path)
    got = tfevents.read_run(tmp_path)
    assert got.values.keys() == want.keys() == {"loss", "lr"}
    for tag in want:
        assert list(got.values[tag]) == list(want[tag])
        a = np.asarray(list(got.values[tag].values()), dtype=np.float32)
        b = np.asarray(list(want[tag].values()), dtype=np.float32)
        assert np.array_equal(a.view(np.int32), b.view(np.int32)) or np.array_equal(a, b, equal_nan=True)
    assert got.values["loss"][300] == 7.0 and got.repeated == 1
    assert got.histogram_tags == histograms == {"blocks"}


def test_the_crc_matches_tensorboards_own():
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    rng = np.random.default_rng(1)
    rows = rng.integers(0, 256, (50, 37), dtype=np.uint8)
    assert tfevents.masked_crc32c(rows).tolist() == [masked_crc32c(r.tobytes()) for r in rows]


def test_a_corrupt_record_is_data_loss_and_a_truncated_tail_ends_the_file(tmp_path):
    write_run(tmp_path, False)
    path = next(tmp_path.glob("events.out.tfevents.*"))
    whole = path.read_bytes()
    n = len(tfevents.records(path))
    path.write_bytes(whole[:-5])  # the last record cut short, as while a writer is still writing
    assert len(tfevents.records(path)) == n - 1
    broken = bytearray(whole)
    broken[len(whole) // 2] ^= 0x40  # one bit flipped in the middle of the file
    path.write_bytes(bytes(broken))
    with pytest.raises(errors.DataLoss, match="CRC"):
        tfevents.records(path)
