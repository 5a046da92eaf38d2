"""Training: resume continues the same loss curve; the result loads with plain transformers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from apt_model import errors
from apt_model.gen.apt.gateway.v1 import gateway_pb2 as pb
from apt_model.runtime.results import to_message
from apt_model.testing import JobRecorder
from apt_model.modeling.checkpoint import RunCheckpoint
from gateway.core.train import TrainSpec, lr_at, run_train

SMALL = dict(vocab_size=300, seq_len=32, batch_size=4, max_steps=12, eval_every=6, checkpoint_every=0,
             learning_rate=3e-3)


@pytest.fixture(autouse=True)
def _every_step(report_every_step):
    """JobRecorder(cancel_at_step=N) acts on the step reports (apt_model.testing.fixtures)."""


def test_resume_continues_the_same_loss_curve(store, corpus_file):
    full = run_train(store, TrainSpec(name="full", corpus_paths=(str(corpus_file),), **SMALL).validate(store),
                     JobRecorder())
    spec = TrainSpec(name="split", corpus_paths=(str(corpus_file),), **SMALL).validate(store)
    with pytest.raises(errors.Cancelled):
        run_train(store, spec, JobRecorder(cancel_at_step=5))
    assert RunCheckpoint(store, "train", "split").step() == 5
    assert not store.exists("models", "split")
    with pytest.raises(errors.FailedPrecondition, match="--resume"):
        TrainSpec(name="split", corpus_paths=(str(corpus_file),), **SMALL).validate(store)
    resumed_spec = TrainSpec(name="split", corpus_paths=(str(corpus_file),), resume=True, **SMALL)
    resumed = run_train(store, resumed_spec.validate(store), JobRecorder())
    assert [round(x["loss"], 5) for x in resumed["loss_curve"]] == [round(x["loss"], 5) for x in full["loss_curve"]]
    assert abs(resumed["val_loss"] - full["val_loss"]) < 1e-5
    assert full["loss_curve"][-1]["loss"] < full["loss_curve"][0]["loss"]  # it learns
    typed = to_message(pb.TrainResult, resumed)  # what StartTrain's job sends: the declared TrainResult
    assert [p.step for p in typed.val_curve] == [6, 12] and typed.loss_curve[-1].HasField("grad_norm")
    assert RunCheckpoint(store, "train", "split").step() is None  # the checkpoint is gone once the model is stored


def test_resume_refuses_changed_settings(store, corpus_file):
    spec = TrainSpec(name="m", corpus_paths=(str(corpus_file),), **SMALL).validate(store)
    with pytest.raises(errors.Cancelled):
        run_train(store, spec, JobRecorder(cancel_at_step=2))
    changed = TrainSpec(name="m", corpus_paths=(str(corpus_file),), resume=True, **{**SMALL, "seq_len": 16})
    with pytest.raises(errors.FailedPrecondition, match="seq_len"):
        run_train(store, changed.validate(store), JobRecorder())


def test_trained_model_loads_with_plain_transformers(store, corpus_file, tmp_path):
    run_train(store, TrainSpec(name="plain", corpus_paths=(str(corpus_file),), **SMALL).validate(store),
              JobRecorder())
    entry = store.model("plain")
    assert entry.meta["lineage"]["operation"] == "train"
    assert set(entry.meta["files"]) >= {"config.json", "model.safetensors", "tokenizer.json",
                                        "generation_config.json"}
    script = (
        "import sys, json, torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"p = {str(entry.path)!r}\n"
        "m = AutoModelForCausalLM.from_pretrained(p); t = AutoTokenizer.from_pretrained(p)\n"
        "ids = t('机器学习 and code', return_tensors='pt').input_ids\n"
        "out = m(ids, labels=ids)\n"
        "assert torch.isfinite(out.loss)\n"
        "assert t.decode(ids[0]) == '机器学习 and code'\n"
        "bad = [k for k in sys.modules if k.split('.')[0] in ('apt_model', 'gateway')]\n"
        "print(json.dumps({'arch': type(m).__name__, 'project_modules': bad}))\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"arch": "LlamaForCausalLM", "project_modules": []}


def test_bad_settings(store, corpus_file):
    def spec(**kw):
        return TrainSpec(**{"name": "x", "corpus_paths": (str(corpus_file),), **SMALL, **kw}).validate(store)

    with pytest.raises(errors.InvalidArgument, match="Invalid model name"):
        spec(name="../evil")
    with pytest.raises(errors.InvalidArgument, match="learning_rate"):
        spec(learning_rate=5.0)
    with pytest.raises(errors.InvalidArgument, match="unknown size"):
        spec(size="huge")
    with pytest.raises(errors.InvalidArgument, match="No corpus"):
        spec(corpus_paths=())
    with pytest.raises(errors.NotFound):
        spec(dataset="nope")
    with pytest.raises(errors.InvalidArgument, match="model_type"):
        spec(config_json='{"hidden_size": 8}')
    with pytest.raises(errors.FailedPrecondition, match="no checkpoint"):
        spec(resume=True)


def test_corpus_too_small_fails_the_job(store, tmp_path):
    tiny_corpus = tmp_path / "t.txt"
    tiny_corpus.write_text("just a few words here, nothing more", encoding="utf-8")
    spec = TrainSpec(name="small", corpus_paths=(str(tiny_corpus),), **{**SMALL, "seq_len": 64}).validate(store)
    with pytest.raises(errors.InvalidArgument, match="fewer than one training sequence"):
        run_train(store, spec, JobRecorder())
    assert not store.exists("models", "small")


def test_gpt2_config_trains(store, corpus_file):
    cfg = {"model_type": "gpt2", "n_embd": 32, "n_layer": 1, "n_head": 2, "n_positions": 64, "vocab_size": 300}
    spec = TrainSpec(name="g", corpus_paths=(str(corpus_file),), config_json=json.dumps(cfg),
                     **{**SMALL, "max_steps": 3, "eval_every": 3}).validate(store)
    result = run_train(store, spec, JobRecorder())
    assert result["steps"] == 3
    assert json.loads((store.model("g").path / "config.json").read_text())["model_type"] == "gpt2"


def test_lr_schedule():
    spec = TrainSpec(name="s", max_steps=100, warmup_steps=10, learning_rate=1e-3, min_lr_ratio=0.1)
    assert lr_at(spec, 0) == pytest.approx(1e-4)
    assert lr_at(spec, 9) == pytest.approx(1e-3)
    assert lr_at(spec, 100) == pytest.approx(1e-4)
    assert lr_at(spec, 55) == pytest.approx(1e-4 + 0.9e-3 * 0.5)


def test_training_log_has_every_step_and_a_planted_spike(store, corpus_file, monkeypatch):
    """training_log.jsonl in the stored model: one row per step (300 of 300), finite gradient
    norms, per-block norms every BLOCK_NORMS_EVERY steps, validation rows; a garbage batch at
    step 200 shows up as a loss spike at step 200, which a sampled curve could drop."""
    import torch

    from apt_model.modeling import lm, trainlog

    real, garbage_step = lm.random_windows, 200

    def windows(ids, batch_size, seq_len, seed, step):
        batch = real(ids, batch_size, seq_len, seed, step)
        if step == garbage_step - 1:  # step index is 0-based: optimiser step 200
            return torch.full_like(batch, int(ids.max()))  # one token repeated: nothing like the text
        return batch

    monkeypatch.setattr(lm, "random_windows", windows)
    spec = TrainSpec(name="logged", corpus_paths=(str(corpus_file),), **{**SMALL, "max_steps": 300, "eval_every": 100})
    run_train(store, spec.validate(store), JobRecorder())
    rows = trainlog.read(store.model("logged").path)
    assert [r["step"] for r in rows] == list(range(1, 301))
    assert all(r["grad_norm"] is not None and r["grad_norm"] == r["grad_norm"] and r["grad_norm"] < 1e6
               for r in rows)
    assert all(r["lr"] > 0 and r["tokens_per_s"] > 0 for r in rows)
    with_blocks = [r["step"] for r in rows if "block_grad_norms" in r]
    assert with_blocks == [1, *range(10, 301, 10)] and len(rows[0]["block_grad_norms"]) == 2  # two blocks
    assert [r["step"] for r in rows if "val_loss" in r] == [100, 200, 300]
    spike = rows[garbage_step - 1]
    around = [r["loss"] for r in rows[garbage_step - 21:garbage_step - 1]]
    assert spike["loss"] > 1.5 * max(around), (spike["loss"], max(around))
    summary = trainlog.summary(rows)
    assert summary["steps"] == 300 and garbage_step in [s["step"] for s in summary["spikes"]]
