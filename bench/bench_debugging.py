"""advanced-debugging figures: anomaly precision / recall / F1 against a fixed-threshold baseline
on planted synthetic series and on real tiny training runs with planted faults, detection delay,
planted NaN / dead / exploding blocks located, activation-statistics overhead per training step,
and the TensorBoard round trip.

.venv/bin/python bench/bench_debugging.py [--quick]

Targets (issue 21): precision and recall >= 0.9, F1 >= the baseline's + 0.15; detection delay
<= 3 steps; planted blocks located 20/20; replay ranks the planted garbage document first >= 19/20;
activation-statistics overhead <= 1.25x per training
step; TensorBoard round trip bit-equal, 10k steps x 20 tags loaded in <= 5 s.

The baseline is the platform's own fixed rule (apt_model.modeling.trainlog.summary: a loss above
3x the median of the 20 steps before is a spike), measured on the same series in the same run.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "services" / "advanced-debugging"))
from bench.common import machine, save, verdict  # noqa: E402
from apt_model.modeling import trainlog  # noqa: E402
from apt_model.modeling.loop import Loop  # noqa: E402
from apt_model.modeling.preset import create_model, preset_config  # noqa: E402
from apt_model.modeling.schedule import warmup_cosine  # noqa: E402
from apt_model.modeling.tokenizer import train_tokenizer  # noqa: E402
from apt_model.testing import SAMPLE_TEXT, JobRecorder  # noqa: E402

from apt_debug import activations, anomaly, gradflow, synthetic, tracker  # noqa: E402
from apt_debug.series import Series, from_rows  # noqa: E402

PLANTED_KINDS = ("loss_spike", "nonfinite", "lr_off_schedule", "throughput_drop")
MAX_DELAY = 3


def f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def score(events: list[tuple[str, int]], found: list[tuple[str, int]]):
    """(explained findings, unexplained findings, events missed, delays). A finding is explained
    when a planted event lies 0..MAX_DELAY steps before it (whatever its kind: the loss spike
    an lr override causes is that event); an event is detected by a finding of its own kind
    within MAX_DELAY steps, its delay the first one's distance."""
    explained = sum(any(0 <= step - e[1] <= MAX_DELAY for e in events) for _, step in found)
    delays = []
    for kind, at in events:
        hit = [step - at for k, step in found if k == kind and 0 <= step - at <= MAX_DELAY]
        if hit:
            delays.append(min(hit))
    return explained, len(found) - explained, len(events) - len(delays), delays


def prf(explained, unexplained, missed, events):
    p = explained / (explained + unexplained) if explained + unexplained else 1.0
    r = (events - missed) / events if events else 1.0
    return p, r, f1(p, r)


def baseline_spikes(rows) -> list[tuple[str, int]]:
    return [("loss_spike", s["step"]) for s in trainlog.summary(rows)["spikes"]]


def bench_synthetic(n: int) -> dict:
    """Every finding counts, of the planted kinds or not (plateaus, gradient spikes)."""
    ours, spikes_ours, spikes_base = [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]
    delays: list[int] = []
    for seed in range(n):
        planted = synthetic.planted_series(seed)
        found = anomaly.detect(from_rows(planted.rows, "synthetic"))
        e, u, m, d = score(planted.events, [(f.kind, f.step) for f in found])
        ours = [ours[0] + e, ours[1] + u, ours[2] + m, ours[3] + len(planted.events)]
        delays += d
        spike_events = [ev for ev in planted.events if ev[0] == "loss_spike"]
        for acc, got in ((spikes_ours, [(f.kind, f.step) for f in found if f.kind == "loss_spike"]),
                         (spikes_base, baseline_spikes(planted.rows))):
            e, u, m, _ = score(spike_events, got)
            acc[0] += e; acc[1] += u; acc[2] += m; acc[3] += len(spike_events)  # noqa: E702
    return {"series": n, "events": ours[3], "ours": prf(*ours), "delays": delays,
            "spikes_ours": prf(*spikes_ours), "spikes_baseline": prf(*spikes_base)}


def real_run(seed: int, steps: int = 80) -> tuple[list[dict], list[tuple[str, int]]]:
    """A tiny model trained by the platform's Loop with a garbage batch (uniform random tokens)
    on log step 41 and the learning rate x50 on log steps 61-63: the two events. Throughput is
    not planted; a throughput finding here would be a stall of this shared machine costing 1 s or
    more (shorter hiccups are not findings: anomaly.THROUGHPUT_LOST_SECONDS), counted as a false
    positive, and the line without throughput findings shows what it cost."""
    torch.manual_seed(seed)
    tok = train_tokenizer(SAMPLE_TEXT, vocab_size=320)
    model = create_model(preset_config("tiny", vocab_size=len(tok)), seed=seed)
    ids = torch.tensor(tok("\n\n".join(SAMPLE_TEXT))["input_ids"])
    blocks = ids[: len(ids) // 32 * 32].view(-1, 32)

    def lr_at(step):
        return 3e-3 * warmup_cosine(step, 10, steps) * (50 if 60 <= step <= 62 else 1)

    def forward(step, micro):
        gen = torch.Generator().manual_seed(seed * 1000 + step)
        batch = blocks[torch.randint(len(blocks), (8,), generator=gen)]
        if step == 40:
            batch = torch.randint(0, len(tok), batch.shape, generator=gen)
        return {"loss": model(input_ids=batch, labels=batch).loss}

    loop = Loop(JobRecorder(), model, torch.optim.AdamW(model.parameters()), lr_at, steps, 8 * 32)
    loop.run(0, forward)
    return loop.log, [("loss_spike", 41), ("lr_off_schedule", 61)]


def bench_real(runs: int) -> dict:
    ours, base, delays, detail = [0, 0, 0, 0], [0, 0, 0, 0], [], []
    no_speed = [0, 0, 0, 0]  # throughput findings left out
    for seed in range(runs):
        rows, events = real_run(seed)
        found = anomaly.detect(from_rows(rows, "real"))
        e, u, m, d = score(events, [(f.kind, f.step) for f in found])
        ours = [ours[0] + e, ours[1] + u, ours[2] + m, ours[3] + len(events)]
        e2, u2, m2, _ = score(events, [(f.kind, f.step) for f in found if f.kind != "throughput_drop"])
        no_speed = [no_speed[0] + e2, no_speed[1] + u2, no_speed[2] + m2, no_speed[3] + len(events)]
        delays += d
        e, u, m, _ = score(events, baseline_spikes(rows))
        base = [base[0] + e, base[1] + u, base[2] + m, base[3] + len(events)]
        detail.append([(f.kind, f.step) for f in found])
    return {"runs": runs, "ours": prf(*ours), "ours_without_throughput": prf(*no_speed), "baseline": prf(*base),
            "delays": delays, "findings": detail}


def plant(kind: str, model, block: int) -> None:
    with torch.no_grad():
        layer = model.model.layers[block]
        if kind == "nan":
            layer.mlp.up_proj.weight[3, 5] = math.nan
        elif kind == "dead":
            for p in layer.parameters():
                p.zero_()
        else:
            for name, p in layer.named_parameters():
                if "proj" in name:
                    p.mul_(1000)


def bench_blocks(seeds: int) -> dict:
    """Planted faults in block seed % 4 of a 4-block model: located when the activation guard
    names a module of that block (NaN) or gradient flow gives it the verdict (dead, exploding)."""
    cfg = preset_config("tiny", vocab_size=320)
    cfg.num_hidden_layers = 4
    located = {"nan": 0, "dead": 0, "exploding": 0}
    for seed in range(seeds):
        block = seed % 4

        def batch_of(step):
            return torch.randint(0, 320, (2, 32), generator=torch.Generator().manual_seed(seed * 100 + step))
        for kind in located:
            model = create_model(cfg, seed=seed)
            plant(kind, model, block)
            if kind == "nan":
                report = activations.analyse(model, batch_of, 1, "cpu", JobRecorder())
                located[kind] += report["first_nonfinite_module"].startswith(f"model.layers.{block}.")
            else:
                report = gradflow.gradient_flow(model, batch_of, 2, 1e-3, "cpu", JobRecorder())
                verdicts = {b["name"]: b["verdict"] for b in report["blocks"]}
                located[kind] += verdicts[f"block {block}"] == kind
    return {"seeds": seeds, "located": located}


def bench_replay(seeds: int) -> dict:
    """Per seed: a corpus of 40 documents, one of them random characters (at a seed-dependent
    index), trained by core train (tiny, 40 steps); the first step whose batch covered the
    garbage document is replayed. Ranked first: the garbage document has the highest loss."""
    import json
    import random

    from apt_model.modeling.io import load_tokenizer
    from apt_model.store import Store
    from apt_debug import replay
    from gateway.core.train import TrainSpec, run_train

    texts = SAMPLE_TEXT[:5]
    first = 0
    for seed in range(seeds):
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp))
            rng = random.Random(seed)
            garbage = rng.randrange(40)
            docs = [texts[i % len(texts)] + f" Note {i}." for i in range(40)]
            docs[garbage] = "".join(rng.choice("qxzjkvw0123456789#%&@") for _ in range(300))
            with store.create("datasets", "corp", operation="bench") as folder:
                (folder / "c.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
            spec = TrainSpec(name="m", dataset="corp", size="tiny", vocab_size=384, seq_len=32, batch_size=4,
                             max_steps=40, eval_every=40, checkpoint_every=0, device="cpu", seed=seed).validate(store)
            run_train(store, spec, JobRecorder())
            params = replay.training_settings(store, "m")
            tok = load_tokenizer(store.model("m").path)
            step = next((s for s in range(1, 41) if garbage in _covered(store, params, tok, s)), None)
            if step is None:
                continue
            spec_r = replay.ReplaySpec(model="m", step=step, output_name="r", device="cpu")
            report = replay.run_replay(store, spec_r, params, [], [], JobRecorder())
            first += report["documents"][0]["index"] == garbage
    return {"seeds": seeds, "ranked_first": first}


def _covered(store, params, tokenizer, step: int) -> set[int]:
    """The documents the windows of a core-train step cover."""
    from apt_debug import replay

    batches, _, starts = replay.rebuild(store, params, [], tokenizer, step)
    seq = int(params["seq_len"]) + 1
    return {d for _, offsets in batches for o in offsets for d in replay.documents_in(starts, o, o + seq)}


def bench_overhead(repeats: int) -> dict:
    """A training step (forward, backward, AdamW) of the 'small' preset with and without the
    activation recorder's hooks, interleaved; medians of ``repeats``."""
    model = create_model(preset_config("small", vocab_size=384), seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = torch.randint(0, 384, (4, 128), generator=torch.Generator().manual_seed(0))

    def step():
        t0 = time.perf_counter()
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    step()
    plain, hooked = [], []
    for _ in range(repeats):
        plain.append(step())
        with activations.ActivationRecorder(model):
            hooked.append(step())
    return {"plain_s": statistics.median(plain), "hooked_s": statistics.median(hooked),
            "ratio": statistics.median(hooked) / statistics.median(plain)}


def _accumulator_load(folder: Path) -> int:
    """The baseline: every scalar read back with TensorBoard's EventAccumulator (what the plugin
    used before apt_debug.tfevents); returns the number of values."""
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return sum(len(acc.Scalars(tag)) for tag in acc.Tags()["scalars"])


def bench_tensorboard(steps: int, tags: int, repeats: int) -> dict:
    """Write once, then load + compare ``repeats`` times interleaved with the EventAccumulator
    baseline's load alone; medians."""
    gen = torch.Generator().manual_seed(0)
    series = Series("bench", {f"metric_{t}": dict(zip(range(1, steps + 1), torch.randn(steps, generator=gen,
                                                                                        dtype=torch.float64).tolist()))
                              for t in range(tags)})
    ours, base, problems = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        tracker.write_tensorboard(series, Path(tmp))
        write_s = time.perf_counter() - t0
        for _ in range(repeats):
            t0 = time.perf_counter()
            problems += tracker.check_round_trip(series, Path(tmp))
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            assert _accumulator_load(Path(tmp)) == steps * tags
            base.append(time.perf_counter() - t0)
    return {"steps": steps, "tags": tags, "write_s": write_s, "load_and_compare_s": statistics.median(ours),
            "accumulator_load_s": statistics.median(base), "repeats": repeats,
            "speedup": statistics.median(base) / statistics.median(ours), "bit_equal": not problems}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer series, seeds and repeats")
    args = parser.parse_args()
    torch.set_num_threads(1)
    q = args.quick
    syn = bench_synthetic(50 if q else 200)
    real = bench_real(3)
    blocks = bench_blocks(5 if q else 20)
    rep = bench_replay(5 if q else 20)
    over = bench_overhead(5 if q else 15)
    tb = bench_tensorboard(2000 if q else 10_000, 20, 3)

    p, r, f = syn["ours"]
    sp, sr, sf = syn["spikes_ours"]
    bp, br, bf = syn["spikes_baseline"]
    rp, rr, rf = real["ours"]
    rbp, rbr, rbf = real["baseline"]
    delay = max(syn["delays"] + real["delays"], default=0)
    print(f"machine: {machine()}")
    print(f"synthetic ({syn['series']} series, {syn['events']} planted events of kinds {PLANTED_KINDS}; every finding counted):")
    print(f"  ours      precision {p:.3f} recall {r:.3f} F1 {f:.3f}   "
          f"[{verdict(p, 0.9, True)} / {verdict(r, 0.9, True)}]")
    print(f"  spikes    ours P {sp:.3f} R {sr:.3f} F1 {sf:.3f} | fixed 3x-median baseline P {bp:.3f} R {br:.3f} "
          f"F1 {bf:.3f} | F1 gain {sf - bf:+.3f} [{verdict(sf - bf, 0.15, True)}]")
    print(f"real runs ({real['runs']} tiny Loop runs, garbage batch at 41, lr x50 at 61-63):")
    print(f"  ours P {rp:.3f} R {rr:.3f} F1 {rf:.3f} | baseline P {rbp:.3f} R {rbr:.3f} F1 {rbf:.3f} "
          f"| F1 gain {rf - rbf:+.3f}")
    wp, wr, wf = real["ours_without_throughput"]
    print(f"  ours without throughput findings: "
          f"P {wp:.3f} R {wr:.3f} F1 {wf:.3f}")
    print(f"  findings: {real['findings']}")
    print(f"detection delay: max {delay} steps, median {statistics.median(syn['delays'] + real['delays'])} "
          f"[{verdict(delay, 3, False)}]")
    print(f"planted blocks located ({blocks['seeds']} seeds each): {blocks['located']} "
          f"[{verdict(min(blocks['located'].values()), blocks['seeds'], True)}]")
    print(f"replay ranks the planted garbage document first: {rep['ranked_first']} / {rep['seeds']} "
          f"[{verdict(rep['ranked_first'], 0.95 * rep['seeds'], True)}]")
    print(f"activation statistics overhead per training step: {over['ratio']:.2f}x "
          f"(plain {over['plain_s'] * 1e3:.1f} ms, hooked {over['hooked_s'] * 1e3:.1f} ms, medians) "
          f"[{verdict(over['ratio'], 1.25, False)}]")
    print(f"TensorBoard {tb['steps']} steps x {tb['tags']} tags: write {tb['write_s']:.2f} s, load + compare "
          f"{tb['load_and_compare_s']:.2f} s (EventAccumulator's load alone {tb['accumulator_load_s']:.2f} s: "
          f"{tb['speedup']:.1f}x; medians of {tb['repeats']}), bit-equal {tb['bit_equal']} "
          f"[{verdict(tb['load_and_compare_s'], 5, False)}]")
    save("debugging", {"synthetic": syn, "real": real, "blocks": blocks, "overhead": over, "replay": rep, "tensorboard": tb,
                       "quick": q})


if __name__ == "__main__":
    main()
