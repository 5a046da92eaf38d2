"""Fixtures: tiny real checkpoints (Llama- and GPT-2-style), a store, local hub servers, jobs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from apt_model.store import Store
from apt_model.testing import make_tiny_model, write_sample_jsonl
from apt_model.testing.hubs import LocalHfHubServer, LocalModelScopeServer

from apt_hf.datasets_io import DatasetSpec, run_load_dataset
from apt_hf.importer import ImportSpec, run_import
from apt_hf_testing.helpers import HUB_TOKENS, MS_NAMESPACES, MS_TOKEN, JobRun

@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory) -> Path:
    """A tiny apt-preset (LlamaForCausalLM) checkpoint with its tokenizer, in HF layout."""
    store = Store(tmp_path_factory.mktemp("src-llama"))
    return make_tiny_model(store, "llama", seed=1)


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory, llama_dir) -> Path:
    """A tiny GPT2LMHeadModel (tied embeddings) sharing the llama fixture's tokenizer."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tok = AutoTokenizer.from_pretrained(llama_dir)
    config = GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(2)
    folder = tmp_path_factory.mktemp("src-gpt2")
    GPT2LMHeadModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "apt-home")


@pytest.fixture
def model_and_data(tmp_path, store, run_job, llama_dir) -> Store:
    """The store with model "base" (the llama fixture) and dataset "corpus" (the sample JSONL)."""
    assert run_job("StartImportModel",
                   lambda ctx: run_import(store, None, ImportSpec(source=str(llama_dir), name="base"), ctx)).ok
    path = tmp_path / "corpus.jsonl"
    write_sample_jsonl(path)
    assert run_job("StartLoadDataset",
                   lambda ctx: run_load_dataset(store, None, DatasetSpec(source=str(path), name="corpus"), ctx)).ok
    return store


@pytest.fixture
def hf_hub():
    with LocalHfHubServer(tokens=HUB_TOKENS) as hub:
        yield hub


@pytest.fixture
def ms_hub():
    with LocalModelScopeServer(tokens={MS_TOKEN}, namespaces=MS_NAMESPACES) as hub:
        yield hub


@pytest.fixture
def no_xet(monkeypatch):
    """Same as HF_HUB_DISABLE_XET=1 at process start: the local hub speaks LFS, not Xet."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)


@pytest.fixture
def run_job():
    return JobRun
