"""advanced-visualization figures: dashboard size and first render in Chromium, spikes kept by
min/max downsampling vs stride sampling, attention-map size and error, report perplexities vs
core compare.

.venv/bin/python bench/bench_visualization.py [--quick] [--repeats N]

Targets (issue 22): dashboard of 5 models x 20k steps <= 8 MB and first render <= 3 s; 100% of
planted spikes visible after downsampling (stride: reported); attention map of 256 tokens on
`small` <= 3 MB with max error <= 1e-3 vs eager attention; report perplexities equal to core
compare's within 1e-6 relative. Also reported: the time --png adds to an attention-map job.
Baselines, measured in the same run: the dashboard as plotly's own
one-file-per-figure HTML of every point (fig.write_html, plotly.js in each), stride sampling, and
the attention matrices as float32 JSON.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "services" / "advanced-visualization")]
from bench.common import machine, median, save, verdict  # noqa: E402
from apt_model.modeling import trainlog  # noqa: E402
from apt_model.modeling.io import load_model, load_tokenizer  # noqa: E402
from apt_model.store import Store  # noqa: E402
from apt_model.testing import SAMPLE_TEXT, JobRecorder, make_tiny_model, pretrain  # noqa: E402
from apt_viz.attention import AttentionSpec, build_attention_map, eager_attentions, read_ids  # noqa: E402
from apt_viz.compare import CompareSpec, build_comparison_report  # noqa: E402
from apt_viz.dashboard import AXES, DashboardSpec, build_dashboard, curve_figure, drawn_indices, read_curves  # noqa: E402
from apt_viz.downsample import stride_indices  # noqa: E402

TARGETS = {"dashboard_mb": 8.0, "render_s": 3.0, "spikes_kept": 1.0, "attention_mb": 3.0, "attention_error": 1e-3,
           "ppl_rel": 1e-6}
SPIKES = 20  # planted per model


def planted_log(steps: int, seed: int) -> tuple[list[dict], list[int]]:
    """A noisy falling loss with SPIKES one-step spikes (3-6x the loss) at random steps."""
    rng = np.random.default_rng(seed)
    loss = 2.0 + 6.0 * np.exp(-np.arange(steps) / (steps / 5)) + rng.normal(0, 0.05, steps)
    spikes = sorted(rng.choice(np.arange(100, steps - 1), SPIKES, replace=False).tolist())
    loss[spikes] *= rng.uniform(3, 6, SPIKES)
    rows = [trainlog.row(i + 1, float(loss[i]), 3e-4, 1.0, 0.05 + 0.01 * rng.random(), 4096) for i in range(steps)]
    return rows, spikes


def store_logs(store: Store, models: int, steps: int) -> dict[str, list[int]]:
    spikes = {}
    for m in range(models):
        rows, spikes[f"m{m}"] = planted_log(steps, m)
        with store.create("models", f"m{m}", operation="train", parameters={"learning_rate": 10 ** -(3 + m % 2),
                                                                            "batch_size": 8 * (m + 1)}) as tmp:
            trainlog.write(tmp, rows)
    return spikes


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1800",
                "--host-resolver-rules=MAP * ~NOTFOUND"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def first_render(driver, path: Path, plots: int) -> float:
    """Seconds from navigation to every plot drawn (plotly's .main-svg present in each)."""
    driver.get("about:blank")
    start = time.perf_counter()
    driver.get(path.as_uri())
    while driver.execute_script("return document.querySelectorAll('.js-plotly-plot .main-svg').length") < plots:
        if time.perf_counter() - start > 120:
            raise TimeoutError(f"{path} did not render in 120 s")
        time.sleep(0.01)
    return time.perf_counter() - start


def bench_dashboard(work: Path, models: int, steps: int, repeats: int) -> dict:
    store = Store(work / "home")
    spikes = store_logs(store, models, steps)
    names = tuple(spikes)
    result = build_dashboard(store, DashboardSpec(names, "dash"), JobRecorder())
    page = store.dataset("dash").path / "dashboard.html"
    # baseline: plotly's own HTML per figure, every point, plotly.js inside each file
    import plotly.io as pio

    curves = [read_curves(store.model(n)) for n in names]
    baseline = []
    for axis, label in AXES:
        fig, _ = curve_figure(curves, axis, label, max_points=steps + 1)
        out = work / f"baseline-{axis}.html"
        pio.write_html(fig, out, include_plotlyjs=True, full_html=True)
        baseline.append(out)
    driver = chromium()
    try:
        ours = [first_render(driver, page, 5) for _ in range(repeats)]
        theirs = [sum(first_render(driver, p, 1) for p in baseline) for _ in range(repeats)]
    finally:
        driver.quit()
    kept = stride_kept = total = 0
    for name in names:
        c = read_curves(store.model(name))
        loss = c.loss
        idx = set(drawn_indices(c, 2000).tolist())  # what curve_figure draws
        stride = set(stride_indices(len(loss), 2000).tolist())
        kept += sum(s in idx for s in spikes[name])
        stride_kept += sum(s in stride for s in spikes[name])
        total += len(spikes[name])
    return {"models": models, "steps": steps, "html_mb": result["html_bytes"] / 1e6,
            "baseline_mb": sum(p.stat().st_size for p in baseline) / 1e6,
            "render_s": median(ours), "baseline_render_s": median(theirs),
            "spikes_kept": kept / total, "stride_spikes_kept": stride_kept / total, "spikes": total}


def bench_attention(work: Path, tokens: int) -> dict:
    store = Store(work / "home")
    make_tiny_model(store, "small", size="small", texts=SAMPLE_TEXT, seed=1)
    pretrain(store, "small", SAMPLE_TEXT, steps=20)
    text = " ".join(SAMPLE_TEXT)
    result = build_attention_map(store, AttentionSpec("small", text, "att", max_tokens=tokens), JobRecorder())
    page = (store.dataset("att").path / "attention.html").read_text(encoding="utf-8")
    data = json.loads(page.split("const ATT=", 1)[1].split(";// Canvas views", 1)[0])
    folder = store.model("small").path
    tok = load_tokenizer(folder)
    ids, _ = read_ids(tok, text, tokens)
    eager = eager_attentions(load_model(folder), ids)
    rows, cols = np.tril_indices(len(ids))
    worst = 0.0
    for key, m in data["mats"].items():
        layer, head = map(int, key.split(","))
        part = {k: base64.b64decode(v) for k, v in m.items()}
        t = len(ids)
        decoded = np.zeros((t, t))
        decoded[rows, cols] = np.frombuffer(part["q"], dtype=np.uint8) / 255
        decoded *= np.frombuffer(part["s"], dtype=np.float32).astype(np.float64)[:, None]
        decoded[np.arange(t), np.frombuffer(part["t"], dtype=np.uint16)] = np.frombuffer(part["v"], dtype=np.float32)
        worst = max(worst, float(np.abs(decoded - eager[layer][head].double().numpy())[rows, cols].max()))
    float_json = len(json.dumps({k: eager[int(k.split(",")[0])][int(k.split(",")[1])].tolist()
                                 for k in data["mats"]}))
    return {"tokens": result["tokens"], "html_mb": result["html_bytes"] / 1e6, "float32_json_mb": float_json / 1e6,
            "max_error": worst, "reported_error": result["max_quantization_error"]}


def bench_attention_png(work: Path, tokens: int, repeats: int) -> dict:
    """Seconds of an attention-map job with --png (kaleido + Debian chromium) against the same job
    without it, medians of ``repeats`` each, alternated."""
    store = Store(work / "home")
    make_tiny_model(store, "small", size="small", texts=SAMPLE_TEXT, seed=1)
    text, plain, png = " ".join(SAMPLE_TEXT), [], []
    for i in range(repeats):
        for flag, times in ((False, plain), (True, png)):
            start = time.perf_counter()
            spec = AttentionSpec("small", text, f"att-{'png' if flag else 'html'}-{i}", max_tokens=tokens, png=flag)
            build_attention_map(store, spec, JobRecorder())
            times.append(time.perf_counter() - start)
    return {"tokens": tokens, "html_s": median(plain), "png_s": median(png)}


def bench_report(work: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    from gateway.core.evaluate import EvalSpec, run_compare

    store = Store(work / "home")
    for name, seed in (("ra", 1), ("rb", 2)):
        make_tiny_model(store, name, texts=SAMPLE_TEXT, seed=seed)
        pretrain(store, name, SAMPLE_TEXT, steps=20, seed=seed)
    text = work / "eval.txt"
    text.write_text("\n\n".join(SAMPLE_TEXT[:10]), encoding="utf-8")
    ours = build_comparison_report(store, CompareSpec(("ra", "rb"), "cmp", bootstrap_samples=200, max_new_tokens=4),
                                   str(text), JobRecorder())
    core = run_compare(store, EvalSpec(names=("ra", "rb"), eval_path=str(text)), JobRecorder())
    rel = max(abs(a["perplexity"] - b["perplexity"]) / b["perplexity"] for a, b in zip(ours["models"], core["models"]))
    return {"perplexities": [m["perplexity"] for m in ours["models"]],
            "core_perplexities": [m["perplexity"] for m in core["models"]], "max_relative_difference": rel}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2k steps, 64 attention tokens")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    steps, tokens = (2000, 64) if args.quick else (20000, 256)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "d").mkdir(), (work / "a").mkdir(), (work / "r").mkdir()
        dash = bench_dashboard(work / "d", 5, steps, args.repeats)
        att = bench_attention(work / "a", tokens)
        (work / "p").mkdir()
        att_png = bench_attention_png(work / "p", tokens, args.repeats)
        report = bench_report(work / "r")
    print(f"machine: {machine()}")
    print(f"dashboard {dash['models']} models x {dash['steps']} steps: {dash['html_mb']:.2f} MB "
          f"[{verdict(dash['html_mb'], TARGETS['dashboard_mb'], False)} <= 8], first render {dash['render_s']:.2f} s "
          f"[{verdict(dash['render_s'], TARGETS['render_s'], False)} <= 3] (median of {args.repeats}); baseline "
          f"plotly HTML per figure, every point: {dash['baseline_mb']:.1f} MB, {dash['baseline_render_s']:.2f} s -> "
          f"size x{dash['baseline_mb'] / dash['html_mb']:.1f} smaller, render x{dash['baseline_render_s'] / dash['render_s']:.1f} faster")
    print(f"planted spikes kept ({dash['spikes']}): min/max {dash['spikes_kept']:.0%} "
          f"[{verdict(dash['spikes_kept'], TARGETS['spikes_kept'], True)} = 100%], stride {dash['stride_spikes_kept']:.0%}")
    print(f"attention {att['tokens']} tokens on small: {att['html_mb']:.2f} MB "
          f"[{verdict(att['html_mb'], TARGETS['attention_mb'], False)} <= 3] (float32 JSON baseline "
          f"{att['float32_json_mb']:.2f} MB, x{att['float32_json_mb'] / att['html_mb']:.1f}), max error vs eager "
          f"{att['max_error']:.2e} [{verdict(att['max_error'], TARGETS['attention_error'], False)} <= 1e-3]")
    print(f"attention {att_png['tokens']} tokens on small with --png: {att_png['png_s']:.1f} s vs "
          f"{att_png['html_s']:.1f} s without (x{att_png['png_s'] / att_png['html_s']:.1f}, median of {args.repeats})")
    print(f"report perplexities {report['perplexities']} vs core compare {report['core_perplexities']}: "
          f"max relative difference {report['max_relative_difference']:.1e} "
          f"[{verdict(report['max_relative_difference'], TARGETS['ppl_rel'], False)} <= 1e-6]")
    save("visualization", {"dashboard": dash, "attention": att, "attention_png": att_png, "report": report,
                           "quick": args.quick})


if __name__ == "__main__":
    main()
