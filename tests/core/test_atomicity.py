"""A process killed while writing a model leaves the store's old state intact."""

from __future__ import annotations

import textwrap

from apt_model.store import Store


def test_kill_during_overwrite_keeps_old_model(store, tiny, tmp_path, kill_writer):
    before = store.model(tiny).meta["files"]
    marker = tmp_path / "writing"
    # A real upload through the transfer code into the same store, killed mid-file.
    script = textwrap.dedent(f"""
        import itertools, time, pathlib
        from apt_model.store import Store
        from gateway.core import transfer
        store = Store({str(store.root)!r})
        src = store.model({tiny!r}).path
        files = transfer.local_folder_files(src)
        files = [transfer.FileSpec(f.path, f.size * 50 if f.path == 'model.safetensors' else f.size, f.sha256)
                 for f in files]
        def chunks():
            for path, data in transfer.iter_local_chunks(src, files):
                yield path, data
                if path == 'model.safetensors':
                    pathlib.Path({str(marker)!r}).touch()
                    time.sleep(60)   # still writing when it is killed
        transfer.receive_upload(store, {tiny!r}, files, chunks(), overwrite=True)
    """)

    def building_beside_the_old_one() -> None:
        assert [p.name for p in (store.root / "models").iterdir() if p.name.startswith(".tmp-")]

    kill_writer(script, marker, building_beside_the_old_one)
    fresh = Store(store.root)
    assert fresh.model(tiny).meta["files"] == before
    assert fresh.verify("models", tiny) == []
    assert [e.name for e in fresh.list("models")] == [tiny]
    assert fresh.clean_temporaries() == 1  # what the gateway does at start
