"""Fixtures: a real store with briefly trained tiny teachers and a real text corpus."""

from __future__ import annotations

import shutil

import pytest
import torch

from apt_model.modeling.io import load_model, load_tokenizer, save_model
from apt_model.store import Store
from apt_model.testing import SAMPLE_TEXT, JobRecorder, make_tiny_model

torch.set_num_threads(1)

CORPUS = [
    "The teacher model reads the text and the student model learns from its answers.",
    "Distillation moves knowledge from a large network into a small one at lower cost.",
    "Small models can still learn the patterns of language when a teacher guides them.",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))\n",
    "机器学习是人工智能的一个分支。学生模型向教师模型学习。",
] * 12


def pretrain(store: Store, name: str, texts: list[str], steps: int) -> None:
    """Next-token training so the teacher has real structure to pass on."""
    path = store.model(name).path
    model, tok = load_model(path).train(), load_tokenizer(path)
    ids = torch.tensor(tok("\n\n".join(texts))["input_ids"])
    blocks = ids[: len(ids) // 32 * 32].view(-1, 32)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        batch = blocks[torch.randint(len(blocks), (8,), generator=gen)]
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    with store.create("models", name, operation="test-pretrain", overwrite=True) as tmp:
        save_model(model.eval(), tok, tmp)


@pytest.fixture(scope="session")
def seeded_home(tmp_path_factory):
    """A store holding teacher 'tiny-t' (tiny, trained), 'small-t' (small, trained) and
    'other-tok' (tiny, a tokenizer trained on different text with another vocabulary size)."""
    home = tmp_path_factory.mktemp("distill-home")
    store = Store(home)
    make_tiny_model(store, "tiny-t", size="tiny", texts=SAMPLE_TEXT + CORPUS, seed=1)
    pretrain(store, "tiny-t", CORPUS, steps=40)
    make_tiny_model(store, "small-t", size="small", texts=SAMPLE_TEXT + CORPUS, seed=2)
    pretrain(store, "small-t", CORPUS, steps=25)
    make_tiny_model(store, "other-tok", size="tiny", vocab_size=320, texts=CORPUS, seed=3)
    corpus = home / "corpus.txt"
    corpus.write_text("\n\n".join(CORPUS), encoding="utf-8")
    return home


@pytest.fixture
def home(seeded_home, tmp_path):
    """A private copy of the seeded store for one test."""
    dst = tmp_path / "home"
    shutil.copytree(seeded_home, dst)
    return dst


@pytest.fixture
def recording_context():
    """A factory of job contexts that keep every report (apt_model.testing.JobRecorder)."""
    return JobRecorder


@pytest.fixture(autouse=True)
def report_every_step(monkeypatch):
    """The tests read loss curves from the job's reports: make the training loop report every step."""
    import apt_model.modeling.loop as loop_mod

    monkeypatch.setattr(loop_mod, "REPORT_SECONDS", 0.0)
