"""Replay: rebuild the batch of one step of a core ``train`` run and rank its documents by loss.

Core train draws the batch of optimiser step ``s`` (0-based) as
``lm.random_windows(train_ids, batch_size, seq_len, seed, s * grad_accum + micro)`` from the
token stream of its corpus (``lm.tokenize_documents``, the last ``eval_fraction`` held out): a
function of (seed, step) only. The model's lineage records every one of those settings, so the
windows behind a logged spike are rebuilt exactly, scored by the stored (final) model, and each
window traced back to the documents it covers ("save the bad batch", levanter#391).

The corpus must be the one the run read: a store dataset is checked against the sha256 table
recorded when it was stored, and replay is refused when a file changed. A corpus given as host
paths has no hash in core train's lineage; the report says it could not be verified.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Callable

import torch

from apt_model import errors
from apt_model.corpus import load_corpus
from apt_model.modeling import lm, trainlog
from apt_model.modeling.heldout import split_tokens
from apt_model.modeling.io import load_model, load_tokenizer
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store

from apt_debug.probe import dump_json, finite_only, write_report

OPERATION = "replay"
PREVIEW_CHARS = 160
LINEAGE_KEYS = ("seed", "batch_size", "seq_len", "grad_accum", "eval_fraction")


@dataclass(frozen=True)
class ReplaySpec:
    model: str
    step: int            # the training log's step (1-based)
    output_name: str
    top: int = 10
    device: str = "cpu"
    overwrite: bool = False


def training_settings(store: Store, model: str) -> dict[str, Any]:
    """The lineage of a core-train model, refused when it is not one."""
    lineage = store.model(model).meta.get("lineage", {})
    params = lineage.get("parameters", {})
    missing = [k for k in LINEAGE_KEYS if k not in params]
    if lineage.get("operation") != "train" or missing:
        raise errors.FailedPrecondition(
            f"Model {model!r} was not made by core 'train' (operation {lineage.get('operation')!r}"
            + (f", lineage lacks {', '.join(missing)}" if missing else "")
            + "): its batches cannot be rebuilt from (seed, step).")
    return params


def check_step(store: Store, model: str, step: int) -> None:
    """A step the model's training log holds."""
    steps = len(trainlog.read(store.model(model).path))
    if not 1 <= step <= steps:
        raise errors.InvalidArgument(f"Step {step} is outside the {steps} steps of {model!r}'s training log.")


def check_corpus(store: Store, params: dict[str, Any], resolve: Callable[[str], str]) -> tuple[list[str], list[str]]:
    """The corpus paths (resolved for this caller) and warnings; FailedPrecondition when a
    store dataset's files no longer match their recorded sha256."""
    warnings = []
    if params.get("dataset"):
        problems = store.verify("datasets", params["dataset"])
        if problems:
            raise errors.FailedPrecondition(
                f"Dataset {params['dataset']!r} changed since it was stored ({'; '.join(problems[:3])}): the "
                "batch it would rebuild is not the one the run trained on. Replay refused.")
    paths = [resolve(p) for p in params.get("corpus_paths", [])]
    if paths:
        warnings.append("The corpus files given as paths could not be verified: core train records no sha256 "
                        "for them; if they changed since training, the rebuilt batch differs.")
    return paths, warnings


def _micro_batch(train_ids: torch.Tensor, batch_size: int, seq_len: int, seed: int, index: int
                 ) -> tuple[torch.Tensor, list[int]]:
    """lm.random_windows's batch and the token offsets it drew. The offsets come from the same
    generator draw; the batch is compared with lm.random_windows's own, so replay refuses
    rather than mislabel windows should that function ever draw differently."""
    batch = lm.random_windows(train_ids, batch_size, seq_len, seed, index)
    gen = torch.Generator().manual_seed(seed * 1_000_003 + index)
    offsets = torch.randint(0, train_ids.numel() - seq_len, (batch_size,), generator=gen).tolist()
    if not torch.equal(batch, torch.stack([train_ids[o:o + seq_len + 1] for o in offsets])):
        raise errors.FailedPrecondition(
            "The training batch draw (apt_model.modeling.lm.random_windows) no longer matches replay's; "
            "replay refused rather than mislabel the windows.")
    return batch, offsets


def rebuild(store: Store, params: dict[str, Any], paths: list[str], tokenizer, step: int
            ) -> tuple[list[tuple[torch.Tensor, list[int]]], list[str], list[int]]:
    """The micro-batches of log step ``step`` with their token offsets, the documents, and each
    document's first token in the stream."""
    documents = load_corpus(paths, store, params.get("dataset", ""), params.get("text_field", "text")).documents
    ids = lm.tokenize_documents(tokenizer, documents)
    seq_len = int(params["seq_len"])
    train_ids, _ = split_tokens(ids, float(params["eval_fraction"]), seq_len)  # core train's own split
    grad_accum = int(params["grad_accum"])
    batches = [_micro_batch(train_ids, int(params["batch_size"]), seq_len, int(params["seed"]),
                            (step - 1) * grad_accum + micro) for micro in range(grad_accum)]
    starts, pos = [], 0
    for count in (len(t) + 1 for t in tokenizer(documents, add_special_tokens=False).input_ids):
        starts.append(pos)
        pos += count
    if pos != ids.numel():
        raise errors.FailedPrecondition("The documents' token counts do not add up to the training stream; "
                                        "replay refused rather than mislabel the windows.")
    return batches, documents, starts


@torch.no_grad()
def window_losses(model, batch: torch.Tensor, device: str) -> list[float]:
    """Mean next-token loss of each (T + 1)-token window."""
    batch = batch.to(device)
    logits = model(input_ids=batch[:, :-1]).logits.float()  # (B, T, V)
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="none")  # (B, T)
    return nll.mean(1).tolist()


def run_replay(store: Store, spec: ReplaySpec, params: dict[str, Any], paths: list[str], warnings: list[str],
               ctx: JobContext) -> dict[str, Any]:
    entry = store.model(spec.model)
    ctx.report(progress=0.0, stage="rebuild", message=f"rebuilding the batch of step {spec.step}")
    model, tokenizer = load_model(entry.path, spec.device), load_tokenizer(entry.path)
    batches, documents, starts = rebuild(store, params, paths, tokenizer, spec.step)
    seq_len = int(params["seq_len"])
    windows, by_document = [], {}
    for micro, (batch, offsets) in enumerate(batches):
        ctx.check_cancelled()
        for row, (loss, start) in enumerate(zip(window_losses(model, batch, spec.device), offsets)):
            covered = documents_in(starts, start, start + seq_len + 1)
            windows.append({"micro_batch": micro, "row": row, "start_token": start, "loss": loss,
                            "documents": covered})
            for doc in covered:
                by_document[doc] = max(by_document.get(doc, float("-inf")), loss)
    ranked = sorted(by_document.items(), key=lambda kv: kv[1], reverse=True)
    report = {"model": spec.model, "output": spec.output_name, "step": spec.step, "micro_batches": len(batches),
              "windows": windows, "warnings": warnings,
              "documents": [{"index": d, "loss": loss, "preview": documents[d][:PREVIEW_CHARS]}
                            for d, loss in ranked[: spec.top]]}
    write_report(store, spec.output_name, operation=OPERATION, parent=spec.model, overwrite=spec.overwrite,
                 parameters={"step": spec.step}, files=lambda folder: dump_json(folder / "replay.json", report))
    return finite_only(report)


def documents_in(starts: list[int], begin: int, end: int) -> list[int]:
    """Indexes of the documents overlapping tokens [begin, end) of the stream."""
    first = bisect.bisect_right(starts, begin) - 1
    last = bisect.bisect_left(starts, end) - 1
    return list(range(max(first, 0), last + 1))
