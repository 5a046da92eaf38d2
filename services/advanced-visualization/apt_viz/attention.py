"""StartAttentionMap: the eager attention weights of a text, every layer and head, as one
self-contained HTML page drawn on canvas (bertviz draws one SVG line per head x token pair and
loads d3/jQuery from a CDN: blank offline, dead on long texts).

SDPA and flash attention return no weights, so the model is switched to eager attention. The
weights come per *query* head; with grouped-query attention several query heads share a key/value
head, and each head says which (``kv_head``). Matrices are causal, so only the lower triangle is
stored, about a byte a weight (``quantize``), base64 in the page; the result reports the largest
error that costs against the eager weights.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import torch
from plotly.subplots import make_subplots

from apt_model import errors
from apt_model.modeling.io import load_model, load_tokenizer, read_config
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store

from apt_viz.page import Page, script_json, write_dataset
from apt_viz.tokens import readable_pieces

HTML_FILE = "attention.html"
THUMB = 96  # cells a side of each map in png/heads.png
STATS = ("entropy", "sink_mass", "previous_token", "induction")


@dataclass(frozen=True)
class AttentionSpec:
    name: str
    text: str
    output_name: str
    layers: tuple[int, ...] = ()  # () = all
    heads: tuple[int, ...] = ()  # () = all
    overwrite: bool = False
    max_tokens: int = 256
    png: bool = False  # also png/heads.png (every head) and png/head.png (the first, with its tokens)

    def check_indices(self, store: Store) -> None:
        """Layer and head indices inside the model's ranges, else INVALID_ARGUMENT naming the ranges."""
        n_layers, n_heads, _ = shape_of(store.model(self.name).path)
        for what, given, count in (("layer", self.layers, n_layers), ("head", self.heads, n_heads)):
            bad = sorted({i for i in given if not 0 <= i < count})
            if bad:
                raise errors.InvalidArgument(
                    f"{what} indices {bad} are out of range: {self.name!r} has {count} {what}s, "
                    f"valid indices are 0..{count - 1}.")


def shape_of(folder: Path) -> tuple[int, int, int]:
    """(layers, query heads, key/value heads) from a model's config.json."""
    cfg = read_config(folder)
    layers = cfg.get("num_hidden_layers") or cfg.get("n_layer")
    heads = cfg.get("num_attention_heads") or cfg.get("n_head")
    if not layers or not heads:
        raise errors.FailedPrecondition(f"The config of {folder.name!r} names no layer or head count.")
    return int(layers), int(heads), int(cfg.get("num_key_value_heads") or heads)


def read_ids(tokenizer, text: str, max_tokens: int) -> tuple[list[int], int]:
    """The text's tokens (after bos, as generation reads it) cut at ``max_tokens``; and the uncut count."""
    ids = tokenizer(text, add_special_tokens=False).input_ids
    if tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id] + ids
    return ids[:max_tokens], len(ids)


@torch.no_grad()
def eager_attentions(model, ids: list[int]) -> list[torch.Tensor]:
    """One (heads, T, T) float32 matrix per layer, from eager attention."""
    model.set_attn_implementation("eager")
    out = model(input_ids=torch.tensor([ids]), output_attentions=True, use_cache=False)
    if not out.attentions or any(a is None for a in out.attentions):
        raise errors.FailedPrecondition("This model's architecture returns no attention weights, even eager.")
    return [a[0].float() for a in out.attentions]


def head_stats(a: np.ndarray, ids: list[int]) -> dict[str, float]:
    """Entropy (nats), first-token (sink) mass, previous-token and induction scores of one (T, T) head,
    each a mean over query positions. Induction: the weight on the token right after an earlier
    occurrence of the current token (what copies a repeated sequence), over positions that have one."""
    t = a.shape[0]
    entropy = float(np.mean(-np.sum(np.where(a > 0, a * np.log(np.maximum(a, 1e-30)), 0.0), axis=1)))
    previous = float(np.mean(a[np.arange(1, t), np.arange(t - 1)])) if t > 1 else 0.0
    ids_arr = np.array(ids)
    induction = []
    for i in range(2, t):
        targets = np.flatnonzero(ids_arr[:i - 1] == ids_arr[i]) + 1  # token after each earlier copy
        if targets.size:
            induction.append(a[i, targets].sum())
    return {"entropy": entropy, "sink_mass": float(np.mean(a[:, 0])), "previous_token": previous,
            "induction": float(np.mean(induction)) if induction else 0.0}


def quantize(a: np.ndarray) -> tuple[dict[str, bytes], float]:
    """A causal (T, T) matrix in ~1 byte a weight, every weight within 1e-3 of ``a``.

    Each row keeps its largest weight exactly (float32, and its column as uint16); the other
    weights of the lower triangle are uint8 scaled by the row's second largest. A row sums to 1,
    so the second largest is at most 0.5 and the rounding error at most 0.5 / 510 < 1e-3, where
    one scale for the whole row would err by up to 1 / 510 on a sink head. Returns the parts
    (``q``, ``s`` scales, ``t`` top column, ``v`` top weight) and the largest error."""
    t = a.shape[0]
    rows = np.arange(t)
    top = a.argmax(axis=1)
    top_value = a[rows, top].astype(np.float32)
    rest = a.copy()
    rest[rows, top] = 0.0
    scales = rest.max(axis=1).astype(np.float32)
    safe = np.where(scales > 0, scales, 1.0)[:, None]
    q = np.rint(rest / safe * 255).clip(0, 255).astype(np.uint8)
    decoded = q.astype(np.float64) / 255 * safe
    decoded[rows, top] = top_value
    low_r, low_c = np.tril_indices(t)
    error = float(np.abs(decoded - a)[low_r, low_c].max())
    parts = {"q": q[low_r, low_c].tobytes(), "s": scales.tobytes(), "t": top.astype(np.uint16).tobytes(),
             "v": top_value.tobytes()}
    return parts, error


def token_labels(tokenizer, ids: list[int]) -> list[str]:
    """One label per token: a group's whole text on its first token, '' on the tokens continuing it."""
    labels = [""] * len(ids)
    for text, first, _ in readable_pieces(tokenizer, ids):
        labels[first] = text
    return labels


def build_attention_map(store: Store, spec: AttentionSpec, ctx: JobContext) -> dict[str, Any]:
    folder = store.model(spec.name).path
    n_layers, n_heads, kv_heads = shape_of(folder)
    model, tok = load_model(folder), load_tokenizer(folder)
    ids, total = read_ids(tok, spec.text, spec.max_tokens)
    if total > len(ids):
        ctx.warn(f"The text has {total} tokens; the map shows the first {len(ids)} (max_tokens).")
    ctx.report(progress=0.1, stage="forward", message=f"{len(ids)} tokens")
    attentions = eager_attentions(model, ids)
    layers = list(spec.layers) or list(range(n_layers))
    heads = list(spec.heads) or list(range(n_heads))
    group = max(1, n_heads // kv_heads)
    mats, stats, worst, exact = {}, [], 0.0, {}
    for layer in layers:
        ctx.check_cancelled()
        for head in heads:
            a = exact[layer, head] = attentions[layer][head].double().numpy()
            parts, error = quantize(a)
            worst = max(worst, error)
            mats[f"{layer},{head}"] = {k: base64.b64encode(v).decode() for k, v in parts.items()}
            stats.append({"layer": layer, "head": head, "kv_head": head // group, **head_stats(a, ids)})
    ctx.report(progress=0.7, stage="write", message=spec.output_name)
    data = {"tokens": token_labels(tok, ids), "layers": layers, "heads": heads, "mats": mats, "stats": stats}
    files = {HTML_FILE: render_page(spec, data, kv_heads, n_heads)}
    if spec.png:
        from apt_viz.png import figures_png  # kaleido only when asked

        files.update(figures_png(attention_figures(exact, data["tokens"])))
    ctx.check_cancelled()
    write_dataset(store, spec.output_name, files, operation="visualize-attention",
                  parent=spec.name, parameters={"layers": layers, "heads": heads, "tokens": len(ids)},
                  overwrite=spec.overwrite)
    return {"output": spec.output_name, "html": HTML_FILE, "html_bytes": len(files[HTML_FILE].encode()),
            "tokens": len(ids), "truncated": total > len(ids), "layers": layers, "heads": heads,
            "kv_heads": kv_heads, "max_quantization_error": worst, "head_stats": stats,
            "png_files": sorted(k for k in files if k != HTML_FILE)}


def max_pooled(a: np.ndarray, most: int) -> np.ndarray:
    """``a`` in square blocks, each its largest weight, at most ``most`` blocks a side."""
    k = -(-a.shape[0] // most)
    if k == 1:
        return a
    n = -(-a.shape[0] // k) * k
    padded = np.zeros((n, n))
    padded[:a.shape[0], :a.shape[1]] = a
    return padded.reshape(n // k, k, n // k, k).max(axis=(1, 3))


def attention_figures(exact: dict[tuple[int, int], np.ndarray], tokens: list[str]) -> dict[str, Any]:
    """The maps as plotly figures for PNG export (the page draws them on canvas): ``heads``, every
    (layer, head) map in a grid, and ``head``, the first one large with its tokens on the axes.
    Colour is the square root of the weight, as on the page, so faint weights stay visible; the grid's
    maps are max-pooled to at most THUMB cells a side (a thumbnail has fewer pixels than that, and
    the max keeps a strong weight visible)."""
    keys = list(exact)
    layers, heads = sorted({k[0] for k in keys}), sorted({k[1] for k in keys})
    rows, cols = len(layers), len(heads)
    grid = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.01, vertical_spacing=min(0.04, 1 / rows),
                         subplot_titles=[f"L{l} H{h}" for l in layers for h in heads])
    for (layer, head), a in exact.items():
        grid.add_trace(go.Heatmap(z=np.sqrt(max_pooled(a, THUMB)), zmin=0, zmax=1, colorscale="Blues", showscale=False),
                       row=layers.index(layer) + 1, col=heads.index(head) + 1)
    grid.update_xaxes(visible=False)
    grid.update_yaxes(visible=False, autorange="reversed")
    grid.update_layout(height=80 + int(1040 / cols) * rows, margin={"t": 40, "l": 10, "r": 10, "b": 10})
    (layer, head), a = keys[0], exact[keys[0]]
    ticks = {"tickmode": "array", "tickvals": list(range(len(tokens))),
             "ticktext": [(t.strip() or "·")[:12] for t in tokens], "automargin": False} if len(tokens) <= 64 else {}
    big = go.Figure(go.Heatmap(z=np.sqrt(a), zmin=0, zmax=1, colorscale="Blues",
                               colorbar={"title": {"text": "√weight"}}))
    big.update_layout(title=f"layer {layer}, head {head}", height=900, margin={"l": 130, "b": 130, "t": 60},
                      xaxis={"title": "key", **ticks},
                      yaxis={"title": "query", "autorange": "reversed", **ticks})
    return {name: json.loads(pio.to_json(fig, validate=True)) for name, fig in (("heads", grid), ("head", big))}


def render_page(spec: AttentionSpec, data: dict[str, Any], kv_heads: int, n_heads: int) -> str:
    page = Page(f"Attention of {spec.name}")
    page.note(f"{len(data['tokens'])} tokens; {n_heads} query heads sharing {kv_heads} key/value heads. "
              "Click a thumbnail to enlarge it; hover the large map for a weight, a token of the head view "
              "for where it looks.")
    page.heading("Layers x heads")
    page.raw('<div id="grid"></div>')
    page.heading("Selected head")
    page.raw('<p id="selected" class="note"></p><div style="display:flex;gap:2em;align-items:flex-start">'
             '<canvas id="big" width="512" height="512" style="border:1px solid #ccc"></canvas>'
             '<canvas id="headview" width="420" height="512" style="border:1px solid #ccc"></canvas></div>'
             '<p id="hover" class="note">&nbsp;</p>')
    page.heading("Per-head statistics")
    page.raw(stats_table(data["stats"]))
    page.scripts.append(f"const ATT={script_json(data)};" + (Path(__file__).with_name("attention.js")
                                                             .read_text(encoding="utf-8")))
    return page.render()


def stats_table(stats: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("layer", "head", "kv head", *STATS))
    rows = "".join(
        f"<tr><td>{s['layer']}</td><td>{s['head']}</td><td>{s['kv_head']}</td>"
        + "".join(f"<td>{s[k]:.3f}</td>" for k in STATS) + "</tr>" for s in stats)
    return f'<table id="stats"><tr>{head}</tr>{rows}</table>'
