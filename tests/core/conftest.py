"""Fixtures for the core commands: a store with a tiny real model, a real gateway on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from apt_model.testing import SAMPLE_TEXT

torch.set_num_threads(1)


@pytest.fixture
def kill_writer():
    """kill_writer(script, marker, check): run ``script`` in a fresh Python, wait until it creates
    ``marker`` (the point where it should die), call ``check()`` while it is still alive, SIGKILL it."""
    root = Path(__file__).resolve().parents[2]

    def run(script: str, marker: Path, check=lambda: None) -> None:
        proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(root)}, cwd=root)
        try:
            deadline = time.time() + 60
            while not marker.exists():
                assert proc.poll() is None, "the writer ended before it was killed"
                assert time.time() < deadline
                time.sleep(0.05)
            check()
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(10)

    return run


@pytest.fixture
def held(monkeypatch):
    """Hold every background settle of the store before it hashes, until the test sets the
    first event; the second is set once a settle is waiting there."""
    from apt_model.store import fs as store_fs

    gate, entered = threading.Event(), threading.Event()
    real = store_fs.hash_and_fsync

    def slow(folder):
        entered.set()
        assert gate.wait(30), "the test never released the settle"
        return real(folder)

    monkeypatch.setattr(store_fs, "hash_and_fsync", slow)
    yield gate, entered
    gate.set()


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(SAMPLE_TEXT), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    from gateway.testing import start_gateway, stop_gateway

    # the tests' temporary folders are the operator's data root: tests name corpus files there
    gw = start_gateway(tmp_path_factory.mktemp("gw") / "home", data_roots=(str(tmp_path_factory.getbasetemp()),))
    yield gw
    stop_gateway(gw)
