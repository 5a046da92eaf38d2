"""Fixtures: a real store with a generated problem dataset and a tiny model whose tokenizer was
trained on the problems (it spells digits and Chinese) and briefly pretrained on them."""

from __future__ import annotations

import json
import random

import pytest
import torch

from apt_model.store import Store
from apt_model.testing import make_tiny_model, pretrain
from apt_reason import data, tasks

torch.set_num_threads(1)


def problem_texts(n: int = 200) -> list[str]:
    train_t, _ = tasks.split_templates(["en", "zh"], 2, 0)
    rng = random.Random(7)
    return [f"{p.question}\n{tasks.completion(p.reasoning, p.answer, 'cot')}"
            for p in tasks.generate(train_t, n, 1, 3, 20, 0.3, rng)]


@pytest.fixture(scope="session")
def seeded_home(tmp_path_factory):
    """A store holding dataset 'probs' (generated: 200 train, 20 eval rows) and model 'lm'."""
    home = tmp_path_factory.mktemp("reason-home")
    store = Store(home)
    from apt_model.testing import JobRecorder

    data.generate_dataset(store, data.GenerateSpec("probs", train_size=200, eval_size=20, max_steps=2),
                          JobRecorder())
    texts = problem_texts()
    make_tiny_model(store, "lm", texts=texts, vocab_size=400, seed=1)
    pretrain(store, "lm", texts, steps=30, seq_len=48)
    return home


@pytest.fixture
def push_rows():
    """Write a dataset as a user would push it: raw lines, as given."""
    return _push_rows


def _push_rows(store: Store, name: str, train: list, evals: list) -> None:
    with store.create("datasets", name, operation="test") as folder:
        for split, rows in (("train", train), ("eval", evals)):
            (folder / f"{split}.jsonl").write_text(
                "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                encoding="utf-8")


@pytest.fixture(scope="session")
def verifier_home(seeded_home, tmp_path_factory):
    """seeded_home plus a process verifier 'pv' and an outcome verifier 'ov' (briefly trained from 'lm')."""
    import shutil

    from apt_model.testing import JobRecorder
    from apt_reason import verifier

    home = tmp_path_factory.mktemp("reason-vhome") / "home"
    shutil.copytree(seeded_home, home)
    store = Store(home)
    for name, kind in (("pv", "process"), ("ov", "outcome")):
        verifier.run_verifier(store, verifier.VerifierSpec("lm", "probs", name, max_steps=8, kind=kind, batch_size=8,
                                                           eval_examples=8, device="cpu", checkpoint_every=0),
                              JobRecorder())
    return home


@pytest.fixture
def vhome(verifier_home, tmp_path):
    import shutil

    dst = tmp_path / "vhome"
    shutil.copytree(verifier_home, dst)
    return dst


def _coin_rows(n: int) -> list[dict]:
    """Questions whose answer is 1 or 2, with no way to tell which: a model that learned the
    format answers each right about half the time, so groups get differing rewards."""
    return [{"question": f"Guess the coin number {i}.", "reasoning": "Guess.", "answer": str(1 + i % 2)}
            for i in range(n)]


@pytest.fixture
def coin_rows():
    """coin_rows(n): ``n`` coin questions (answer 1 or 2, no way to tell which)."""
    return _coin_rows


@pytest.fixture
def coin_sft(home) -> Store:
    """The test's store with dataset 'coin' (40 train, 6 eval questions) and 'coin-sft': 'lm' taught
    the answer format on it (40 SFT steps), so its sampled answers are right about half the time
    and end at different lengths."""
    from apt_model.testing import JobRecorder
    from apt_reason import cot

    store = Store(home)
    _push_rows(store, "coin", _coin_rows(40), _coin_rows(6))
    cot.run_cot(store, cot.CotSpec("lm", "coin", "coin-sft", max_steps=40, target="answer_only", batch_size=8,
                                   learning_rate=0.003, eval_questions=2, max_new_tokens=8, device="cpu",
                                   checkpoint_every=0), JobRecorder())
    return store
