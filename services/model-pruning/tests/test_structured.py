"""Structured pruning on a tiny apt model: shapes, config, rounding, reload without the project."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from apt_model import errors
from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2 as pb
from apt_model.modeling.io import load_model, read_config
from apt_model.runtime.results import to_message
from apt_model.store import Store

from apt_prune.prune import run_prune
from apt_prune.spec import PruneSpec
from apt_prune.structured import plan_structured

TINY = {"num_attention_heads": 4, "num_key_value_heads": 2, "hidden_size": 64, "intermediate_size": 176}

RELOAD = r"""
import json, sys, torch
from transformers import AutoModelForCausalLM
m = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
with torch.no_grad():
    logits = m(input_ids=torch.tensor([[1, 5, 9, 12, 40]])).logits
a = m.model.layers[0]
print(json.dumps({"finite": bool(torch.isfinite(logits).all()), "vocab": logits.shape[-1],
                  "q": list(a.self_attn.q_proj.weight.shape), "k": list(a.self_attn.k_proj.weight.shape),
                  "o": list(a.self_attn.o_proj.weight.shape), "up": list(a.mlp.up_proj.weight.shape),
                  "ours": [k for k in sys.modules if k.startswith(("apt_model", "apt_prune"))]}))
"""


def test_structured_keep_width_shrinks_consistently_and_reloads_with_plain_transformers(home, ctx):
    # Heads and MLP only (the width is kept); tests/test_width.py covers the default, all three.
    store = Store(home)
    s = PruneSpec.from_request(pb.PruneRequest(name="tiny", output_name="st", strategy="structured", ratio=0.5,
                                               prune_heads=True, prune_mlp=True,
                                               seq_len=32, batch_size=4, recovery_steps=3,
                                               recovery_path=str(home / "corpus.txt")))
    report = run_prune(store, s, ctx)
    cfg = read_config(store.model("st").path)
    assert (cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]) == (2, 1, 16)
    assert cfg["intermediate_size"] == 88 and cfg["hidden_size"] == 64
    model = load_model(store.model("st").path)
    for layer in model.model.layers:
        assert tuple(layer.self_attn.q_proj.weight.shape) == (32, 64)
        assert tuple(layer.self_attn.k_proj.weight.shape) == (16, 64)
        assert tuple(layer.self_attn.v_proj.weight.shape) == (16, 64)
        assert tuple(layer.self_attn.o_proj.weight.shape) == (64, 32)
        assert tuple(layer.mlp.gate_proj.weight.shape) == (88, 64)
        assert tuple(layer.mlp.down_proj.weight.shape) == (64, 88)
    assert report["after"]["parameters"]["non_embedding"] < 0.56 * report["before"]["parameters"]["non_embedding"]
    assert report["after"]["size_bytes"] < report["before"]["size_bytes"]
    assert report["structured"]["heads"]["kv_heads"] == [2, 1]
    typed = to_message(pb.PruneResult, report)  # as the job runtime turns it into the declared result
    structured = typed.structured
    assert list(structured.heads.query_heads) == [4, 2] and list(structured.mlp.intermediate_size) == [176, 88]
    assert typed.recovery_steps == 3 and typed.HasField("recovery_loss_last") and not typed.HasField("lottery")
    # A fresh interpreter that never imports this project loads it.
    proc = subprocess.run([sys.executable, "-I", "-c", RELOAD, str(store.model("st").path)],
                          capture_output=True, text=True, timeout=300, cwd="/")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"finite": True, "vocab": cfg["vocab_size"], "q": [32, 64], "k": [16, 64], "o": [64, 32],
                   "up": [88, 64], "ours": []}


def test_structured_taylor_heads_only(home, ctx):
    store = Store(home)
    s = PruneSpec.from_request(pb.PruneRequest(name="tiny", output_name="th", strategy="structured", ratio=0.5,
                                               importance="taylor", prune_heads=True, seq_len=32, batch_size=4,
                                               calibration_path=str(home / "corpus.txt")))
    report = run_prune(store, s, ctx)
    cfg = read_config(store.model("th").path)
    assert cfg["intermediate_size"] == 176 and cfg["num_attention_heads"] == 2
    assert report["importance"] == "taylor" and report["reload"]["finite"]


def test_ratio_that_splits_a_head_group_is_rounded_and_shown():
    plan = plan_structured(TINY, 0.3, True, True)
    assert plan.head_units_removed == 1 and plan.num_heads_after == 2 and plan.num_kv_heads_after == 1
    assert any("rounded to 1 (50%)" in n for n in plan.report()["rounding"])
    assert plan.mlp_removed == 53  # 0.3 * 176 = 52.8


@pytest.mark.parametrize("ratio, why", [(0.2, "rounds to 0"), (0.8, "rounds to all")])
def test_ratio_that_would_break_head_groups_is_refused(ratio, why):
    with pytest.raises(errors.InvalidArgument, match=why):
        plan_structured(TINY, ratio, True, True)


def test_mqa_prunes_query_heads():
    plan = plan_structured({**TINY, "num_key_value_heads": 1}, 0.5, True, False)
    assert (plan.head_unit, plan.num_heads_after, plan.num_kv_heads_after) == ("query_head", 2, 1)
