"""HF Trainer fine-tune of a tiny model on a stored dataset lowers the eval loss; its ranks
(DDP and FSDP2) train as one process does."""

from __future__ import annotations

import json
import math

import pytest
import torch

from apt_model import errors
from apt_model.modeling import trainlog
from apt_model.testing import assert_same_curve

from apt_hf.trainer import TrainSpec, pack, run_train


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


@pytest.mark.parametrize("sharding", ["ddp", "fsdp"])
def test_two_ranks_train_as_one_process(model_and_data, run_job, sharding):
    """--workers 2: torchrun ranks under the Trainer's own DDP, or its FSDP2 (accelerate's
    fully_shard, gloo on CPU); each rank trains its half of the same global batch, so the loss and
    gradient norm of every step are one process's, and rank 0 stores the whole model."""
    store = model_and_data
    one = TrainSpec(model="base", dataset="corpus", output_name="one", seq_len=32, learning_rate=3e-3,
                    batch_size=8, max_steps=20, seed=0, eval_fraction=0.2, device="cpu")  # 13 steps an epoch
    assert run_job("StartTrain", lambda ctx: run_train(store, one, ctx), timeout=300).ok
    two = TrainSpec(**{**one.__dict__, "output_name": "two", "workers": 2, "sharding": sharding})
    run = run_job("StartTrain", lambda ctx: run_train(store, two, ctx), timeout=300)
    assert run.ok, run.final.error_message
    res = run.final.result
    assert res["steps"] == 20 and res["eval_loss"] < res["eval_loss_before"] - 0.5, res
    # rank 0's progress reached the job (the launcher relays it in bursts every 0.2 s, and a
    # watcher sees the latest of a burst, so how many distinct values arrive depends on speed)
    assert run.metric_values("loss")
    assert_same_curve(trainlog.read(store.model("two").path), trainlog.read(store.model("one").path), 20)
    assert not (store.root / ".runs" / "hf-train-two").exists()  # removed after a run that succeeded
    # the stored model is whole (FSDP: gathered from the shards) and loads with transformers as it is
    from transformers import AutoModelForCausalLM

    stored, alone = (AutoModelForCausalLM.from_pretrained(store.model(n).path) for n in ("two", "one"))
    whole, expected = stored.state_dict(), alone.state_dict()
    assert whole.keys() == expected.keys()
    assert all(torch.allclose(whole[k], expected[k], rtol=1e-4, atol=1e-5) for k in whole)
    # rank 0's share of the parameters while training: under FSDP2 about half of each tensor
    held = res["rank_parameters"] / sum(p.numel() for p in alone.parameters())
    assert res["sharding"] == sharding and (held == 1.0 if sharding == "ddp" else 0.45 < held < 0.6), held


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_device_cuda_without_a_gpu_fails_and_stores_nothing(model_and_data, run_job):
    store = model_and_data
    spec = TrainSpec(model="base", dataset="corpus", output_name="gpu", seq_len=32, max_steps=1, device="cuda")
    run = run_job("StartTrain", lambda ctx: run_train(store, spec, ctx))
    assert run.final.error_code == "FAILED_PRECONDITION" and "--device cpu" in run.final.error_message
    assert not store.exists("models", "gpu")


def test_train_validation(model_and_data, run_job):
    store = model_and_data
    base = dict(model="base", dataset="corpus", output_name="t2", text_field="", seq_len=0, learning_rate=0,
                epochs=0, batch_size=0, grad_accum=0, seed=0, eval_fraction=0, max_steps=0, overwrite=False,
                workers=0, nodes=0, sharding="", device="")
    for bad, match in [({"learning_rate": 2.0}, "learning_rate"), ({"output_name": "base"}, "differ"),
                       ({"eval_fraction": 0.9}, "eval_fraction"), ({"seq_len": 4}, "seq_len"),
                       ({"batch_size": 3, "workers": 2}, r"multiple of workers \(2\)"),
                       ({"batch_size": 6, "workers": 2, "nodes": 2}, r"multiple of workers x nodes \(4\)"),
                       ({"nodes": 65}, "nodes must be in"), ({"sharding": "zero3"}, "unknown sharding 'zero3'"),
                       ({"device": "tpu"}, "device 'tpu' is not one of: auto, cpu, cuda")]:
        with pytest.raises(errors.InvalidArgument, match=match):
            TrainSpec.from_request(type("R", (), {**base, **bad})())
    spec = TrainSpec.from_request(type("R", (), base)())
    assert (spec.workers, spec.nodes, spec.sharding, spec.device) == (1, 1, "ddp", "auto")  # the defaults
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
