"""Creating a store name is exclusive when the entry is renamed in, not only when its writer
started (issue 15, item 6): of two writers of one name without overwrite, exactly one wins, the
other gets ALREADY_EXISTS and leaves nothing, and the winner's files are intact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import grpc
import pytest

from apt_model import errors
from apt_model.store import Store

ROOT = Path(__file__).resolve().parents[2]


def _write(store: Store, name: str, writer: str, wait=lambda: None, settle: str = "now") -> None:
    """A model whose files say which writer made it; ``wait`` runs with the files written."""
    with store.create("models", name, operation="test", settle=settle) as tmp:
        (tmp / "config.json").write_text(json.dumps({"writer": writer}))
        (tmp / "model.safetensors").write_bytes(writer.encode() * 100_000)
        wait()


def _writer_of(store: Store, name: str) -> str:
    return json.loads((store.model(name).path / "config.json").read_text())["writer"]


def _temporaries(store: Store) -> list[str]:
    return [p.name for p in (store.root / "models").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("settle", ["now", "background"])
def test_two_threads_racing_for_one_name(tmp_path, settle):
    store = Store(tmp_path / "home")
    both_written = threading.Barrier(2)  # both passed create's first check before either commits
    outcome: dict[str, object] = {}

    def run(writer: str) -> None:
        try:
            _write(store, "m", writer, lambda: both_written.wait(30), settle)
            outcome[writer] = "won"
        except errors.AlreadyExists as exc:
            outcome[writer] = exc

    threads = [threading.Thread(target=run, args=(w,)) for w in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    store.wait_settled(60)
    winners = [w for w, r in outcome.items() if r == "won"]
    assert len(winners) == 1, outcome
    loser = ({"a", "b"} - set(winners)).pop()
    exc = outcome[loser]
    assert isinstance(exc, errors.AlreadyExists) and exc.code == grpc.StatusCode.ALREADY_EXISTS
    assert "another writer" in exc.message and "--overwrite" in exc.message
    assert _writer_of(store, "m") == winners[0]
    assert store.verify("models", "m") == []
    assert _temporaries(store) == []  # the loser's folder is gone, no .old-* either


def test_two_processes_racing_for_one_name(tmp_path):
    home = tmp_path / "home"
    script = textwrap.dedent("""
        import json, sys, time, pathlib
        from apt_model import errors
        from apt_model.store import Store
        home, writer, gate = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
        store = Store(home)
        try:
            with store.create("models", "m", operation="test") as tmp:
                (tmp / "config.json").write_text(json.dumps({"writer": writer}))
                (tmp / "model.safetensors").write_bytes(writer.encode() * 100_000)
                (gate / f"ready-{writer}").touch()
                deadline = time.time() + 60
                while len(list(gate.glob("ready-*"))) < 2 and time.time() < deadline:
                    time.sleep(0.01)
            print("won")
        except errors.AlreadyExists as exc:
            print("exists:", exc.code.name)
    """)
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = {w: subprocess.Popen([sys.executable, "-c", script, str(home), w, str(gate)], env=env, cwd=ROOT,
                                 stdout=subprocess.PIPE, text=True) for w in ("a", "b")}
    out = {w: p.communicate(timeout=120)[0].strip() for w, p in procs.items()}
    assert sorted(out.values()) == ["exists: ALREADY_EXISTS", "won"], out
    store = Store(home)
    winner = next(w for w, o in out.items() if o == "won")
    assert _writer_of(store, "m") == winner and store.verify("models", "m") == []
    assert _temporaries(store) == []


def test_writer_in_flight_does_not_replace_an_entry_finished_meanwhile(tmp_path):
    store = Store(tmp_path / "home")
    inside, release = threading.Event(), threading.Event()
    outcome: list[object] = []

    def slow() -> None:
        try:
            _write(store, "m", "slow", lambda: (inside.set(), release.wait(30)))
            outcome.append("won")
        except errors.AlreadyExists as exc:
            outcome.append(exc)

    t = threading.Thread(target=slow)
    t.start()
    assert inside.wait(30)
    _write(store, "m", "fast")  # created and finished while the slow writer is still writing
    before = store.model("m").meta["files"]
    release.set()
    t.join(60)
    assert len(outcome) == 1 and isinstance(outcome[0], errors.AlreadyExists)
    assert _writer_of(store, "m") == "fast" and store.model("m").meta["files"] == before
    assert store.verify("models", "m") == []
    assert _temporaries(store) == []


def test_overwrite_still_replaces(tmp_path):
    store = Store(tmp_path / "home")
    _write(store, "m", "first")
    with store.create("models", "m", operation="test", overwrite=True) as tmp:
        (tmp / "config.json").write_text(json.dumps({"writer": "second"}))
        (tmp / "model.safetensors").write_bytes(b"2" * 10)
    assert _writer_of(store, "m") == "second" and store.verify("models", "m") == []


def test_restore_without_name_does_not_replace_a_model_created_meanwhile(tmp_path):
    """cloud-storage restore claims the name through the store: a model of the backed-up name
    written while the restore downloads stays, and the restore ends ALREADY_EXISTS."""
    from apt_storage.backup import run_backup
    from apt_storage.config import StorageConfig
    from apt_storage.restore import run_restore
    from apt_storage.specs import BackupSpec, RestoreSpec, transfer_options
    from apt_model.testing import JobRecorder
    from apt_storage.testing import add_entry
    from apt_storage.uri import parse

    store = Store(tmp_path / "home")
    config = StorageConfig.from_env(store.root, {"CLOUD_STORAGE_SECRETS_DIR": "/nonexistent",
                                                 "APT_DATA_ROOTS": str(tmp_path)})
    add_entry(store, "m1", {"config.json": b'{"writer": "backup"}', "model.safetensors": b"b" * 1000})
    dest = parse((tmp_path / "bk").as_uri())
    run_backup(store, config, BackupSpec("m1", "models", dest, "", transfer_options()), JobRecorder())
    store.remove("models", "m1")

    def create_meanwhile() -> bool:  # at the restore's first check inside Store.create
        if any(p.name.startswith(".tmp-m1-") for p in (store.root / "models").iterdir()) \
                and not store.exists("models", "m1"):
            _write(store, "m1", "meanwhile")
        return False

    with pytest.raises(errors.AlreadyExists, match="another writer"):
        run_restore(store, config, RestoreSpec(dest, "", "", "", "", False, transfer_options()),
                    JobRecorder(stop_when=create_meanwhile))
    assert _writer_of(store, "m1") == "meanwhile" and store.verify("models", "m1") == []
    assert _temporaries(store) == []
