"""Fixtures: a real store with tiny models carrying planted faults, a real training log written
by the platform's training loop with a planted learning-rate fault, and a probe corpus."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from apt_model.modeling import trainlog
from apt_model.modeling.io import load_model, load_tokenizer, save_model
from apt_model.modeling.loop import Loop
from apt_model.modeling.schedule import warmup_cosine
from apt_model.store import Store
from apt_model.testing import SAMPLE_TEXT, JobRecorder, make_tiny_model, pretrain

torch.set_num_threads(1)

CORPUS = [
    "Gradient flow shows which blocks learn and which do not.",
    "Activations that explode or vanish point at a broken layer.",
    "A loss spike is a batch, a learning rate or a bug; the log tells which.",
    "def step(x):\n    return x * 2\n",
] * 10
LR_FAULT_STEPS = (24, 25, 26)  # 1-based log steps where the learning rate is 50x its schedule
TRAIN_STEPS = 40


def fault_model(store: Store, source: str, name: str, plant) -> None:
    """Store a copy of ``source`` with ``plant(model)`` applied to its weights."""
    path = store.model(source).path
    model, tok = load_model(path), load_tokenizer(path)
    with torch.no_grad():
        plant(model)
    with store.create("models", name, operation="test-fault", parent=source) as folder:
        save_model(model, tok, folder)


def trained_with_log(store: Store, name: str) -> None:
    """``name`` trained by the platform's Loop for TRAIN_STEPS steps, the learning rate x50 on
    LR_FAULT_STEPS, its training_log.jsonl stored with it (as core train does)."""
    path = store.model(name).path
    model, tok = load_model(path), load_tokenizer(path)
    ids = torch.tensor(tok("\n\n".join(CORPUS))["input_ids"])
    blocks = ids[: len(ids) // 32 * 32].view(-1, 32)

    def lr_at(step: int) -> float:
        return 3e-3 * warmup_cosine(step, 5, TRAIN_STEPS) * (50 if step + 1 in LR_FAULT_STEPS else 1)

    def forward(step: int, micro: int) -> dict:
        gen = torch.Generator().manual_seed(step)
        batch = blocks[torch.randint(len(blocks), (4,), generator=gen)]
        return {"loss": model(input_ids=batch, labels=batch).loss}

    loop = Loop(JobRecorder(), model, torch.optim.AdamW(model.parameters(), lr=3e-3), lr_at, TRAIN_STEPS, 4 * 32)
    loop.run(0, forward)
    with store.create("models", name, operation="test-train", overwrite=True) as folder:
        save_model(model.eval(), tok, folder)
        trainlog.write(folder, loop.log)


GARBAGE_DOC = 20  # index of the garbage document in dataset 'corp'


def core_trained(store: Store) -> None:
    """'core': trained by the gateway's core train on store dataset 'corp' (JSON lines, one
    document a line, document GARBAGE_DOC random characters), as a user's `apt-model train` does."""
    import random

    from gateway.core.train import TrainSpec, run_train

    rng = random.Random(0)
    docs = [CORPUS[i % len(CORPUS)] + f" Note {i}." for i in range(40)]
    docs[GARBAGE_DOC] = "".join(rng.choice("qxzjkvw0123456789#%&@") for _ in range(300))
    with store.create("datasets", "corp", operation="test-corpus") as folder:
        (folder / "corpus.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    spec = TrainSpec(name="core", dataset="corp", size="tiny", vocab_size=384, seq_len=32, batch_size=4,
                     max_steps=40, eval_every=40, checkpoint_every=0, device="cpu").validate(store)
    run_train(store, spec, JobRecorder())


@pytest.fixture(scope="session")
def seeded_home(tmp_path_factory):
    """Models: 'tiny' (briefly trained), 'logged' (trained by the Loop, with a log), 'nan-block'
    (a NaN weight in block 1's MLP), 'zero-block' (block 1 all zeros), 'hot-block' (block 1's
    weights x1000); beside the store, data/corpus.txt (probe text) and data/metrics.jsonl."""
    root = tmp_path_factory.mktemp("debug")
    home = root / "home"
    store = Store(home)
    make_tiny_model(store, "tiny", texts=SAMPLE_TEXT + CORPUS, seed=1)
    pretrain(store, "tiny", CORPUS, steps=15)
    make_tiny_model(store, "logged", texts=SAMPLE_TEXT + CORPUS, seed=2)
    trained_with_log(store, "logged")
    fault_model(store, "tiny", "nan-block", lambda m: m.model.layers[1].mlp.up_proj.weight.__setitem__((3, 5), float("nan")))
    fault_model(store, "tiny", "zero-block", lambda m: [p.zero_() for p in m.model.layers[1].parameters()])
    fault_model(store, "tiny", "hot-block", lambda m: [p.mul_(1000) for n, p in m.model.layers[1].named_parameters()
                                                       if "proj" in n])
    core_trained(store)
    data = root / "data"
    data.mkdir()
    (data / "corpus.txt").write_text("\n\n".join(CORPUS), encoding="utf-8")
    (data / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in trainlog.read(store.model("logged").path)),
                                        encoding="utf-8")
    return home


@pytest.fixture
def data(seeded_home, home):
    """The seeded data folder beside this test's store copy (the test's data root)."""
    dst = home.parent / "data"
    shutil.copytree(seeded_home.parent / "data", dst)
    return dst


@pytest.fixture
def lr_fault_steps() -> tuple[int, ...]:
    return LR_FAULT_STEPS


@pytest.fixture
def garbage_doc() -> int:
    return GARBAGE_DOC
