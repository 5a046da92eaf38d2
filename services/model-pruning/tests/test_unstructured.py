"""Unstructured strategies on a tiny apt model: ratios, patterns, gradients, rewinding, plugins."""

from __future__ import annotations

import json

import pytest
import torch

from apt_model import errors
from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2 as pb
from apt_model.modeling.io import load_model, load_tokenizer
from apt_model.store import Store

from apt_prune import unstructured
from apt_prune.data import batches, load_text_sets
from apt_prune.measure import prunable_linears
from apt_prune.prune import REPORT_FILE, run_prune
from apt_prune.spec import PruneSpec


def spec(home, **kw) -> PruneSpec:
    fields = dict(name="tiny", output_name="out", ratio=0.5, seq_len=32, batch_size=4,
                  calibration_path=str(home / "corpus.txt"))
    fields.update(kw)
    return PruneSpec.from_request(pb.PruneRequest(**fields))


def test_magnitude_global_meets_ratio_and_reloads(home, ctx):
    store = Store(home)
    report = run_prune(store, spec(home, strategy="magnitude", ratio=0.6), ctx)
    model = load_model(store.model("out").path)
    zeros = sum(int((m.weight == 0).sum()) for m in prunable_linears(model).values())
    total = sum(m.weight.numel() for m in prunable_linears(model).values())
    assert abs(zeros / total - 0.6) < 1e-3
    assert report["ratio_achieved"] == pytest.approx(0.6, abs=1e-3)
    assert "does not speed up dense kernels" in report["note"]
    assert report["reload"]["finite"] and report["reload"]["project_modules"] == []
    assert report["before"]["perplexity"] > 1 and report["after"]["perplexity"] > 1
    entry = store.model("out")
    assert entry.parent == "tiny" and entry.meta["lineage"]["parameters"]["strategy"] == "magnitude"
    on_disk = json.loads((entry.path / REPORT_FILE).read_text())
    assert set(on_disk["sparsity_by_layer"]) == set(prunable_linears(model))
    assert on_disk["before"]["size_bytes"] > 0 and on_disk["after"]["size_bytes"] > 0


def test_layer_scope_prunes_every_layer_to_the_ratio(home, ctx):
    store = Store(home)
    run_prune(store, spec(home, strategy="magnitude", ratio=0.3, scope="layer"), ctx)
    for m in prunable_linears(load_model(store.model("out").path)).values():
        assert abs(float((m.weight == 0).float().mean()) - 0.3) < 0.01


def test_two_four_pattern(home, ctx):
    store = Store(home)
    run_prune(store, spec(home, strategy="magnitude", semi_structured_2_4=True), ctx)
    for m in prunable_linears(load_model(store.model("out").path)).values():
        nonzero_per_group = (m.weight != 0).view(m.weight.shape[0], -1, 4).sum(-1)
        assert (nonzero_per_group == 2).all()


def test_taylor_uses_gradients_of_the_calibration_text(home, ctx):
    store = Store(home)
    run_prune(store, spec(home, strategy="taylor", output_name="tay"), ctx)
    run_prune(store, spec(home, strategy="magnitude", output_name="mag"), ctx)
    tay = prunable_linears(load_model(store.model("tay").path))
    mag = prunable_linears(load_model(store.model("mag").path))
    differ = sum(int(((tay[n].weight == 0) != (mag[n].weight == 0)).sum()) for n in tay)
    assert differ > 0.05 * sum(m.weight.numel() for m in tay.values())


def test_taylor_without_text_is_refused(home):
    with pytest.raises(errors.InvalidArgument, match="calibration"):
        PruneSpec.from_request(pb.PruneRequest(name="tiny", strategy="taylor", ratio=0.5, eval_path="x.txt"))


@pytest.mark.parametrize("fields, message", [
    (dict(strategy="lottery"),
     "Give training text for lottery training: recovery_dataset (a store dataset) or recovery_path (a file)."),
    (dict(recovery_steps=5),
     "Give training text for the recovery fine-tune: recovery_dataset (a store dataset) or recovery_path (a file)."),
    (dict(strategy="taylor"),
     "Taylor importance needs calibration text for its gradients: give calibration_dataset or calibration_path "
     "(or recovery text, which is then used)."),
    (dict(strategy="lottery", recovery_path="/data/c.txt", lottery_steps=4, rewind_step=4),
     "rewind_step (4) must come before the end of a round (4 steps)."),
    (dict(calibration_dataset="../c"), "Invalid dataset name '../c'"),
])
def test_missing_or_misplaced_text_is_refused_saying_what_to_give(fields, message):
    with pytest.raises(errors.InvalidArgument) as err:
        PruneSpec.from_request(pb.PruneRequest(name="tiny", ratio=0.5, **{"strategy": "magnitude", **fields}))
    assert err.value.message.startswith(message), err.value.message


def test_each_source_of_text_is_enough_where_it_is_used():
    def spec_of(**fields) -> PruneSpec:
        return PruneSpec.from_request(pb.PruneRequest(name="tiny", ratio=0.5, **fields))

    assert spec_of(strategy="taylor", calibration_path="/data/c.txt").calibration_path == "/data/c.txt"
    assert spec_of(strategy="taylor", calibration_dataset="corpus").calibration_dataset == "corpus"
    assert spec_of(strategy="taylor", recovery_steps=1, recovery_dataset="corpus").recovery_dataset == "corpus"
    assert spec_of(strategy="magnitude", rewind_step=60).rewind_step == 60  # rewinding is the lottery's rule
    lottery = spec_of(strategy="lottery", recovery_path="/data/c.txt", lottery_steps=4, rewind_step=3)
    assert (lottery.rewind_step, lottery.lottery_steps) == (3, 4)


def test_lottery_rewinds_surviving_weights_to_the_early_checkpoint(home, ctx):
    store = Store(home)
    s = spec(home, strategy="lottery", ratio=0.5, lottery_rounds=2, lottery_steps=4, rewind_step=2,
             recovery_path=str(home / "corpus.txt"))
    model = load_model(store.model("tiny").path)
    original = {n: m.weight.detach().clone() for n, m in prunable_linears(model).items()}
    texts = load_text_sets(store, s, load_tokenizer(store.model("tiny").path))
    out = unstructured.lottery(model, batches(texts.train, 4, 0), s, ctx, (0.0, 1.0))
    rewind = out["rewind_state"]
    assert [r["sparsity"] for r in out["schedule"]] == [pytest.approx(1 - 0.5 ** 0.5, abs=1e-6), 0.5]
    unstructured.make_permanent(model)
    layers = prunable_linears(model)
    zeros = sum(int((m.weight == 0).sum()) for m in layers.values())
    assert zeros == round(0.5 * sum(m.weight.numel() for m in layers.values()))
    for n, m in layers.items():
        w, early = m.weight.detach(), rewind[f"{n}.weight"]
        alive = w != 0
        assert torch.equal(w[alive], early[alive])            # survivors hold the step-2 weights
        assert not torch.equal(early, original[n])             # ... which are not the weights before training
    prunable = {f"{n}.weight" for n in layers}
    others = [name for name, _ in model.named_parameters() if name not in prunable]
    assert others                                               # norms and embeddings are rewound too
    for name, p in model.named_parameters():
        if name not in prunable:
            assert torch.equal(p.detach(), rewind[name])


def test_custom_importance_registered_by_entry_point_is_used(home, ctx, custom_importance):
    store = Store(home)
    report = run_prune(store, spec(home, strategy=custom_importance, ratio=0.5), ctx)
    assert report["importance"] == "reverse" and report["importance_source"] == "apt_prune_reverse:reverse"
    pruned = prunable_linears(load_model(store.model("out").path))
    dense = prunable_linears(load_model(store.model("tiny").path))
    # the largest weights are the ones that went (global ranking)
    kept = torch.cat([dense[n].weight[pruned[n].weight != 0].abs() for n in pruned])
    gone = torch.cat([dense[n].weight[pruned[n].weight == 0].abs() for n in pruned])
    assert kept.max() <= gone.min()
