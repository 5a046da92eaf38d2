"""Fixtures for the core commands: a store with a tiny real model, a real gateway on loopback."""

from __future__ import annotations

import pytest
import torch

from apt_model.store import Store
from apt_model.testing import SAMPLE_TEXT, make_tiny_model

torch.set_num_threads(1)


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "home")


@pytest.fixture
def tiny(store) -> str:
    make_tiny_model(store, "tiny", vocab_size=320)
    return "tiny"


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(SAMPLE_TEXT), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    from gateway.testing import start_gateway, stop_gateway

    gw = start_gateway(tmp_path_factory.mktemp("gw") / "home")
    yield gw
    stop_gateway(gw)
