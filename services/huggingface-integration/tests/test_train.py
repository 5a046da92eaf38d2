"""HF Trainer fine-tune of a tiny model on a stored dataset lowers the eval loss."""

from __future__ import annotations


import pytest

import json
import math

from apt_model import errors
from apt_model.modeling import trainlog
from apt_model.testing import write_sample_jsonl

from apt_hf.datasets_io import DatasetSpec, run_load_dataset
from apt_hf.importer import ImportSpec, run_import
from apt_hf.trainer import TrainSpec, pack, run_train


@pytest.fixture
def model_and_data(tmp_path, store, run_job, llama_dir):
    assert run_job("StartImportModel",
                   lambda ctx: run_import(store, None, ImportSpec(source=str(llama_dir), name="base"), ctx)).ok
    path = tmp_path / "corpus.jsonl"
    write_sample_jsonl(path)
    assert run_job("StartLoadDataset",
                   lambda ctx: run_load_dataset(store, None, DatasetSpec(source=str(path), name="corpus"), ctx)).ok
    return store


def test_finetune_lowers_eval_loss(model_and_data, run_job):
    store = model_and_data
    spec = TrainSpec(model="base", dataset="corpus", output_name="tuned", seq_len=32, learning_rate=3e-3,
                     batch_size=8, grad_accum=1, max_steps=30, seed=0, eval_fraction=0.2)
    run = run_job("StartTrain", lambda ctx: run_train(store, spec, ctx), timeout=300)
    assert run.ok, run.final.error_message
    res = run.final.result
    assert res["eval_loss"] < res["eval_loss_before"] - 0.5, res
    assert res["steps"] == 30
    typed = run.final.response  # the declared TrainResult
    assert (typed.name, typed.parent, typed.steps, typed.train_tokens) == ("tuned", "base", 30, res["train_tokens"])
    losses = run.metric_values("loss")
    assert len(losses) >= 5  # streamed while training
    entry = store.model("tuned")
    assert entry.parent == "base" and entry.meta["lineage"]["operation"] == "hf-train"
    assert entry.meta["metrics"]["eval_loss"] == res["eval_loss"]
    assert entry.meta["lineage"]["parameters"]["dataset"] == "corpus"
    # training_log.jsonl: one row per optimiser step, as core train, pruning and distillation write
    rows = trainlog.read(entry.path)
    assert [r["step"] for r in rows] == list(range(1, 31))
    assert all(math.isfinite(r["loss"]) and r["grad_norm"] > 0 and r["lr"] > 0 and r["tokens_per_s"] > 0
               for r in rows)
    assert [r["step"] for r in rows if "block_grad_norms" in r] == [1, 10, 20, 30]
    layers = json.loads((entry.path / "config.json").read_text())["num_hidden_layers"]
    assert len(rows[0]["block_grad_norms"]) == layers and all(n > 0 for n in rows[0]["block_grad_norms"])
    assert rows[-1]["val_loss"] == pytest.approx(res["eval_loss"], abs=1e-5)
    assert trainlog.summary(rows)["steps"] == 30


def test_two_ranks_finetune_through_the_trainers_own_ddp(model_and_data, run_job):
    """--workers 2: torchrun ranks, the Trainer's DDP (gloo), rank 0 stores; the job looks the same."""
    store = model_and_data
    spec = TrainSpec(model="base", dataset="corpus", output_name="tuned2", seq_len=32, learning_rate=3e-3,
                     batch_size=8, grad_accum=1, max_steps=30, seed=0, eval_fraction=0.2, workers=2)
    run = run_job("StartTrain", lambda ctx: run_train(store, spec, ctx), timeout=300)
    assert run.ok, run.final.error_message
    res = run.final.result
    assert res["steps"] == 30 and res["eval_loss"] < res["eval_loss_before"] - 0.5, res
    # rank 0's progress reached the job (the launcher relays it in bursts every 0.2 s, and a
    # watcher sees the latest of a burst, so how many distinct values arrive depends on speed)
    assert run.metric_values("loss")
    rows = trainlog.read(store.model("tuned2").path)
    assert [r["step"] for r in rows] == list(range(1, 31))
    assert not (store.root / ".runs" / "hf-train-tuned2").exists()  # removed after a run that succeeded


def test_train_validation(model_and_data, run_job):
    store = model_and_data
    base = dict(model="base", dataset="corpus", output_name="t2", text_field="", seq_len=0, learning_rate=0,
                epochs=0, batch_size=0, grad_accum=0, seed=0, eval_fraction=0, max_steps=0, overwrite=False,
                workers=0)
    for bad, match in [({"learning_rate": 2.0}, "learning_rate"), ({"output_name": "base"}, "differ"),
                       ({"eval_fraction": 0.9}, "eval_fraction"), ({"seq_len": 4}, "seq_len"),
                       ({"batch_size": 3, "workers": 2}, "multiple of workers")]:
        with pytest.raises(errors.InvalidArgument, match=match):
            TrainSpec.from_request(type("R", (), {**base, **bad})())
    too_long = TrainSpec(model="base", dataset="corpus", output_name="t3", seq_len=32768, max_steps=1)
    run = run_job("StartTrain", lambda ctx: run_train(store, too_long, ctx))
    assert run.final.error_code == "INVALID_ARGUMENT" and "too small" in run.final.error_message
    assert not store.exists("models", "t3")


def test_pack_joins_documents_with_eos(store, llama_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(llama_dir)
    blocks = pack(["hello world", "another document here"], tok, 4)
    flat = [t for b in blocks for t in b]
    assert all(len(b) == 4 for b in blocks) and tok.eos_token_id in flat
