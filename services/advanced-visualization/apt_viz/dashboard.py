"""StartDashboard: the training history of store models as one self-contained HTML page.

Curves of ``training_log.jsonl`` against step, tokens seen and wall time (min/max-preserving
downsampled), the lineage graph of ``apt.json`` with the metric deltas of each operation on its
edges, and the models' numeric training settings as parallel coordinates: brushing an axis hides
the curves of the models outside the brushed range (TensorBoard HParams cannot relate settings to
curves, tensorflow/tensorboard#2465), and HParams-style filters on the settings' values and the
final metrics (filters.py, #4121) hide the runs that do not pass from the curves and the axes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go

from apt_model.modeling import trainlog
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store
from apt_model.store.entry import Entry

from apt_viz.downsample import minmax_indices
from apt_viz.filters import final_metrics, run_filters
from apt_viz.page import Page, script_json, write_dataset

HTML_FILE = "dashboard.html"
AXES = (("step", "step"), ("tokens", "tokens seen"), ("wall", "wall time (s)"))
RUN_JS = Path(__file__).with_name("dashboard.js")  # filters and brushing
MAX_ANCESTORS = 64  # lineage walked upwards at most this far (a cycle cannot hang the job)


@dataclass(frozen=True)
class DashboardSpec:
    models: tuple[str, ...]
    output_name: str
    overwrite: bool = False
    max_points: int = 2000
    png: bool = False  # also each figure as png/<id>.png


@dataclass
class Curves:
    """One model's log as arrays: x per axis, loss, validation points."""

    name: str
    x: dict[str, np.ndarray]
    loss: np.ndarray
    val: list[tuple[int, float]]  # (row index, val_loss)
    spikes: np.ndarray  # row indices of the loss spikes 'apt-model info --log' reports


def read_curves(entry: Entry) -> Curves | None:
    rows = trainlog.read(entry.path)
    if not rows:
        return None
    seconds = np.array([r.get("step_seconds") or 0.0 for r in rows], dtype=np.float64)
    tokens = np.array([(r.get("tokens_per_s") or 0.0) * s for r, s in zip(rows, seconds)], dtype=np.float64)
    x = {"step": np.array([r["step"] for r in rows], dtype=np.float64),
         "tokens": np.round(np.cumsum(tokens)), "wall": np.cumsum(seconds)}
    loss = np.array([r["loss"] if r.get("loss") is not None else math.nan for r in rows], dtype=np.float64)
    val = [(i, float(r["val_loss"])) for i, r in enumerate(rows) if r.get("val_loss") is not None]
    index = {r["step"]: i for i, r in enumerate(rows)}
    spikes = np.array([index[s["step"]] for s in trainlog.summary(rows)["spikes"]], dtype=np.int64)
    return Curves(entry.name, x, loss, val, spikes)


def curve_figure(curves: list[Curves], axis: str, label: str, max_points: int) -> tuple[go.Figure, int]:
    """Loss against one x axis, one trace per model (``meta`` = model name, for brushing)."""
    fig, drawn = go.Figure(), 0
    for i, c in enumerate(curves):
        keep = drawn_indices(c, max_points)
        drawn += len(keep)
        color = f"hsl({(i * 67) % 360},65%,45%)"
        fig.add_trace(go.Scatter(x=c.x[axis][keep], y=_finite(c.loss[keep]), mode="lines", name=c.name,
                                   meta=c.name, line={"color": color, "width": 1.4}, legendgroup=c.name))
        if c.val:
            idx = [i for i, _ in c.val]
            fig.add_trace(go.Scatter(x=c.x[axis][idx], y=[v for _, v in c.val], mode="markers",
                                     name=f"{c.name} val_loss", meta=c.name, legendgroup=c.name,
                                     marker={"color": color, "symbol": "diamond", "size": 7}))
    fig.update_layout(xaxis_title=label, yaxis_title="loss", height=380, margin={"t": 30},
                      hovermode="closest", legend={"orientation": "h"})
    return fig, drawn


def drawn_indices(c: Curves, max_points: int) -> np.ndarray:
    """The rows a curve draws: each bucket's extremes, and every spike (of two spikes in one
    bucket min/max keeps only the higher one)."""
    return np.union1d(minmax_indices(c.loss, max_points), c.spikes)


def _finite(y: np.ndarray) -> list[float | None]:
    """JSON has no NaN/inf: a non-finite loss becomes a gap in the line."""
    return [float(v) if math.isfinite(v) else None for v in y]


def lineage(store: Store, names: tuple[str, ...]) -> tuple[dict[str, Entry], list[dict[str, Any]]]:
    """The models and their stored ancestors, and one edge per (parent -> child) operation."""
    nodes: dict[str, Entry] = {}
    for name in names:
        entry, hops = store.model(name), 0
        while entry.name not in nodes and hops < MAX_ANCESTORS:
            nodes[entry.name] = entry
            if not entry.parent or not store.exists("models", entry.parent):
                break
            entry, hops = store.model(entry.parent), hops + 1
    edges = [{"parent": e.parent, "child": e.name, "operation": e.meta.get("lineage", {}).get("operation", ""),
              "deltas": metric_deltas(nodes[e.parent].meta, e.meta)}
             for e in nodes.values() if e.parent in nodes]
    return nodes, edges


def metric_deltas(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, float]:
    """child - parent for each numeric metric both records hold."""
    a, b = parent.get("metrics", {}), child.get("metrics", {})
    return {k: b[k] - a[k] for k in sorted(set(a) & set(b))
            if _number(a[k]) and _number(b[k])}


EDGE_KEYS = ("val_loss", "val_perplexity", "perplexity", "eval_ppl", "parameters", "size_bytes")


def edge_label_deltas(deltas: dict[str, float], most: int = 4) -> list[tuple[str, float]]:
    """The deltas an edge label shows: the quality and size metrics first, unchanged ones left out
    (the hover of the edge's model keeps them all)."""
    ranked = sorted(deltas, key=lambda k: (EDGE_KEYS.index(k) if k in EDGE_KEYS else len(EDGE_KEYS), k))
    return [(k, deltas[k]) for k in ranked if deltas[k] != 0][:most]


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def lineage_figure(nodes: dict[str, Entry], edges: list[dict[str, Any]]) -> go.Figure:
    """Generations left to right (roots at x=0), edges labelled with operation and deltas."""
    depth: dict[str, int] = {}

    def depth_of(name: str) -> int:
        if name not in depth:
            parent = nodes[name].parent
            depth[name] = 0  # guards a cycle while it is being resolved
            depth[name] = depth_of(parent) + 1 if parent in nodes else 0
        return depth[name]

    rows: dict[int, int] = {}
    pos = {}
    for name in sorted(nodes, key=lambda n: (depth_of(n), n)):
        d = depth_of(name)
        pos[name] = (d, -rows.get(d, 0))
        rows[d] = rows.get(d, 0) + 1
    fig = go.Figure()
    for e in edges:
        (x0, y0), (x1, y1) = pos[e["parent"]], pos[e["child"]]
        fig.add_trace(go.Scatter(x=[x0, x1], y=[y0, y1], mode="lines", line={"color": "#999"},
                                 hoverinfo="skip", showlegend=False))
        label = e["operation"] + "".join(f"<br>{k} {v:+.4g}" for k, v in edge_label_deltas(e["deltas"]))
        fig.add_annotation(x=(x0 + x1) / 2, y=(y0 + y1) / 2, text=label, showarrow=False,
                           font={"size": 10}, bgcolor="rgba(255,255,255,.8)")
    fig.add_trace(go.Scatter(
        x=[p[0] for p in pos.values()], y=[p[1] for p in pos.values()], mode="markers+text",
        text=list(pos), textposition="top center", marker={"size": 14, "color": "#3b6fb6"}, showlegend=False,
        hovertext=[f"{n}<br>{nodes[n].meta.get('lineage', {}).get('operation', '')}" for n in pos],
        hoverinfo="text"))
    fig.update_layout(height=120 + 90 * max(rows.values(), default=1), margin={"t": 30},
                      xaxis={"visible": False}, yaxis={"visible": False})
    return fig


def settings_figure(entries: list[Entry], curves: dict[str, Curves]) -> go.Figure | None:
    """Parallel coordinates: one line per model with a log, its numeric lineage parameters held
    by every such model that differ between them, and its final losses (filters.final_metrics).
    Each axis keeps the range of all the runs, so a filter that hides some runs does not rescale it."""
    drawn = [e for e in entries if e.name in curves]
    if not drawn:
        return None
    params = [settings_of(e) for e in drawn]
    keys = sorted(k for k in set().union(*params)  # numeric, and not the same in every run
                  if all(_number(p.get(k)) for p in params) and len({p[k] for p in params}) > 1)
    dims = [{"label": k, "values": [float(p[k]) for p in params]} for k in keys]
    metrics = [final_metrics(curves[e.name].loss, curves[e.name].val) for e in drawn]
    for label in ("last loss", "lowest loss"):
        if all(label in m for m in metrics):
            dims.append({"label": label, "values": [m[label] for m in metrics]})
    for d in dims:
        d["range"] = [min(d["values"]), max(d["values"])]
    line = {"color": list(range(len(drawn))), "colorscale": "Viridis", "cmin": 0, "cmax": max(1, len(drawn) - 1)}
    return go.Figure(go.Parcoords(dimensions=dims, line=line),
                     layout={"height": 360, "margin": {"t": 50, "l": 60, "r": 60}})


def settings_of(entry: Entry) -> dict[str, Any]:
    return entry.meta.get("lineage", {}).get("parameters", {})


def settings_section(page: Page, entries: list[Entry], curves: dict[str, Curves]) -> None:
    """The run filters, then the parallel coordinates brushed with the curves (dashboard.js)."""
    settings = settings_figure(entries, curves)
    if settings is None:
        return
    drawn = [e for e in entries if e.name in curves]
    runs = run_filters([e.name for e in drawn], [settings_of(e) for e in drawn],
                       [final_metrics(curves[e.name].loss, curves[e.name].val) for e in drawn])
    page.heading("Training settings")
    page.raw('<p class="note">Filter the runs by the settings that differ between them and by their final '
             'metrics (an empty box bounds nothing): the curves and the parallel coordinates keep the runs '
             'that pass. <span id="filtered"></span></p><table id="filters"><tr><th>setting or metric</th>'
             '<th>kind</th><th>keep</th></tr></table>')
    page.raw('<p class="note">Drag along an axis to brush: the curves of models outside the range hide. '
             '<span id="brushed"></span></p>')
    page.figure("settings", settings)
    page.scripts.append(f"const RUNS={script_json(runs)};" + RUN_JS.read_text(encoding="utf-8"))


def build_dashboard(store: Store, spec: DashboardSpec, ctx: JobContext) -> dict[str, Any]:
    curves: dict[str, Curves] = {}
    points_in = 0
    for i, name in enumerate(spec.models):
        ctx.check_cancelled()
        ctx.report(progress=i / (len(spec.models) + 1), stage="read", message=name)
        c = read_curves(store.model(name))
        if c is None:
            ctx.warn(f"{name} has no training_log.jsonl (it was not trained by the platform): "
                     "only its lineage is shown.")
            continue
        curves[name] = c
        points_in += len(c.loss)
    page = Page(f"Training dashboard: {', '.join(spec.models)}")
    drawn = 0
    if curves:
        page.heading("Loss curves")
        page.note(f"Each curve keeps about {spec.max_points} points: the lowest and highest loss of each "
                  "bucket of steps, and every loss spike (above 3x the median of the 20 steps before), so "
                  "spikes stay visible. Click a legend entry to hide a curve.")
        for axis, label in AXES:
            fig, drawn = curve_figure(list(curves.values()), axis, label, spec.max_points)
            page.figure(f"curves-{axis}", fig)
    nodes, edges = lineage(store, spec.models)
    page.heading("Lineage")
    page.note("Each edge is the operation that made the model on its right, with the change of every metric "
              "both models record.")
    page.figure("lineage", lineage_figure(nodes, edges))
    settings_section(page, [nodes[n] for n in spec.models], curves)
    ctx.report(progress=0.9, stage="write", message=spec.output_name)
    files = page.files(HTML_FILE, spec.png)
    ctx.check_cancelled()  # a cancel during rendering leaves no dataset
    write_dataset(store, spec.output_name, files, operation="visualize-dashboard",
                  parent=spec.models[0], parameters={"models": list(spec.models), "max_points": spec.max_points},
                  overwrite=spec.overwrite)
    return {"output": spec.output_name, "html": HTML_FILE, "html_bytes": len(files[HTML_FILE].encode()),
            "models": len(curves), "points_in": points_in, "points_drawn": drawn, "lineage_edges": len(edges),
            "png_files": sorted(k for k in files if k != HTML_FILE)}
