"""Hidden-width pruning: every tensor of the residual stream shrinks together, the config says
so, the result reloads with plain transformers, and channels that carry nothing leave for free."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from apt_model import errors
from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2 as pb
from apt_model.modeling.io import load_model, load_tokenizer, read_config, save_model
from apt_model.modeling.preset import create_model, preset_config
from apt_model.runtime.results import to_message
from apt_model.store import Store

from apt_prune.importance import load_importance
from apt_prune.prune import run_prune
from apt_prune.reload import verify_reload
from apt_prune.spec import PruneSpec
from apt_prune.structured import apply_structured, plan_structured
from apt_prune.width import residual_tensors

TINY = {"num_attention_heads": 4, "num_key_value_heads": 2, "hidden_size": 64, "intermediate_size": 176,
        "num_hidden_layers": 2, "vocab_size": 384}

RELOAD = r"""
import json, sys, torch
from transformers import AutoModelForCausalLM
m = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
with torch.no_grad():
    logits = m(input_ids=torch.tensor([[1, 5, 9, 12, 40]])).logits
shapes = {n: list(p.shape) for n, p in m.named_parameters()}
print(json.dumps({"finite": bool(torch.isfinite(logits).all()), "logits": list(logits.shape), "shapes": shapes,
                  "hidden": m.config.hidden_size, "head_dim": m.config.head_dim,
                  "ours": [k for k in sys.modules if k.startswith(("apt_model", "apt_prune"))]}))
"""


def _spec(home, **kw) -> PruneSpec:
    fields = dict(name="tiny", output_name="w", strategy="structured", ratio=0.5, seq_len=32, batch_size=4,
                  eval_path=str(home / "corpus.txt"))
    return PruneSpec.from_request(pb.PruneRequest(**{**fields, **kw}))


def test_default_structured_prunes_heads_mlp_and_width_and_reloads(home, ctx):
    store = Store(home)
    spec = _spec(home, recovery_steps=2, recovery_path=str(home / "corpus.txt"))
    assert (spec.prune_heads, spec.prune_mlp, spec.prune_hidden) == (True, True, True)
    report = run_prune(store, spec, ctx)
    path = store.model("w").path
    cfg = read_config(path)
    h = cfg["hidden_size"]  # as many channels leave as make the whole model half as large
    assert (cfg["head_dim"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["intermediate_size"]) \
        == (16, 2, 1, 88)
    assert 40 < h < 56 and cfg["vocab_size"] == read_config(store.model("tiny").path)["vocab_size"]
    hidden = report["structured"]["hidden"]
    assert hidden["hidden_size"] == [64, h] and len(hidden["channels_removed"]) == 64 - h
    assert hidden["norm_gain_source"].endswith("calibration blocks")  # recovery text stands in for calibration
    typed = to_message(pb.PruneResult, report).structured.hidden  # the declared result holds all of it
    assert list(typed.hidden_size) == [64, h] and len(typed.channels_removed) == 64 - h and typed.norm_gains
    # The plain-transformers process sees every residual tensor at the new width.
    proc = subprocess.run([sys.executable, "-I", "-c", RELOAD, str(path)], capture_output=True, text=True,
                          timeout=300, cwd="/")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["finite"] and out["ours"] == [] and (out["hidden"], out["head_dim"]) == (h, 16)
    assert out["logits"] == [1, 5, cfg["vocab_size"]]  # the vocabulary is never pruned
    s, v = out["shapes"], cfg["vocab_size"]
    assert s["model.embed_tokens.weight"] == [v, h] and s["lm_head.weight"] == [v, h]
    assert s["model.norm.weight"] == [h]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        assert s[p + "input_layernorm.weight"] == s[p + "post_attention_layernorm.weight"] == [h]
        assert s[p + "self_attn.q_proj.weight"] == [32, h] and s[p + "self_attn.k_proj.weight"] == [16, h]
        assert s[p + "self_attn.v_proj.weight"] == [16, h] and s[p + "self_attn.o_proj.weight"] == [h, 32]
        assert s[p + "mlp.gate_proj.weight"] == s[p + "mlp.up_proj.weight"] == [88, h]
        assert s[p + "mlp.down_proj.weight"] == [h, 88]
    # Ratio met: the whole model is half as large, to within half a residual channel's parameters.
    before, after = report["before"]["parameters"]["total"], report["after"]["parameters"]["total"]
    assert after == sum(torch.Size(shape).numel() for shape in s.values())
    per_channel = 2 * v + 1 + cfg["num_hidden_layers"] * (32 + 16 + 16 + 32 + 3 * 88 + 2)
    assert h % 2 == 0 and abs(report["ratio_achieved"] - 0.5) <= per_channel / before  # steps of 2 channels
    assert report["ratio_achieved"] == pytest.approx(1 - after / before, abs=1e-6)
    assert report["after"]["size_bytes"] < 0.55 * report["before"]["size_bytes"]


@pytest.mark.parametrize("with_calibration", [True, False])
def test_channels_that_carry_nothing_are_the_ones_removed_and_output_is_unchanged(with_calibration, ctx):
    torch.manual_seed(0)
    cfg = preset_config("tiny", 384)
    cfg.rms_norm_eps = 1e-12  # eps is added to the mean square, so it alone would shift outputs a little
    model = create_model(cfg, seed=0).eval()
    dead = torch.tensor([5, 40, 41, 63])  # four: the width that stays must be a multiple of the 4 heads
    with torch.no_grad():
        for name, (m, axis) in residual_tensors(model).items():
            m.weight.index_fill_(axis if m.weight.dim() == 2 else 0, dead, 0.0)
    ids = torch.randint(1, 384, (4, 32))
    ref = model(input_ids=ids).logits
    plan = plan_structured(model.config.to_dict(), 0.5, False, False, True, hidden_ratio=4 / 64)
    report = apply_structured(model, plan, load_importance("magnitude"), ids if with_calibration else ids[:0], 2,
                              ctx, (0.0, 1.0))
    assert report["hidden"]["channels_removed"] == dead.tolist()
    assert model.config.hidden_size == 60
    torch.testing.assert_close(model(input_ids=ids).logits, ref, atol=1e-5, rtol=1e-4)


def test_taylor_width_only_keeps_tied_embeddings_tied_and_reloads(home, ctx, tmp_path):
    tok = load_tokenizer(Store(home).model("tiny").path)
    cfg = preset_config("tiny", len(tok), tie_word_embeddings=True)
    model = create_model(cfg, seed=0)
    calib = torch.randint(1, len(tok), (4, 16))
    plan = plan_structured(model.config.to_dict(), 0.25, False, False, True)
    apply_structured(model, plan, load_importance("taylor"), calib, 2, ctx, (0.0, 1.0))
    assert model.lm_head.weight is model.model.embed_tokens.weight and model.lm_head.weight.shape == (len(tok), 48)
    assert model.config.num_attention_heads == 4 and model.config.intermediate_size == 176
    save_model(model, tok, tmp_path / "tied")
    result = verify_reload(tmp_path / "tied")
    assert result["finite"] and result["logits_shape"][-1] == len(tok)
    reloaded = load_model(tmp_path / "tied")
    assert reloaded.lm_head.weight.data_ptr() == reloaded.model.embed_tokens.weight.data_ptr()


def test_mqa_heads_then_width_with_taylor_runs_the_pruned_attention(ctx):
    # With one KV head the query heads leave one by one, so the KV repeat factor changes; the
    # width's calibration passes run between the two cuts and must see the new head count.
    # Eager attention repeats KV heads by that factor (SDPA's GQA path would not notice).
    cfg = preset_config("tiny", 384)
    cfg.num_key_value_heads = 1
    cfg._attn_implementation = "eager"
    model = create_model(cfg, seed=0)
    calib = torch.randint(1, 384, (4, 16))
    plan = plan_structured(model.config.to_dict(), 0.5, True, False, True)
    report = apply_structured(model, plan, load_importance("taylor"), calib, 2, ctx, (0.0, 1.0))
    assert (model.config.num_attention_heads, model.config.num_key_value_heads) == (2, 1)
    assert model.config.hidden_size == 64 - plan.hidden_removed and model.config.hidden_size % 2 == 0
    assert report["heads"]["unit"] == "query_head" and len(report["hidden"]["norm_gains"]) == 5
    assert torch.isfinite(model(input_ids=calib).logits).all()


def test_unknown_residual_tensor_refuses_width_pruning(ctx):
    model = create_model(preset_config("tiny", 384), seed=0)
    model.model.register_parameter("position_table", torch.nn.Parameter(torch.zeros(256, 64)))
    plan = plan_structured(model.config.to_dict(), 0.5, False, False, True)
    with pytest.raises(errors.FailedPrecondition, match="position_table"):
        apply_structured(model, plan, load_importance("magnitude"), torch.zeros((0, 8), dtype=torch.long), 2,
                         ctx, (0.0, 1.0))


def test_default_width_is_what_reaches_the_ratio_and_none_when_heads_and_mlp_suffice():
    plan = plan_structured(TINY, 0.5, True, True, True)
    assert plan.hidden_removed == 16  # 16.57 channels make it half as large; 48 stays a multiple of 2 heads
    assert plan.notes == ("hidden: making the whole model 50% smaller takes 16.57 of 64 channels; rounded to 16 "
                          "so hidden_size (48) stays a multiple of the 2 query heads",)
    plan = plan_structured(TINY, 0.5, False, False, True)  # the width alone has to remove half
    assert plan.hidden_removed == 32
    # With a vocabulary of 8 the embeddings hardly count, and heads rounded up to 50% already
    # remove more than 30%: the width is kept, and the report says why.
    plan = plan_structured({**TINY, "vocab_size": 8}, 0.3, True, True, True)
    assert plan.hidden_removed == 0 and plan.report()["hidden"]["hidden_size"] == [64, 64]
    assert "heads and MLP alone already remove 30%" in plan.notes[-1]


def test_hidden_ratio_rounding_is_reported_and_extremes_refused():
    plan = plan_structured(TINY, 0.5, True, True, True, hidden_ratio=0.3)
    assert plan.hidden_removed == 20  # 0.3 * 64 = 19.2, and 44 is a multiple of the 2 heads left (45 is not)
    assert any(n.startswith("hidden: 30% of 64 channels is 19.20; rounded to 20") for n in plan.notes)
    assert plan.report()["hidden"]["hidden_size"] == [64, 44]
    with pytest.raises(errors.InvalidArgument, match="rounds to 0"):
        plan_structured(TINY, 0.5, False, False, True, hidden_ratio=0.005)
    with pytest.raises(errors.InvalidArgument, match="rounds to 64"):
        plan_structured(TINY, 0.5, False, False, True, hidden_ratio=0.995)


@pytest.mark.parametrize("fields, text", [
    ({"strategy": "magnitude", "hidden_ratio": 0.25}, "structured strategy only"),
    ({"prune_heads": True, "hidden_ratio": 0.25}, "width is not pruned"),
    ({"hidden_ratio": 1.5}, "strictly between 0 and 1"),
])
def test_bad_hidden_ratio_is_refused(home, fields, text):
    with pytest.raises(errors.InvalidArgument, match=text):
        _spec(home, **fields)


def test_parts_named_explicitly_are_the_only_ones_pruned(home):
    spec = _spec(home, prune_heads=True, prune_mlp=True)
    assert (spec.prune_heads, spec.prune_mlp, spec.prune_hidden) == (True, True, False)
    spec = _spec(home, prune_hidden=True, hidden_ratio=0.25)
    assert (spec.prune_heads, spec.prune_mlp, spec.prune_hidden, spec.hidden_ratio) == (False, False, True, 0.25)
