"""The detectors and probes as plain functions: planted events are found at their step, a
schedule's own moves are not, and the probes' guards hold (frozen/tied parameters, hook removal)."""

from __future__ import annotations

import math

import pytest
import torch

from apt_model import errors
from apt_model.modeling.preset import create_model, preset_config
from apt_model.modeling.schedule import warmup_cosine
from apt_model.testing import JobRecorder

from apt_debug import activations, anomaly, gradflow, synthetic
from apt_debug.series import from_rows


def rows(loss, **columns):
    return [{"step": i + 1, "loss": v, **{k: c[i] for k, c in columns.items()}} for i, v in enumerate(loss)]


def kinds(found, kind):
    return [(f.step, f.end_step) for f in found if f.kind == kind]


def curve(n=200, noise=0.01, seed=0):
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(1, n + 1, dtype=torch.float64)
    return (2 + 4 * torch.exp(-t / 50)) * (1 + noise * torch.randn(n, generator=gen, dtype=torch.float64))


def test_a_moderate_spike_is_found_at_its_step_where_a_fixed_threshold_misses_it():
    loss = curve().tolist()
    loss[119] *= 1.4  # step 120: 40 % up on a 1 % noise curve; "3x the median" never fires
    found = anomaly.detect(from_rows(rows(loss), "t"))
    assert kinds(found, "loss_spike") == [(120, 120)]
    from apt_model.modeling import trainlog
    assert trainlog.summary(rows(loss))["spikes"] == []


def test_a_knocked_out_gradient_norm_is_one_spike_event_not_several():
    """Real runs: after the learning rate x50, the gradient norm stays high for 20 steps with one
    step a little less extreme; that step must not split the event into two findings."""
    gen = torch.Generator().manual_seed(0)
    grad = torch.exp(0.05 * torch.randn(200, generator=gen, dtype=torch.float64)).tolist()
    grad[99] *= 10   # step 100: a spike
    grad[100] *= 1.4  # step 101: z about 6, under --spike-z 8 but far above the baseline
    grad[101] *= 10  # step 102: high again
    found = anomaly.detect(from_rows(rows(curve().tolist(), grad_norm=grad), "t"))
    assert kinds(found, "grad_spike") == [(100, 102)]


def test_a_clean_noisy_curve_has_no_spike():
    for seed in range(5):
        assert kinds(anomaly.detect(from_rows(rows(curve(noise=0.05, seed=seed).tolist()), "t")), "loss_spike") == []


def test_divergence_is_dated_at_the_start_of_the_climb():
    loss = curve(100).tolist()
    loss += [loss[-1] * 1.03 ** i for i in range(1, 51)]
    found = kinds(anomaly.detect(from_rows(rows(loss), "t")), "divergence")
    assert len(found) == 1 and 101 <= found[0][0] <= 106, found


def test_a_plateau_is_reported_once():
    loss = curve(100).tolist() + [2.0] * 100
    found = kinds(anomaly.detect(from_rows(rows(loss), "t")), "plateau")
    assert len(found) == 1 and found[0][1] == 200


def test_warmup_and_step_decay_are_on_schedule_a_transient_override_is_not():
    lr = [1e-3 * warmup_cosine(s, 10, 200) for s in range(200)]
    lr = [v * (0.1 if s >= 150 else 1) for s, v in enumerate(lr)]  # a step decay at step 151
    lr[59:62] = [v * 50 for v in lr[59:62]]
    found = anomaly.detect(from_rows(rows(curve().tolist(), lr=lr), "t"))
    assert kinds(found, "lr_off_schedule") == [(60, 62)]


def test_throughput_drop_and_nan_strings():
    speed = [1000.0] * 100
    speed[49:54] = [300.0] * 5
    loss = [str(v) for v in curve(100).tolist()]
    loss[70] = "NaN"
    found = anomaly.detect(from_rows(rows(loss, tokens_per_s=speed), "t"))
    assert kinds(found, "throughput_drop") == [(50, 54)]
    assert kinds(found, "nonfinite") == [(71, 71)]


def test_a_throughput_drop_must_cost_time_when_the_log_has_step_durations():
    """Three 10 ms steps at a third of the speed (a scheduler hiccup on a tiny run) are not worth
    acting on; the same drop on 1 s steps is."""
    speed = [1000.0] * 100
    speed[49:52] = [300.0] * 3
    for step_s, expected in ((0.01, []), (1.0, [(50, 52)])):
        seconds = [step_s * 1000.0 / v for v in speed]
        found = anomaly.detect(from_rows(rows(curve(100).tolist(), tokens_per_s=speed, step_seconds=seconds), "t"))
        assert kinds(found, "throughput_drop") == expected


def test_validation_gap_onset_names_the_best_checkpoint():
    loss = curve(200).tolist()
    val = {s: 3.0 - 0.01 * s if s <= 100 else 2.0 + 0.005 * (s - 100) for s in range(10, 201, 10)}
    data = rows(loss)
    for r in data:
        if r["step"] in val:
            r["val_loss"] = val[r["step"]]
    found = [f for f in anomaly.detect(from_rows(data, "t")) if f.kind == "val_gap"]
    assert [f.step for f in found] == [110] and "step 100" in found[0].action


def test_the_planted_synthetic_series_are_found():
    hits = total = 0
    for seed in range(20):
        planted = synthetic.planted_series(seed)
        found = anomaly.detect(from_rows(planted.rows, "t"))
        for kind, step in planted.events:
            total += 1
            hits += any(f.kind == kind and 0 <= f.step - step <= 3 for f in found)
    assert total > 20 and hits == total


def test_resumed_steps_keep_the_last_occurrence():
    data = rows([3.0, 2.0, 1.0]) + [{"step": 2, "loss": 9.0}]
    series = from_rows(data, "t")
    assert series.get("loss") == ([1, 2, 3], [3.0, 9.0, 1.0]) and series.repeated_steps == 1


def test_an_empty_series_is_invalid_argument():
    with pytest.raises(errors.InvalidArgument):
        from_rows([], "empty")
    with pytest.raises(errors.InvalidArgument):
        from_rows([{"step": 1, "note": "hello"}], "labels only")


def tiny_model(seed=0):
    return create_model(preset_config("tiny", vocab_size=320), seed=seed)


def batch_of(step):
    return torch.randint(0, 320, (2, 16), generator=torch.Generator().manual_seed(step))


def test_gradient_flow_flags_frozen_never_updated_and_tied_parameters():
    model = tiny_model()
    model.lm_head.weight = model.model.embed_tokens.weight  # tie them
    for p in model.model.layers[0].parameters():
        p.requires_grad_(False)
    bias = torch.nn.Parameter(torch.zeros(320))
    model.register_parameter("unused_bias", bias)  # trainable, never in the graph
    report = gradflow.gradient_flow(model, batch_of, 2, 1e-3, "cpu", JobRecorder())
    verdicts = {b["name"]: b["verdict"] for b in report["blocks"]}
    assert verdicts["block 0"] == "frozen" and verdicts["block 1"] == "healthy"
    assert "model.layers.0.mlp.up_proj.weight" in report["frozen"]
    assert report["never_updated"] == ["unused_bias"]
    assert report["tied"] == ["lm_head.weight = model.embed_tokens.weight"]


def test_vanishing_block_is_named():
    model = tiny_model()
    with torch.no_grad():  # block 1's outputs scaled to nothing: its gradients vanish
        model.model.layers[1].self_attn.o_proj.weight.mul_(1e-6)
        model.model.layers[1].mlp.down_proj.weight.mul_(1e-6)
        model.model.layers[1].self_attn.v_proj.weight.mul_(1e-6)
        model.model.layers[1].mlp.up_proj.weight.mul_(1e-6)
    report = gradflow.gradient_flow(model, batch_of, 1, 1e-3, "cpu", JobRecorder())
    assert {b["name"]: b["verdict"] for b in report["blocks"]}["block 1"] == "vanishing"


def test_hooks_are_removed_when_the_run_fails():
    model = tiny_model()
    with pytest.raises(errors.Cancelled):
        activations.analyse(model, batch_of, 3, "cpu", JobRecorder(cancel_after=1))
    assert all(not m._forward_hooks and not m._forward_hooks_with_kwargs for m in model.modules())


def test_the_guard_names_the_producer_not_the_modules_the_nan_flows_through():
    model = tiny_model()
    with torch.no_grad():
        model.model.layers[0].self_attn.v_proj.weight[0, 0] = math.inf
    report = activations.analyse(model, batch_of, 1, "cpu", JobRecorder())
    assert report["first_nonfinite_module"] == "model.layers.0.self_attn.v_proj"
    assert report["nonfinite_modules"] >= 4


def test_massive_and_dead_channels():
    model = tiny_model()
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight[7].mul_(1e4)  # channel 7 of block 1's MLP output: massive
        model.model.layers[0].mlp.up_proj.weight[:, :].zero_()  # the up projection: dead everywhere
    mods = {m["name"]: m for m in activations.analyse(model, batch_of, 1, "cpu", JobRecorder())["modules"]}
    assert mods["model.layers.0.mlp.up_proj"]["dead_share"] == 1.0
    assert mods["model.layers.0.mlp.down_proj"]["dead_share"] == 1.0  # zero in, zero out
    assert mods["model.layers.0.mlp.gate_proj"]["dead_share"] == 0.0
    assert mods["model.layers.1.mlp.down_proj"]["massive_channels"] == [7]
    assert mods["model.layers.1.mlp.up_proj"]["massive_channels"] == []


def test_a_module_fed_a_nan_is_not_blamed_for_it():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    with activations.ActivationRecorder(model) as recorder:
        model(torch.tensor([[1.0, math.nan, 0.0, 2.0]]))
    assert recorder.first_nonfinite == "" and len(recorder.nonfinite_modules) >= 2
    with torch.no_grad():
        model[2].weight[0, 0] = math.nan
    with activations.ActivationRecorder(model) as recorder:
        model(torch.ones(1, 4))
    assert recorder.first_nonfinite == "2"
