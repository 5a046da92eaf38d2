"""The store's file layer and upkeep, each rule checked where a weaker version would still pass:
copies that hash what they wrote (in one chunk and in many), a copy that finds its source
shrinking, what is fsynced, the exact bytes of an atomic JSON write, the start-up clean over
every kind of leftover folder, settle threads that fail or outlive a wait, and the sentences a
caller reads when a name is taken, missing or unreadable.

Written from the survivors of a ``make mutate`` run over ``apt_model/store/`` (docs/mutation.md):
the store's other tests reach these functions through whole write paths, where a copy that
counted only its last chunk or a clean that stopped at the first leftover still passes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from apt_model import errors
from apt_model.store import Store, fs, settle
from apt_model.store.locks import NameLock

# each test here takes under 2 s: a change that makes one hang (make mutate) fails it in 30 s
pytestmark = pytest.mark.timeout(30)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def synced(monkeypatch):
    """The paths fsync and fdatasync were called on, in order; ``synced.sizes`` the size each
    file had in the kernel at that moment (what a sync can put on disk)."""
    calls = _Synced()
    real_fsync, real_fdatasync = os.fsync, os.fdatasync

    def recorder(real):
        def call(fd):
            path = os.readlink(f"/proc/self/fd/{fd}")
            calls.append(path)
            calls.sizes[path] = os.fstat(fd).st_size
            return real(fd)
        return call

    monkeypatch.setattr(os, "fsync", recorder(real_fsync))
    monkeypatch.setattr(os, "fdatasync", recorder(real_fdatasync))
    return calls


class _Synced(list):
    sizes: dict[str, int]

    def __init__(self):
        super().__init__()
        self.sizes = {}


# -- copies --------------------------------------------------------------------------------------

@pytest.mark.parametrize("chunk", [1 << 20, 1000])
def test_a_hashed_copy_reports_the_sha256_and_size_of_every_byte_it_wrote(tmp_path, synced, chunk):
    data = os.urandom(250_000) + b"tail"
    (tmp_path / "src").write_bytes(data)
    seen: list[int] = []
    info = fs.copy_hashed(tmp_path / "src", tmp_path / "dst", seen.append, chunk=chunk)
    assert info == {"sha256": _sha(data), "size": len(data)}
    assert (tmp_path / "dst").read_bytes() == data
    assert sum(seen) == len(data) and len(seen) == -(-len(data) // chunk)
    assert synced.sizes[str(tmp_path / "dst")] == len(data)  # every byte synced, not left in a buffer


def test_a_hashed_copy_of_an_empty_file_and_without_a_progress_callback(tmp_path, synced):
    (tmp_path / "src").write_bytes(b"")
    assert fs.copy_hashed(tmp_path / "src", tmp_path / "dst") == {"sha256": _sha(b""), "size": 0}
    (tmp_path / "src").write_bytes(b"abc")
    assert fs.copy_hashed(tmp_path / "src", tmp_path / "dst") == {"sha256": _sha(b"abc"), "size": 3}
    assert synced.sizes[str(tmp_path / "dst")] == 3  # a small file too: a buffered writer would sync 0 bytes


def test_an_unhashed_copy_sends_every_byte_in_chunks_and_leaves_the_hash_for_the_settle(tmp_path):
    data = os.urandom(100_000) + b"end"
    (tmp_path / "src").write_bytes(data)
    seen: list[int] = []
    info = fs.copy_unhashed(tmp_path / "src", tmp_path / "dst", seen.append, chunk=4096)
    assert info == {"sha256": "", "size": len(data)}
    assert (tmp_path / "dst").read_bytes() == data
    assert seen == [4096] * (len(data) // 4096) + [len(data) % 4096]
    assert fs.copy_unhashed(tmp_path / "src", tmp_path / "again") == {"sha256": "", "size": len(data)}


def test_an_unhashed_copy_whose_source_shrinks_midway_is_data_loss(tmp_path):
    src = tmp_path / "src"
    src.write_bytes(b"x" * 10_000)

    def truncate_after_the_first_chunk(sent: int) -> None:
        with open(src, "r+b") as fh:
            fh.truncate(4096)

    with pytest.raises(errors.DataLoss) as caught:
        fs.copy_unhashed(src, tmp_path / "dst", truncate_after_the_first_chunk, chunk=4096)
    assert str(caught.value) == (f"{src} ended at 4096 of 10000 bytes while it was copied; "
                                 "was it changed during the import?")


def test_an_unhashed_copy_of_a_growing_source_holds_the_bytes_it_had_at_the_start(tmp_path):
    src = tmp_path / "src"
    src.write_bytes(b"a" * 10_000)

    def grow(sent: int) -> None:
        with open(src, "ab") as fh:
            fh.write(b"b" * 5000)

    assert fs.copy_unhashed(src, tmp_path / "dst", grow, chunk=4096)["size"] == 10_000
    assert (tmp_path / "dst").read_bytes() == b"a" * 10_000  # what the recorded size says


# -- tables, fsync, JSON ------------------------------------------------------------------------

def _entry_folder(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.bin").write_bytes(b"aaaa")
    (root / "sub" / "b.bin").write_bytes(b"bb")
    (root / "apt.json").write_text("{}")
    return root


def test_a_file_table_trusts_a_known_hash_only_while_the_size_matches(tmp_path):
    folder = _entry_folder(tmp_path / "e")
    known = {"a.bin": {"sha256": "recorded-while-copied", "size": 4},
             "sub/b.bin": {"sha256": "stale", "size": 999}}
    table = fs.file_table(folder, known)
    assert table == {"a.bin": {"sha256": "recorded-while-copied", "size": 4},
                     "sub/b.bin": {"sha256": _sha(b"bb"), "size": 2}}
    table["a.bin"]["size"] = 0
    assert known["a.bin"]["size"] == 4  # the table holds its own copy
    assert fs.file_table(folder) == {"a.bin": {"sha256": _sha(b"aaaa"), "size": 4},
                                     "sub/b.bin": {"sha256": _sha(b"bb"), "size": 2}}
    assert fs.size_table(folder) == {"a.bin": {"sha256": "", "size": 4}, "sub/b.bin": {"sha256": "", "size": 2}}


def test_a_settle_syncs_every_file_and_every_folder_of_the_entry(tmp_path, synced):
    folder = _entry_folder(tmp_path / "e")
    table = fs.hash_and_fsync(folder)
    assert table == fs.file_table(folder)
    assert {str(folder / "a.bin"), str(folder / "sub" / "b.bin"), str(folder), str(folder / "sub")} <= set(synced)
    synced.clear()
    fs.fsync_tree(folder)
    assert {str(folder / "a.bin"), str(folder / "sub" / "b.bin"), str(folder / "apt.json"),
            str(folder), str(folder / "sub")} <= set(synced)


def test_an_atomic_json_write_leaves_the_exact_text_synced_and_no_temporary(tmp_path, synced):
    path = tmp_path / "apt.json"
    path.write_text("old")
    data = {"name": "modèle", "b": [1, 2], "a": {"z": 1, "y": None}}
    fs.write_json_atomic(path, data)
    assert path.read_text(encoding="utf-8") == json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["apt.json"]
    assert str(tmp_path) in synced  # the folder, so the rename itself survives a crash
    assert any(p.startswith(str(tmp_path / ".apt.json.")) for p in synced)  # the bytes, before the rename


def test_change_tokens_are_per_kind_new_on_every_change_and_leave_no_temporary(tmp_path):
    models, datasets = tmp_path / "models", tmp_path / "datasets"
    assert fs.change_token(models) == ""
    fs.mark_changed(models)
    first = fs.change_token(models)
    fs.mark_changed(models)
    assert fs.change_token(models) not in ("", first)
    assert fs.change_token(datasets) == ""
    assert sorted(p.name for p in (tmp_path / fs.CHANGES_FOLDER).iterdir()) == ["models"]


# -- copy_in, names, records -------------------------------------------------------------------

def test_copy_in_hashes_once_into_nested_folders_and_refuses_a_path_out_of_the_entry(store, tmp_path, monkeypatch):
    src = tmp_path / "w.bin"
    src.write_bytes(b"weights" * 100)
    hashed: list[Path] = []
    real = fs.sha256_file
    monkeypatch.setattr(fs, "sha256_file", lambda p: hashed.append(p) or real(p))
    seen: list[int] = []
    with store.create("models", "m", operation="test") as staging:
        info = store.copy_in(staging, src, "deep/er/w.bin", seen.append)
        assert info == {"sha256": _sha(b"weights" * 100), "size": 700} and seen == [700]
        for bad in ("../escape.bin", "/etc/passwd", "deep/../../x"):
            with pytest.raises(errors.InvalidArgument) as caught:
                store.copy_in(staging, src, bad)
            assert str(caught.value) == f"{bad!r} points outside the entry being written."
    assert hashed == []  # the copy's hash is the entry's: no second read
    assert store.model("m").meta["files"] == {"deep/er/w.bin": {"sha256": _sha(b"weights" * 100), "size": 700}}
    assert not (store.root / "models" / "escape.bin").exists()


def test_an_entry_settled_now_is_on_disk_before_its_rename_and_an_overwrite_leaves_one_folder(store, synced):
    with store.create("models", "m", operation="test") as staging:
        (staging / "weights.bin").write_bytes(b"w" * 100)
    assert synced.sizes[str(staging / "weights.bin")] == 100  # synced under its temporary name
    synced.clear()
    with store.create("models", "m", operation="test", overwrite=True) as staging:
        (staging / "weights.bin").write_bytes(b"v" * 50)
    assert str(staging / "weights.bin") in synced
    assert sorted(p.name for p in (store.root / "models").iterdir()) == ["m"]  # the old entry is deleted
    assert (store.path("models", "m") / "weights.bin").read_bytes() == b"v" * 50


def test_copy_in_to_a_background_entry_leaves_the_hash_to_its_settle(store, tmp_path):
    src = tmp_path / "w.bin"
    src.write_bytes(b"z" * 5000)
    seen: list[int] = []
    with store.create("models", "m", operation="test", settle="background") as staging:
        assert store.copy_in(staging, src, "w.bin", seen.append) == {"sha256": "", "size": 5000}
    assert seen == [5000]  # the progress of a background copy is reported too
    assert store.wait_settled(30)
    assert store.model("m").meta["files"] == {"w.bin": {"sha256": _sha(b"z" * 5000), "size": 5000}}


def test_a_taken_name_says_how_to_go_on_for_models_and_datasets(store):
    for kind in ("models", "datasets"):
        with store.create(kind, "taken", operation="test") as staging:
            (staging / "f").write_text("1")
    with pytest.raises(errors.AlreadyExists) as model:
        with store.create("models", "taken", operation="test"):
            pass
    assert str(model.value) == ("Model 'taken' already exists in the store. Choose another name, pass --overwrite "
                                "to replace it, or remove it first with 'apt-model model rm taken'.")
    with pytest.raises(errors.AlreadyExists) as dataset:
        with store.create("datasets", "taken", operation="test"):
            pass
    assert str(dataset.value) == ("Dataset 'taken' already exists in the store. Choose another name, pass "
                                  "--overwrite to replace it, or remove it first with 'apt-model data rm taken'.")


def test_the_second_of_two_writers_of_one_name_is_told_nothing_of_its_write_was_kept(store):
    for kind, noun, command in (("models", "Model", "model"), ("datasets", "Dataset", "data")):
        with pytest.raises(errors.AlreadyExists) as caught:
            with store.create(kind, "race", operation="test") as second:
                (second / "f").write_bytes(b"second")
                with store.create(kind, "race", operation="test") as first:
                    (first / "f").write_bytes(b"first")  # finishes first, inside the other write
        assert str(caught.value) == (
            f"{noun} 'race' was created by another writer while this one was being written; nothing of this "
            f"write was kept. Choose another name, pass --overwrite to replace it, or remove it first with "
            f"'apt-model {command} rm race'.")
        assert (store.path(kind, "race") / "f").read_bytes() == b"first"


def test_missing_unreadable_and_badly_named_entries_are_refused_by_sentence(store):
    for kind, what in (("datasets", "dataset"), ("models", "model")):
        with pytest.raises(errors.NotFound) as missing:
            store.get(kind, "nope")
        assert str(missing.value) == (f"No {what} named 'nope' in the store at {store.root}. "
                                      "Run 'apt-model list' to see what is there.")
    with pytest.raises(errors.InvalidArgument, match="^Invalid dataset name 'Bad/Name'"):
        store.path("datasets", "Bad/Name")
    with pytest.raises(errors.InvalidArgument, match="^Invalid model name '..'"):
        store.path("models", "..")
    folder = store.root / "models" / "broken"
    folder.mkdir(parents=True)
    (folder / "apt.json").write_text("{not json")
    with pytest.raises(errors.FailedPrecondition) as broken:
        store.model("broken")
    assert str(broken.value).startswith(f"The record {folder / 'apt.json'} of 'broken' is unreadable (")
    assert str(broken.value).endswith("); remove the entry with 'apt-model model rm' and store it again.")


def test_an_entry_that_is_a_link_out_of_the_store_is_refused(store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "apt.json").write_text("{}")
    (store.root / "models").mkdir(parents=True, exist_ok=True)
    (store.root / "models" / "evil").symlink_to(outside)
    for call in (lambda: store.path("models", "evil"), lambda: store.model("evil"),
                 lambda: store.remove("models", "evil")):
        with pytest.raises(errors.InvalidArgument) as caught:
            call()
        assert str(caught.value) == "Name 'evil' points outside the store."
    assert (outside / "apt.json").exists()
    assert store.list("models") == []  # a listing skips it instead of failing
    meta = {"settling": {"boot_id": "an-earlier-boot", "replaces": ""}}
    (outside / "apt.json").write_text(json.dumps(meta))
    assert store.recover() == 0 and (outside / "apt.json").exists()  # nor is it settled or dropped


def test_a_listing_skips_leftovers_and_foreign_folders_and_sizes_add_up(store):
    for kind, name, payload in (("models", "b", b"12345"), ("models", "a", b"1"), ("datasets", "d", b"123")):
        with store.create(kind, name, operation="test") as staging:
            (staging / "f").write_bytes(payload)
    models = store.root / "models"
    for stray in (".tmp-x-12345678", "Upper", "a..b", "no-record", "nl\n"):
        (models / stray).mkdir()
        if stray != "no-record":
            (models / stray / "apt.json").write_text("{}")
    assert [(e.kind, e.name) for e in store.list("models")] == [("models", "a"), ("models", "b")]
    assert store.dataset("d").kind == "datasets"
    assert store.used_bytes() == 5 + 1 + 3


def test_a_metadata_update_merges_metrics_sets_fields_and_marks_a_change(store):
    with store.create("models", "m", operation="test", metrics={"kept": 1, "over": 1}) as staging:
        (staging / "f").write_text("1")
    token = fs.change_token(store.root / "models")
    entry = store.update_meta("models", "m", metrics={"over": 2, "new": 3}, note="hi")
    assert entry.meta["metrics"] == {"kept": 1, "over": 2, "new": 3}
    assert entry.meta["note"] == "hi" and store.model("m").meta == entry.meta
    assert fs.change_token(store.root / "models") != token
    assert store.update_meta("models", "m").meta == entry.meta  # nothing given: nothing changes
    with pytest.raises(errors.NotFound):
        store.update_meta("models", "ghost", note="x")
    assert not (store.root / ".locks" / "models-ghost").exists()  # no lock file for a missing name


def test_a_metadata_update_of_a_record_without_metrics_adds_them(store):
    folder = _entry(store, "models", "old-record")
    meta = json.loads((folder / "apt.json").read_text())
    del meta["metrics"]  # written before records had metrics
    (folder / "apt.json").write_text(json.dumps(meta))
    assert store.update_meta("models", "old-record", metrics={"ppl": 3.5}).meta["metrics"] == {"ppl": 3.5}


def _blocked_while_held(store: Store, kind: str, name: str, call) -> threading.Thread:
    """Run ``call`` on a thread while this test holds the name lock of ``kind/name`` (as a
    settling writer does); check that it waits for it."""
    lock = store._locks.name(kind, name)
    worker = threading.Thread(target=call)
    worker.start()
    worker.join(0.3)
    assert worker.is_alive(), "it did not wait for the entry's name lock"
    lock.release()
    worker.join(10)
    assert not worker.is_alive()
    return worker


def test_updates_and_removals_wait_for_the_entrys_name_lock(store):
    _entry(store, "datasets", "d")
    _blocked_while_held(store, "datasets", "d", lambda: store.update_meta("datasets", "d", note="x"))
    assert store.dataset("d").meta["note"] == "x"
    _blocked_while_held(store, "datasets", "d", lambda: store.remove("datasets", "d"))
    assert not store.exists("datasets", "d")


def test_a_reader_of_checksums_waits_for_the_settler_holding_the_name(store):
    _mark_unsettled(_entry(store, "models", "m", b"abc"))  # as a settler in another process left it
    got: list = []
    _blocked_while_held(store, "models", "m", lambda: got.append(store.settled("models", "m")))
    assert "settling" not in got[0].meta and got[0].meta["files"]["f"]["sha256"] == _sha(b"abc")


def test_an_old_entry_is_put_back_only_if_its_writer_did_not_finish_meanwhile(store):
    """A writer holds the name lock between moving the old entry aside and moving the new one
    in: the start-up clean waits for it, then finds the new entry and drops the old one."""
    base = store.root / "models"
    _entry(store, "models", "m", b"old")
    os.rename(base / "m", base / ".old-m-0000aaaa")
    counted: list[int] = []
    lock = store._locks.name("models", "m")
    worker = threading.Thread(target=lambda: counted.append(Store(store.root).clean_temporaries()))
    worker.start()
    worker.join(0.3)
    assert worker.is_alive(), "the clean did not wait for the writer's name lock"
    _entry(store, "models", "staged", b"new")
    os.rename(base / "staged", base / "m")  # the writer's second rename
    lock.release()
    worker.join(10)
    assert counted == [1] and sorted(p.name for p in base.iterdir()) == ["m"]
    assert (base / "m" / "f").read_bytes() == b"new"


def test_a_background_writer_that_died_between_its_renames_gets_its_old_entry_back(store):
    """Its temporary folder already records which old folder it replaces; that record must not
    keep the old folder from being put back, or the name would be lost."""
    base = store.root / "models"
    _entry(store, "models", "m", b"old")
    os.rename(base / "m", base / ".old-m-0000aaaa")
    (base / ".tmp-m-0000bbbb").mkdir()
    (base / ".tmp-m-0000bbbb" / "apt.json").write_text(json.dumps(
        {"settling": {"boot_id": settle.boot_id(), "replaces": ".old-m-0000aaaa"}, "files": {}}))
    assert Store(store.root).clean_temporaries() == 1
    assert sorted(p.name for p in base.iterdir()) == ["m"]
    assert (base / "m" / "f").read_bytes() == b"old"


def test_verify_of_a_record_that_lists_no_files_names_every_file(store):
    folder = _entry(store, "models", "m")
    meta = json.loads((folder / "apt.json").read_text())
    del meta["files"]
    (folder / "apt.json").write_text(json.dumps(meta))
    assert store.verify("models", "m") == ["f: not recorded in apt.json"]


def test_verify_names_missing_and_unrecorded_files(store):
    with store.create("models", "m", operation="test") as staging:
        (staging / "kept").write_text("1")
        (staging / "lost").write_text("2")
    entry = store.model("m")
    (entry.path / "lost").unlink()
    (entry.path / "added").write_text("3")
    assert sorted(store.verify("models", "m")) == ["added: not recorded in apt.json", "lost: missing"]


def test_a_removal_leaves_nothing_and_marks_a_change(store):
    with store.create("datasets", "d", operation="test") as staging:
        (staging / "f").write_text("1")
    token = fs.change_token(store.root / "datasets")
    store.remove("datasets", "d")
    assert list((store.root / "datasets").iterdir()) == []
    assert fs.change_token(store.root / "datasets") != token
    with pytest.raises(errors.NotFound):
        store.remove("datasets", "d")


# -- the start-up clean ---------------------------------------------------------------------------

def _entry(store: Store, kind: str, name: str, payload: bytes = b"x") -> Path:
    with store.create(kind, name, operation="test") as staging:
        (staging / "f").write_bytes(payload)
    return store.path(kind, name)


def _mark_unsettled(folder: Path, **settling) -> Path:
    """Rewrite ``folder``'s record as a writer that died settling it leaves it (this boot, replacing
    nothing, unless ``settling`` says otherwise)."""
    meta = json.loads((folder / "apt.json").read_text()) if (folder / "apt.json").exists() else {}
    meta["settling"] = {"boot_id": settle.boot_id(), "replaces": "", **settling}
    (folder / "apt.json").write_text(json.dumps(meta))
    return folder


def test_the_start_up_clean_handles_every_leftover_in_both_kinds(store):
    """One of each: a dead writer's folder, a live writer's, a removal's trash, an old entry whose
    replacement arrived, one whose replacement never did (a hyphenated name), one that names no
    entry, and the old entry an unsettled one falls back to; in models and in datasets, counted."""
    live_claims = []
    for kind in ("models", "datasets"):
        base = store.root / kind
        _entry(store, kind, "kept")
        (base / ".tmp-dead-0000aaaa").mkdir()
        (base / ".tmp-dead-0000aaaa" / "f").write_text("half")
        (base / f".tmp-live-{kind}").mkdir()
        live_claims.append(store._locks.claim(base / f".tmp-live-{kind}"))
        (base / ".rm-gone-0000cccc").mkdir()
        (base / ".old-kept-0000dddd").mkdir()  # "kept" exists: a finished swap's leftover
        _entry(store, kind, "two-part", b"old")
        os.rename(base / "two-part", base / ".old-two-part-0000eeee")  # died between the renames
        (base / ".old-bad..name-0000ffff").mkdir()  # not an entry name: nothing to put back
        _mark_unsettled(_entry(store, kind, "settling"), replaces=".old-settling-00001111")
        (base / ".old-settling-00001111").mkdir()

    assert Store(store.root).clean_temporaries() == 2 * 4
    for kind in ("models", "datasets"):
        base = store.root / kind
        assert sorted(p.name for p in base.iterdir()) == [
            ".old-settling-00001111", f".tmp-live-{kind}", "kept", "settling", "two-part"]
        assert (base / "two-part" / "f").read_bytes() == b"old"
    # the claims taken to check the dead writers' folders are deleted with them
    assert sorted(p.name for p in (store.root / ".locks").glob("staging-*")) == [
        "staging-.tmp-live-datasets", "staging-.tmp-live-models"]
    for claim in live_claims:
        claim.release(remove=True)
    assert Store(store.root).clean_temporaries() == 2  # the live writers' folders, once they are gone


# -- background settle threads ------------------------------------------------------------------

def test_a_failed_settle_is_logged_releases_its_lock_and_the_next_reader_retries(store, tmp_path, monkeypatch, caplog):
    src = tmp_path / "w.bin"
    src.write_bytes(b"w" * 3000)
    real = fs.hash_and_fsync
    calls: list[Path] = []

    def fail_once(folder):
        calls.append(folder)
        if len(calls) == 1:
            raise OSError("disk went away")
        return real(folder)

    monkeypatch.setattr(fs, "hash_and_fsync", fail_once)
    with caplog.at_level(logging.ERROR, logger="apt_model.store"):
        with store.create("models", "m", operation="test", settle="background") as staging:
            store.copy_in(staging, src, "w.bin")
        assert store.wait_settled(30)
    assert [r.getMessage() for r in caplog.records] == [
        "settling models/m failed; the next reader of its checksums retries"]
    assert "settling" in store.model("m").meta
    lock = store._locks.name("models", "m", blocking=False)
    assert lock.held  # the failed thread let go of the name
    lock.release()
    assert store.settled("models", "m").meta["files"]["w.bin"]["sha256"] == _sha(b"w" * 3000)
    assert len(calls) == 2


def test_waiting_for_settles_times_out_while_one_runs_and_then_succeeds(store, tmp_path, held):
    gate, _ = held
    src = tmp_path / "w.bin"
    src.write_bytes(b"q" * 100)
    assert store.wait_settled(0.1)  # nothing started: nothing to wait for
    for name in ("one", "two"):
        with store.create("models", name, operation="test", settle="background") as staging:
            store.copy_in(staging, src, "w.bin")
    started = time.monotonic()
    assert store.wait_settled(0.3) is False
    assert time.monotonic() - started < 0.9  # one deadline for all the threads, not one each
    assert store.model("one").meta["settling"] == {"boot_id": settle.boot_id(), "replaces": ""}  # a new name
    assert sorted(t.name for t in threading.enumerate() if t.name.startswith("settle-")) == ["settle-one", "settle-two"]
    gate.set()
    assert store.wait_settled() is True  # no timeout: until they are done
    assert [("settling" in store.model(n).meta) for n in ("one", "two")] == [False, False]


def test_an_entry_dropped_after_a_restart_restores_the_old_one_and_says_so(store, caplog):
    old = _entry(store, "models", "m", b"old")
    aside = old.with_name(".old-m-12345678")
    os.rename(old, aside)
    new = _entry(store, "models", "m", b"new")
    token = fs.change_token(store.root / "models")
    with caplog.at_level(logging.WARNING, logger="apt_model.store"):
        settle._drop("models", "m", new, aside)
        assert (new / "f").read_bytes() == b"old" and not aside.exists()
        assert fs.change_token(store.root / "models") != token
        settle._drop("models", "m", new, None)
    assert sorted(p.name for p in (store.root / "models").iterdir()) == []
    assert [r.getMessage() for r in caplog.records] == [
        "models/m was written just before the machine restarted and never reached the disk; it was dropped "
        "and the previous version restored.",
        "models/m was written just before the machine restarted and never reached the disk; it was dropped."]


def test_a_reader_after_a_restart_drops_the_unsettled_entry_and_the_log_names_it(store, caplog):
    _mark_unsettled(_entry(store, "models", "m"), boot_id="an-earlier-boot")
    with caplog.at_level(logging.WARNING, logger="apt_model.store"):
        with pytest.raises(errors.NotFound):
            store.settled("models", "m")
    assert [r.getMessage() for r in caplog.records] == [
        "models/m was written just before the machine restarted and never reached the disk; it was dropped."]


def test_a_settling_record_without_its_file_table_is_data_loss(store):
    folder = _mark_unsettled(_entry(store, "models", "m"))
    meta = json.loads((folder / "apt.json").read_text())
    del meta["files"]
    (folder / "apt.json").write_text(json.dumps(meta))
    with pytest.raises(errors.DataLoss, match="^The files of 'm' changed while it was being stored"):
        store.settled("models", "m")


def test_a_settle_that_finds_the_sizes_changed_is_data_loss(store, tmp_path, held, caplog):
    gate, _ = held
    src = tmp_path / "w.bin"
    src.write_bytes(b"q" * 100)
    with store.create("models", "m", operation="test", settle="background") as staging:
        store.copy_in(staging, src, "w.bin")
    (store.model("m").path / "w.bin").write_bytes(b"q" * 50)  # changed under the settle
    with caplog.at_level(logging.ERROR, logger="apt_model.store"):
        gate.set()
        store.wait_settled(30)
    assert "The files of 'm' changed while it was being stored" in caplog.text  # the settle thread's log
    with pytest.raises(errors.DataLoss) as caught:
        store.settled("models", "m")
    assert str(caught.value) == ("The files of 'm' changed while it was being stored (expected ['w.bin'] with their "
                                 "recorded sizes); remove it with 'apt-model model rm m' and store it again.")


def test_recovery_settles_what_no_live_process_holds_and_counts_it(store, tmp_path, monkeypatch):
    """Three unsettled models, the first (in name order) held by a live settler, a dataset, and a
    foreign folder with a settling record: the other three are settled and counted, the rest
    left alone."""
    src = tmp_path / "w.bin"
    src.write_bytes(b"r" * 100)
    for kind, name in (("models", "a-held"), ("models", "b-orphan"), ("models", "c-orphan"), ("datasets", "d")):
        with store.create(kind, name, operation="test") as staging:
            store.copy_in(staging, src, "w.bin")
    for kind, name in (("models", "a-held"), ("models", "b-orphan"), ("models", "c-orphan"), ("datasets", "d"),
                       ("models", "Upper")):
        (store.root / kind / name).mkdir(exist_ok=True)
        _mark_unsettled(store.root / kind / name)  # its settle thread died
    with store._locks.name("models", "a-held"):
        assert Store(store.root).recover() == 3
    assert ["settling" in store.model(n).meta for n in ("a-held", "b-orphan", "c-orphan")] == [True, False, False]
    assert "settling" not in store.dataset("d").meta
    assert "settling" in json.loads((store.root / "models" / "Upper" / "apt.json").read_text())
    assert Store(store.root).recover() == 1  # its holder is gone now


def test_a_name_lock_waits_by_default_is_created_rw_r_r_and_releases_a_vanished_file(tmp_path):
    held = NameLock(tmp_path / "l")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / "l").st_mode) == 0o644 & ~umask
    waiter = threading.Thread(target=lambda: NameLock(tmp_path / "l").release())
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive(), "a lock taken without blocking=False did not wait"
    held.release()
    waiter.join(10)
    claim = NameLock(tmp_path / "once")
    (tmp_path / "once").unlink()  # removed meanwhile (a clean-up that took the folder it guarded)
    claim.release(remove=True)
    assert not claim.held


def test_an_invalid_name_is_refused_in_one_sentence():
    from apt_model.store import validate_name

    assert str(pytest.raises(errors.InvalidArgument, validate_name, "Bad/x").value) == (
        "Invalid model name 'Bad/x': use 1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or "
        "digit (no '/', no '..').")
    assert str(pytest.raises(errors.InvalidArgument, validate_name, 7, "dataset").value).startswith(
        "Invalid dataset name 7:")
    # the rule is the whole name: a trailing newline ('$' matches before one) is refused too
    assert str(pytest.raises(errors.InvalidArgument, validate_name, "abc\n").value).startswith(
        "Invalid model name 'abc\\n':")


def test_a_name_lock_that_is_taken_is_not_held_and_a_released_one_can_be_taken(tmp_path):
    first = NameLock(tmp_path / "l")
    second = NameLock(tmp_path / "l", blocking=False)
    assert first.held and not second.held
    second.release()  # releasing what was never held is a no-op
    first.release(remove=True)
    assert not (tmp_path / "l").exists()
    with NameLock(tmp_path / "l", blocking=False) as third:
        assert third.held
    assert not third.held
