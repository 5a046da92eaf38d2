"""Fixtures: a real store with briefly trained tiny teachers and a real text corpus."""

from __future__ import annotations


import pytest
import torch

from apt_model.store import Store
from apt_model.testing import SAMPLE_TEXT, make_tiny_model, pretrain

torch.set_num_threads(1)

CORPUS = [
    "The teacher model reads the text and the student model learns from its answers.",
    "Distillation moves knowledge from a large network into a small one at lower cost.",
    "Small models can still learn the patterns of language when a teacher guides them.",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))\n",
    "机器学习是人工智能的一个分支。学生模型向教师模型学习。",
] * 12


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




@pytest.fixture(autouse=True)
def _every_step(report_every_step):
    """The tests read loss curves from the job's reports (apt_model.testing.fixtures)."""
