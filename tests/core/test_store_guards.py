"""Store guards at the exact points a weaker check would pass: a same-size corruption, a crash
at the rename that swaps a new entry in."""

from __future__ import annotations

import os

import pytest

from apt_model.store import Store
from gateway.core.debug import debug_model


def _flip_last_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # inside the last tensor: same size, header still readable
    path.write_bytes(bytes(data))


def test_verify_compares_contents_not_sizes(store, tiny):
    weights = store.model(tiny).path / "model.safetensors"
    size = weights.stat().st_size
    _flip_last_byte(weights)
    assert weights.stat().st_size == size
    assert store.verify("models", tiny) == ["model.safetensors: sha256 differs from the one recorded at creation"]
    report = debug_model(store, tiny)
    errs = {f["check"]: f for f in report["findings"] if f["severity"] == "error"}
    assert "model.safetensors: sha256 differs" in errs["files.checksums"]["message"]


def test_a_crash_at_the_swap_keeps_the_old_entry(store, tiny, monkeypatch):
    """Overwriting renames the old entry aside, then the new one in: a crash between the two
    renames leaves the old entry under its aside name, and the next start puts it back."""
    before = store.model(tiny).meta["files"]
    real_rename = os.rename

    def rename(src, dst):
        if os.path.basename(src).startswith(".tmp-"):
            raise OSError("simulated crash at the rename of the new entry")
        return real_rename(src, dst)

    monkeypatch.setattr("apt_model.store.api.os.rename", rename)
    with pytest.raises(OSError, match="simulated crash"):
        with store.create("models", tiny, operation="test", overwrite=True) as staging:
            (staging / "config.json").write_text("{}")
    monkeypatch.undo()

    fresh = Store(store.root)
    fresh.clean_temporaries()  # what every service does at start
    assert fresh.model(tiny).meta["files"] == before
    assert fresh.verify("models", tiny) == []
