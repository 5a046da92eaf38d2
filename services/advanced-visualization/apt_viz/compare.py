"""StartComparisonReport: store models side by side on one text, as an HTML report.

Perplexity overall and per language is ``lm.text_perplexity``, the estimator core ``compare``
calls with the same arguments, so the numbers are the ones it prints. The per-token values behind
the colouring and the intervals come from the same windows (``token_nll``: disjoint windows of the
model's context, each window's first token only context), and their mean is checked against that
perplexity. Intervals are a paired bootstrap over paragraphs: each resample draws the same
paragraphs for every model, so what the models share cancels out of the difference.
"""

from __future__ import annotations

import html
import math
import re
import statistics
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
import torch

from apt_model import errors
from apt_model.corpus import load_eval_documents
from apt_model.modeling import lm
from apt_model.modeling.io import load_model, load_tokenizer
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store

from apt_viz.page import Page, write_dataset
from apt_viz.tokens import language_of, readable_pieces

HTML_FILE = "report.html"
DEFAULT_PROMPTS = ("The", "机器学习")  # core compare's
MAX_SHOWN_TOKENS = 3000  # tokens of the coloured text
CONSISTENCY = 1e-6  # relative: per-token mean vs lm.text_perplexity


@dataclass(frozen=True)
class CompareSpec:
    models: tuple[str, ...]
    output_name: str
    eval_dataset: str = ""
    overwrite: bool = False
    max_eval_tokens: int = lm.MAX_EVAL_TOKENS
    bootstrap_samples: int = 1000
    prompts: tuple[str, ...] = ()
    max_new_tokens: int = 32
    png: bool = False  # also each figure as png/<id>.png

    @classmethod
    def from_request(cls, request) -> "CompareSpec":
        if len(set(request.models)) < 2:
            raise errors.InvalidArgument("A comparison needs two or more different models.")
        if bool(request.eval_path) == bool(request.eval_dataset):
            raise errors.InvalidArgument("Give the evaluation text as exactly one of --eval-path or --eval-dataset.")
        return cls(models=tuple(request.models), output_name=request.output_name,
                   eval_dataset=request.eval_dataset, overwrite=request.overwrite,
                   max_eval_tokens=request.max_eval_tokens or lm.MAX_EVAL_TOKENS,
                   bootstrap_samples=request.bootstrap_samples or 1000, prompts=tuple(request.prompts),
                   max_new_tokens=request.max_new_tokens or 32, png=request.png)


@torch.no_grad()
def token_nll(model, ids: torch.Tensor) -> np.ndarray:
    """Per-token negative log-likelihood (nats) of a 1-D stream in ``lm.perplexity``'s disjoint
    windows; NaN at the positions no window scores (each window's first token)."""
    window = min(lm.MAX_WINDOW, lm.context_length(model))
    out = np.full(ids.numel(), np.nan)
    device = next(model.parameters()).device
    for begin in range(0, ids.numel(), window):
        chunk = ids[begin:begin + window].unsqueeze(0).to(device)
        if chunk.shape[1] < 2:
            break
        log_probs = torch.log_softmax(model(input_ids=chunk, use_cache=False).logits[0, :-1].float(), dim=-1)
        nll = -log_probs.gather(1, chunk[0, 1:].unsqueeze(1)).squeeze(1).double()
        out[begin + 1:begin + chunk.shape[1]] = nll.cpu().numpy()
    return out


@dataclass(frozen=True)
class Unit:
    """A paragraph of one document (split at blank lines): the unit the bootstrap resamples and
    the per-language split groups. A .txt file is one document, so documents alone are too few."""

    doc: int
    start: int  # characters
    end: int
    last: bool  # the document's last paragraph (its eos token is counted here)

    def text(self, docs: list[str]) -> str:
        return docs[self.doc][self.start:self.end]


def paragraphs(docs: list[str]) -> list[Unit]:
    units = []
    for d, doc in enumerate(docs):
        starts = [0] + [m.end() for m in re.finditer(r"\n\s*\n", doc) if m.end() < len(doc)]
        ends = starts[1:] + [len(doc)]
        units += [Unit(d, a, b, i == len(starts) - 1) for i, (a, b) in enumerate(zip(starts, ends))]
    return units


def unit_of_tokens(tokenizer, docs: list[str], units: list[Unit]) -> np.ndarray:
    """The unit of each token of ``lm.tokenize_documents``' stream (by the character a token starts at;
    each eos goes to its document's last paragraph)."""
    encoded = tokenizer(docs, add_special_tokens=False, return_offsets_mapping=True)
    out, base = [], 0
    for d, offsets in enumerate(encoded.offset_mapping):
        mine = [u for u in units if u.doc == d]
        starts = np.array([u.start for u in mine])
        first_chars = np.array([o[0] for o in offsets], dtype=np.int64)
        out.append(base + np.searchsorted(starts, first_chars, side="right") - 1)
        out.append(np.array([base + len(mine) - 1]))
        base += len(mine)
    return np.concatenate(out).astype(np.int64)


@dataclass
class Scored:
    """One model on the text."""

    name: str
    row: dict[str, Any]  # the result's ModelScore
    ids: torch.Tensor  # the scored stream
    nll: np.ndarray  # per token, NaN where unscored
    unit_of: np.ndarray  # per stream token, its paragraph
    vocab: dict[str, int]
    tokenizer: Any
    generations: list[dict[str, Any]]

    def per_unit(self, n_units: int) -> tuple[np.ndarray, np.ndarray]:
        """Summed NLL and scored-token count of each paragraph."""
        scored = ~np.isnan(self.nll)
        where = self.unit_of[:len(self.nll)][scored]
        return (np.bincount(where, weights=self.nll[scored], minlength=n_units),
                np.bincount(where, minlength=n_units).astype(np.float64))

    def whole_units(self, n_units: int) -> np.ndarray:
        """Mask of the paragraphs whose every token lies inside the (possibly cut) stream."""
        last = np.full(n_units, -1)
        np.maximum.at(last, self.unit_of, np.arange(len(self.unit_of)))
        return last < self.ids.numel()


def score_model(store: Store, name: str, docs: list[str], units: list[Unit], spec: CompareSpec,
                ctx: JobContext) -> Scored:
    folder = store.model(name).path
    model, tok = load_model(folder), load_tokenizer(folder)
    ctx.report(stage="perplexity", message=f"{name}: scoring at most {spec.max_eval_tokens} tokens")
    try:
        ppl = lm.text_perplexity(model, tok, docs, max_tokens=spec.max_eval_tokens)
    except errors.FailedPrecondition as exc:
        raise errors.FailedPrecondition(f"{name}: {exc}") from exc
    by_language = {}
    for language in sorted({language_of(u.text(docs)) for u in units}):
        group = [u.text(docs) for u in units if language_of(u.text(docs)) == language]
        if lm.tokenize_documents(tok, group)[:spec.max_eval_tokens].numel() >= 2:
            by_language[language] = lm.text_perplexity(model, tok, group, max_tokens=spec.max_eval_tokens).perplexity
    stream = lm.tokenize_documents(tok, docs)
    unit_of = unit_of_tokens(tok, docs, units)
    if len(unit_of) != stream.numel():
        raise RuntimeError(f"{name}: {len(unit_of)} token offsets for a stream of {stream.numel()} tokens.")
    ids = stream[:spec.max_eval_tokens]
    if stream.numel() > ids.numel():
        ctx.warn(f"{name}: the text is {stream.numel()} tokens; the first {ids.numel()} were scored "
                 "(max_eval_tokens, as core compare).")
    nll = token_nll(model, ids)
    mean = float(np.nansum(nll) / np.count_nonzero(~np.isnan(nll)))
    if abs(math.exp(mean) - ppl.perplexity) > CONSISTENCY * ppl.perplexity:
        raise RuntimeError(f"{name}: per-token perplexity {math.exp(mean)} differs from lm.text_perplexity "
                           f"{ppl.perplexity}; the report would contradict itself.")
    generations = [generate(model, tok, p, spec.max_new_tokens) for p in spec.prompts or DEFAULT_PROMPTS]
    steps = sum(max(g["new_tokens"] - 1, 0) for g in generations)
    total, _ = lm.count_parameters(model)
    row = {"name": name, "perplexity": ppl.perplexity, "nll": ppl.nll, "tokens_scored": ppl.tokens_scored,
           "parameters": total, "size_bytes": store.model(name).size_bytes,
           "first_token_ms": 1000 * statistics.median(g["prefill_seconds"] for g in generations),
           "per_token_ms": 1000 * sum(g["decode_seconds"] for g in generations) / steps if steps else 0.0,
           "perplexity_by_language": by_language}
    return Scored(name, row, ids, nll, unit_of, tok.get_vocab(), tok, generations)


def generate(model, tok, prompt: str, max_new_tokens: int) -> dict[str, Any]:
    torch.manual_seed(0)
    g = lm.generate(model, tok, prompt, lm.GenerationParams(max_new_tokens=max_new_tokens))
    return {"prompt": prompt, "text": g.text, "new_tokens": g.new_tokens,
            "prefill_seconds": g.prefill_seconds, "decode_seconds": g.decode_seconds}


def paired_bootstrap(scored: list[Scored], unit_bytes: np.ndarray, keep: np.ndarray, metric: str,
                     samples: int) -> list[dict[str, Any]]:
    """Differences (model - first model) of perplexity or bits per byte over the paragraphs ``keep``
    every model scored whole, with 95% percentile intervals of ``samples`` paired resamples."""
    n_units = len(unit_bytes)
    sums = [tuple(x[keep] for x in s.per_unit(n_units)) for s in scored]
    size = int(keep.sum())
    draws = np.random.default_rng(0).integers(0, size, size=(samples, size))
    nbytes = unit_bytes[keep]

    def stat(nll, tokens, pick):
        if metric == "perplexity":
            return np.exp(nll[pick].sum(-1) / tokens[pick].sum(-1))
        return nll[pick].sum(-1) / math.log(2) / nbytes[pick].sum(-1)

    everything = np.arange(size)
    base, base_draws = stat(*sums[0], everything), stat(*sums[0], draws)
    out = []
    for s, (nll, tokens) in zip(scored[1:], sums[1:]):
        diffs = stat(nll, tokens, draws) - base_draws
        out.append({"model": s.name, "metric": metric, "value": float(stat(nll, tokens, everything) - base),
                    "low": float(np.percentile(diffs, 2.5)), "high": float(np.percentile(diffs, 97.5))})
    return out


def build_comparison_report(store: Store, spec: CompareSpec, eval_path: str, ctx: JobContext) -> dict[str, Any]:
    docs = load_eval_documents(path=eval_path, dataset=spec.eval_dataset, store=store)
    units = paragraphs(docs)
    scored = []
    for i, name in enumerate(spec.models):
        ctx.check_cancelled()
        ctx.report(progress=i / (len(spec.models) + 1), stage="model", message=name)
        scored.append(score_model(store, name, docs, units, spec, ctx))
    keep = np.logical_and.reduce([s.whole_units(len(units)) for s in scored])
    unit_bytes = np.array([len(u.text(docs).encode("utf-8")) + u.last for u in units], dtype=np.float64)  # +1: eos
    same = all(s.vocab == scored[0].vocab and torch.equal(s.ids, scored[0].ids) for s in scored[1:])
    note = "" if same else ("The models' tokenizers differ, so their tokens do not line up: the per-token view is "
                            "off and the models are compared in bits per byte.")
    if note:
        ctx.warn(note)
    for s in scored:
        nll, _ = s.per_unit(len(units))
        s.row["bits_per_byte"] = float(nll[keep].sum() / math.log(2) / unit_bytes[keep].sum()) if keep.any() else 0.0
    differences: list[dict[str, Any]] = []
    if keep.sum() < 2:
        ctx.warn(f"Only {int(keep.sum())} paragraph(s) fit whole in {spec.max_eval_tokens} tokens: no bootstrap "
                 "interval (it resamples paragraphs); give more text or raise --max-eval-tokens.")
    else:
        for metric in (("perplexity",) if same else ()) + ("bits_per_byte",):
            differences += paired_bootstrap(scored, unit_bytes, keep, metric, spec.bootstrap_samples)
    ctx.report(progress=0.9, stage="write", message=spec.output_name)
    files = render_report(spec, scored, differences, same, note, int(keep.sum())).files(HTML_FILE, spec.png)
    ctx.check_cancelled()  # a cancel during rendering leaves no dataset
    write_dataset(store, spec.output_name, files, operation="visualize-compare",
                  parent=spec.models[0], parameters={"models": list(spec.models), "eval_dataset": spec.eval_dataset,
                                                     "max_eval_tokens": spec.max_eval_tokens},
                  overwrite=spec.overwrite)
    return {"output": spec.output_name, "html": HTML_FILE, "html_bytes": len(files[HTML_FILE].encode()),
            "models": [s.row for s in scored], "differences": differences, "same_tokenizer": same,
            "per_token_note": note, "png_files": sorted(k for k in files if k != HTML_FILE)}


def render_report(spec: CompareSpec, scored: list[Scored], differences: list[dict[str, Any]], same: bool,
                  note: str, n_docs: int) -> Page:
    page = Page(f"Comparison: {' vs '.join(spec.models)}")
    page.heading("Models")
    page.raw(models_table(scored))
    page.note("Perplexity is the platform's estimator (the numbers 'apt-model compare' prints); bits per byte "
              f"over the {n_docs} paragraph(s) every model scored whole; languages by each paragraph's "
              "dominant script.")
    languages = sorted({k for s in scored for k in s.row["perplexity_by_language"]})
    page.heading("Perplexity per language")
    page.figure("per-language", go.Figure(
        [go.Bar(name=s.name, x=languages, y=[s.row["perplexity_by_language"].get(k) for k in languages])
         for s in scored], layout={"barmode": "group", "height": 340, "margin": {"t": 30},
                                   "yaxis_title": "perplexity", "xaxis_title": "language (dominant script)"}))
    if differences:
        page.heading(f"Differences against {spec.models[0]} (paired bootstrap, 95%)")
        page.figure("differences", differences_figure(differences))
    page.heading("Per-token log-probability difference")
    if same:
        for s in scored[1:]:
            page.note(f"{s.name} minus {scored[0].name}: green where {s.name} gives the token more probability, "
                      "red where less. Hover a token for the values.")
            page.raw(coloured_text(scored[0], s))
    else:
        page.note(note)
    page.heading("Sample generations")
    page.raw(generations_table(scored))
    return page


def differences_figure(differences: list[dict[str, Any]]) -> go.Figure:
    """One panel per metric (perplexity and bits per byte have different scales): a bar per
    model with its interval."""
    metrics = list(dict.fromkeys(d["metric"] for d in differences))
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[m.replace("_", " ") for m in metrics])
    for col, metric in enumerate(metrics, 1):
        mine = [d for d in differences if d["metric"] == metric]
        fig.add_trace(go.Bar(
            x=[d["value"] for d in mine], y=[d["model"] for d in mine], orientation="h", showlegend=False,
            error_x={"type": "data", "symmetric": False, "array": [d["high"] - d["value"] for d in mine],
                     "arrayminus": [d["value"] - d["low"] for d in mine]}), row=1, col=col)
    fig.update_layout(height=160 + 40 * len(differences), margin={"t": 40, "l": 120})
    return fig


def models_table(scored: list[Scored]) -> str:
    head = ("model", "perplexity", "bits/byte", "parameters", "size (MB)", "first token (ms)", "per token (ms)")
    rows = "".join(
        f"<tr><td>{html.escape(s.name)}</td><td>{s.row['perplexity']:.4f}</td>"
        f"<td>{s.row.get('bits_per_byte', float('nan')):.4f}</td><td>{s.row['parameters']:,}</td>"
        f"<td>{s.row['size_bytes'] / 1e6:.2f}</td><td>{s.row['first_token_ms']:.1f}</td>"
        f"<td>{s.row['per_token_ms']:.2f}</td></tr>" for s in scored)
    return f"<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{rows}</table>"


def coloured_text(ref: Scored, other: Scored) -> str:
    """The text as readable pieces, each coloured by the summed log-prob difference of its tokens."""
    ids = ref.ids[:MAX_SHOWN_TOKENS].tolist()
    diff = (ref.nll - other.nll)[:MAX_SHOWN_TOKENS]  # = logp(other) - logp(ref)
    spans = []
    for text, a, b in readable_pieces(ref.tokenizer, ids):
        d = float(np.nansum(diff[a:b])) if not np.all(np.isnan(diff[a:b])) else 0.0
        alpha = min(abs(d) / 2.0, 1.0) * 0.8
        colour = f"rgba(40,160,60,{alpha:.2f})" if d > 0 else f"rgba(210,50,40,{alpha:.2f})"
        spans.append(f'<span class="tok" style="background:{colour}" title="{d:+.3f} nats">'
                     f"{html.escape(text)}</span>")
    return f'<div style="white-space:pre-wrap;font-family:monospace;line-height:1.6">{"".join(spans)}</div>'


def generations_table(scored: list[Scored]) -> str:
    head = "".join(f"<th>{html.escape(s.name)}</th>" for s in scored)
    rows = "".join(
        f"<tr><td>{html.escape(g['prompt'])}</td>"
        + "".join(f'<td style="text-align:left">{html.escape(s.generations[k]["text"])}</td>' for s in scored)
        + "</tr>" for k, g in enumerate(scored[0].generations))
    return f"<table><tr><th>prompt</th>{head}</tr>{rows}</table>"
