"""Fixtures: a store with two tiny models trained by core train (so their training_log.jsonl
and lineage are the platform's own), a model derived from one of them, a model with another
tokenizer, and a mixed English/Chinese evaluation text."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from apt_model.modeling.io import load_model, load_tokenizer, save_model
from apt_model.runtime.jobs import JobContext, JobManager
from apt_model.store import Store
from apt_model.testing import SAMPLE_TEXT, make_tiny_model
from gateway.core.train import TrainSpec, run_train

torch.set_num_threads(1)

CORPUS = [
    "Dashboards show how the loss of a model falls as it trains on more and more text.",
    "Attention maps show which earlier tokens each head of the model looks at.",
    "A comparison report puts two models side by side on the same evaluation text.",
    "def area(w, h):\n    return w * h\n\nprint(area(3, 4))\n",
    "注意力图显示模型的每个头关注哪些之前的词。",
    "训练曲线显示损失随着训练而下降。",
] * 10

PLUGIN_DIR = Path(__file__).resolve().parents[1]

EVAL = ["The loss of a model falls as it trains on more text.", "每个头关注之前的词。",
        "A report puts two models side by side.", "模型的损失随着训练而下降。",
        "Attention maps show which tokens each head looks at."]


def train(store: Store, name: str, corpus: str, **kw) -> None:
    spec = TrainSpec(name=name, corpus_paths=(corpus,), vocab_size=384, seq_len=32, batch_size=4,
                     max_steps=kw.pop("max_steps", 24), eval_every=8, checkpoint_every=0, device="cpu", **kw)
    run_train(store, spec, JobContext(JobManager("fixture"), "fixture:train"))


@pytest.fixture(scope="session")
def seeded_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("viz-home")
    store = Store(home)
    corpus = home.parent / "viz-corpus.txt"
    corpus.write_text("\n\n".join(CORPUS), encoding="utf-8")
    train(store, "run-a", str(corpus), learning_rate=3e-3)
    train(store, "run-b", str(corpus), learning_rate=1e-3, tokenizer_from="run-a")
    derive(store, "run-a", "run-a-half")
    make_tiny_model(store, "other-tok", vocab_size=320, texts=SAMPLE_TEXT + CORPUS, seed=3)
    (home.parent / "viz-eval.txt").write_text("\n\n".join(EVAL), encoding="utf-8")
    return home


def derive(store: Store, parent: str, name: str) -> None:
    """A child of ``parent`` as an operation stores one: half of its MLP weights zeroed, with
    lineage and a metric the dashboard's edge shows as a delta."""
    folder = store.model(parent).path
    model, tok = load_model(folder), load_tokenizer(folder)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.mlp.down_proj.weight[:, ::2] = 0
    metrics = {"parameters": store.model(parent).meta["metrics"]["parameters"],
               "val_loss": store.model(parent).meta["metrics"]["val_loss"] + 0.25}
    with store.create("models", name, operation="prune", parent=parent, parameters={"ratio": 0.5},
                      metrics=metrics) as tmp:
        save_model(model, tok, tmp)


@pytest.fixture
def home(seeded_home, tmp_path):
    """A copy of the seeded store; its data root (tmp_path) holds the evaluation text."""
    dst = tmp_path / "home"
    shutil.copytree(seeded_home, dst)
    shutil.copy(seeded_home.parent / "viz-eval.txt", tmp_path / "eval.txt")
    return dst
