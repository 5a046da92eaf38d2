"""The pruning job: load, measure, prune, recover, measure, prove it reloads, store with a report.

With ``workers`` > 1 the job runs as that many ranks under torchrun
(``apt_model.modeling.distributed``), and with ``nodes`` > 1 as a Kubeflow PyTorchJob of this
plugin's image (``apt_model.runtime.pytorchjob``): every rank prunes alike and trains its share of
each lottery and recovery batch (DDP or FSDP2); rank 0 alone measures and stores.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from apt_model import errors
from apt_model.modeling import distributed, trainlog
from apt_model.modeling.distributed import Ranks
from apt_model.modeling.io import load_model, load_tokenizer, pick_device, read_config, save_model
from apt_model.runtime import pytorchjob
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store

from apt_prune import measure, unstructured
from apt_prune.data import batches, load_text_sets
from apt_prune.importance import load_importance
from apt_prune.reload import verify_reload
from apt_prune.spec import PruneSpec
from apt_prune.structured import apply_structured, plan_structured
from apt_prune.train import train_steps

OPERATION = "prune"
SERVICE_ACCOUNT = "apt-model-pruning"  # its pod's, which may submit PyTorchJobs (plugin.yaml multi_node)
REPORT_FILE = "prune_report.json"
LATENCY_BATCH = 4  # sequences per timed forward pass, each spec.seq_len tokens


def check_plan(store: Store, spec: PruneSpec):
    """The structured plan for the stored model's config (raises InvalidArgument on a bad ratio)."""
    if spec.strategy != "structured":
        return None
    config = read_config(store.model(spec.name).path)
    return plan_structured(config, spec.ratio, spec.prune_heads, spec.prune_mlp, spec.prune_hidden, spec.hidden_ratio)


def _snapshot(model, eval_ids: torch.Tensor, spec: PruneSpec, vocab: int, seq_len: int) -> tuple[dict, int]:
    """The measurement of ``model``, and how many windows its perplexity scored."""
    ppl = measure.perplexity(model, eval_ids) if eval_ids.numel() >= 2 else None
    return {
        "parameters": measure.count_parameters(model),
        "prunable_sparsity": round(measure.prunable_sparsity(model), 6),
        "latency_ms": round(measure.cpu_latency_ms(model, LATENCY_BATCH, seq_len, vocab, spec.seed), 3),
        # None without text: magnitude pruning needs none, and nothing is guessed in its place
        "perplexity": round(ppl.perplexity, 4) if ppl else None,
    }, ppl.windows if ppl else 0


def run_prune(store: Store, spec: PruneSpec, ctx: JobContext, ranks: Ranks | None = None) -> dict:
    """The job; with ``workers`` or ``nodes`` > 1 it runs the ranks (``_launch``) and follows them."""
    if ranks is None and (spec.workers > 1 or spec.nodes > 1):
        return _launch(store, spec, ctx)
    ranks = ranks or Ranks()
    device = training_device(spec.device)
    ranks.init(device)
    torch.manual_seed(spec.seed)
    entry = store.model(spec.name)
    ctx.report(progress=0.01, stage="load", message=f"loading {spec.name}")
    model = load_model(entry.path, device="cpu")
    tok = load_tokenizer(entry.path)
    imp = load_importance(spec.importance)
    plan = check_plan(store, spec)
    texts = load_text_sets(store, spec, tok)
    vocab = model.config.vocab_size
    seq_len = min(spec.seq_len, getattr(model.config, "max_position_embeddings", spec.seq_len))
    log: list[dict] = []  # training_log.jsonl: every lottery and recovery step
    if spec.seq_len > seq_len:
        raise errors.InvalidArgument(f"seq_len {spec.seq_len} exceeds the model's context of {seq_len} tokens.")

    if ranks.main:
        ctx.report(progress=0.05, stage="measure", message="measuring the model before pruning")
        before, eval_windows = _snapshot(model, texts.eval, spec, vocab, seq_len)
        before["size_bytes"] = measure.folder_size(entry.path)
        ctx.report(progress=0.1, stage="prune", message=f"{spec.strategy} pruning, ratio {spec.ratio}",
                   **({"perplexity_before": before["perplexity"]} if before["perplexity"] is not None else {}))
    ranks.barrier()  # the other ranks wait, so rank 0 times the model without their work beside it
    details = _prune(model, spec, plan, imp, texts, ctx, log, ranks, device)
    ctx.check_cancelled()

    recovery_losses = []
    if spec.recovery_steps:
        recovery_losses = train_steps(model, batches(texts.train, spec.batch_size, spec.seed + 1), spec.recovery_steps,
                                      spec.learning_rate, ctx, stage="recover", progress=(0.6, 0.85), log=log,
                                      ranks=ranks, sharding=spec.sharding, device=device)
    if not ranks.main:
        return {}
    unstructured.make_permanent(model)

    ctx.report(progress=0.86, stage="measure", message="measuring the pruned model")
    after, _ = _snapshot(model, texts.eval, spec, vocab, seq_len)
    report = {
        "model": spec.name, "output": spec.output_name, "strategy": spec.strategy, "importance": imp.name,
        "importance_source": imp.source, "ratio_requested": spec.ratio, "scope": spec.scope,
        "semi_structured_2_4": spec.semi_structured_2_4, "before": before, "after": after,
        "sparsity_by_layer": measure.sparsity_by_layer(model), "eval_text": texts.eval_source,
        "eval_blocks": eval_windows, "eval_tokens": texts.eval.numel(),
        "seq_len": seq_len, "latency_batch": LATENCY_BATCH, "torch_threads": torch.get_num_threads(),
        "recovery_steps": spec.recovery_steps,
        "recovery_loss_last": round(recovery_losses[-1], 4) if recovery_losses else None,
        **details, **_outcome(spec, before, after),
    }
    _store_pruned(store, spec, ctx, model, tok, report, log)
    ctx.report(progress=1.0, stage="done", message=_summary(report))
    return report


def _launch(store: Store, spec: PruneSpec, ctx: JobContext) -> dict:
    """The ranks (``apt_prune.prune_rank``, each calling ``run_prune`` with its ``ranks``): ``workers``
    of them under torchrun here, or, with ``nodes`` > 1 (kubernetes deployer, checked at Start),
    ``workers`` in each pod of a Kubeflow PyTorchJob of this plugin's own image, which this service
    submits, follows into the job, and deletes on a cancel."""
    if spec.nodes > 1:
        return pytorchjob.run_spec("apt_prune.prune_rank", OPERATION, spec, OPERATION, spec.output_name,
                                   store.root, ctx, pytorchjob.Cluster.from_env(), SERVICE_ACCOUNT)
    return distributed.launch_spec("apt_prune.prune_rank", OPERATION, store.root, spec, ctx,
                                   f"{OPERATION}-{spec.output_name}")


def training_device(requested: str) -> str:
    """Where lottery and recovery train: "cuda" when asked for (FAILED_PRECONDITION without a GPU),
    else the CPU, which "auto" keeps meaning for pruning (it trained on the CPU before it had a
    ``device``; the report's latency is the CPU's either way)."""
    return pick_device("cuda") if requested == "cuda" else "cpu"


def _prune(model, spec: PruneSpec, plan, imp, texts, ctx: JobContext, log: list[dict], ranks: Ranks,
           device: str) -> dict:
    """Prune ``model`` in place by the spec's strategy; what the report says about how."""
    if spec.strategy == "structured":
        return {"structured": apply_structured(model, plan, imp, texts.calibration, spec.batch_size, ctx, (0.1, 0.3))}
    if spec.strategy == "lottery":
        out = unstructured.lottery(model, batches(texts.train, spec.batch_size, spec.seed), spec, ctx, (0.1, 0.6),
                                   log=log, ranks=ranks, device=device)
        return {"lottery": {"rounds": spec.rounds, "round_ratio": round(spec.round_ratio, 6),
                            "rewind_step": spec.rewind_step, "schedule": out["schedule"]}}
    scores = unstructured.weight_scores(model, imp, texts.calibration, spec.batch_size, ctx)
    unstructured.apply_masks(model, scores, spec.ratio, spec.scope, spec.semi_structured_2_4)
    return {}


def _outcome(spec: PruneSpec, before: dict, after: dict) -> dict:
    """The ratio achieved, the speed-up and the perplexity ratio (or why there is none)."""
    out: dict = {}
    if spec.unstructured:
        out["note"] = unstructured.SPEED_NOTE
        out["ratio_achieved"] = after["prunable_sparsity"]
    else:
        p0, p1 = before["parameters"]["total"], after["parameters"]["total"]
        out["ratio_achieved"] = round(1 - p1 / p0, 6)
    out["speedup"] = round(before["latency_ms"] / after["latency_ms"], 3)
    if before["perplexity"] is not None:
        out["perplexity_ratio"] = round(after["perplexity"] / before["perplexity"], 4)
    else:
        out["perplexity_note"] = NO_TEXT_NOTE
    return out


def _store_pruned(store: Store, spec: PruneSpec, ctx: JobContext, model, tok, report: dict, log: list[dict]) -> None:
    """The pruned model as a store entry (atomically): weights, training log, report, reload check."""
    ctx.report(progress=0.9, stage="save", message=f"saving {spec.output_name} and checking it reloads")
    before, after = report["before"], report["after"]
    metrics = {**({"perplexity": after["perplexity"], "perplexity_before": before["perplexity"]}
                  if before["perplexity"] is not None else {}),
               "parameters": after["parameters"]["total"], "latency_ms": after["latency_ms"],
               "speedup": report["speedup"], "prunable_sparsity": after["prunable_sparsity"]}
    with store.create("models", spec.output_name, operation=OPERATION, parent=spec.name,
                      parameters=spec.lineage(), metrics=metrics, overwrite=spec.overwrite) as tmp:
        save_model(model, tok, tmp)
        if log:  # lottery rounds and recovery, every step
            trainlog.write(tmp, log)
        report["after"]["size_bytes"] = measure.folder_size(tmp)
        report["reload"] = verify_reload(tmp)
        (Path(tmp) / REPORT_FILE).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


NO_TEXT_NOTE = ("Perplexity was not measured: no text was given. Pass eval_path / eval_dataset "
                "('apt-model model-pruning prune … --eval-path FILE') to measure it before and after.")


def _summary(r: dict) -> str:
    b, a = r["before"], r["after"]
    return (f"{r['output']}: params {b['parameters']['total']:,} -> {a['parameters']['total']:,}, "
            f"latency {b['latency_ms']:.1f} -> {a['latency_ms']:.1f} ms ({r['speedup']:.2f}x), "
            + (f"perplexity {b['perplexity']:.2f} -> {a['perplexity']:.2f}" if b["perplexity"] is not None
               else "perplexity not measured (no text given)"))
