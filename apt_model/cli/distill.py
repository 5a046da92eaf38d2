"""``apt-model distill``: response, feature and relation distillation (model-distillation plugin)."""

from __future__ import annotations

import argparse

from apt_model.cli.common import new_parser, CliError, Ctx, add_job_options, print_table, start_and_watch
from apt_model.cli.data import files_or_dataset
from apt_model.gen.apt.plugins.model_distillation.v1 import distillation_pb2 as pb
from apt_model.gen.apt.plugins.model_distillation.v1 import distillation_pb2_grpc


def _layer_map(text: str) -> dict[int, int]:
    try:
        return {int(s): int(t) for s, t in (pair.split(":") for pair in text.split(",") if pair)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"--layer-map {text!r}: use STUDENT:TEACHER pairs, e.g. 0:1,1:3") from None


def _weights(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            out[key] = float(value)
        except ValueError:
            raise CliError(f"--loss-weight {item!r}: use NAME=NUMBER, e.g. feature=0.5", 2) from None
        if not sep:
            raise CliError(f"--loss-weight {item!r}: use NAME=NUMBER, e.g. feature=0.5", 2)
    return out


def register(sub, common: argparse.ArgumentParser) -> None:
    p = new_parser(sub, "distill", common, "train a student from a teacher (model-distillation plugin)",
                   ["apt-model distill teacher --student-layers 2 --output student --corpus data.txt",
                    "apt-model distill teacher --student-size tiny --strategy response --strategy feature "
                    "--layer-map 0:1,1:3 --output s2 --dataset corpus",
                    "apt-model distill teacher --student other --strategy relation --relation token --output s3"])
    p.add_argument("teacher", help="store model used as the frozen teacher")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--student", default="", help="a store model as the student")
    src.add_argument("--student-size", default="", help="a fresh apt preset student: tiny, small, base, medium")
    src.add_argument("--student-layers", type=int, default=0, help="derive from the teacher with this many layers")
    p.add_argument("--output", required=True, help="store name of the distilled student")
    p.add_argument("--strategy", action="append", default=[],
                   help="response (default), feature, relation or a registered custom loss; repeatable")
    p.add_argument("--temperature", type=float, default=None, help="softening temperature T > 0 (default 1.0)")
    p.add_argument("--alpha", type=float, default=None, help="KD weight vs hard-label loss in [0, 1] (default 0.5)")
    p.add_argument("--kl", choices=["forward", "reverse"], default="", help="KL direction (default forward)")
    p.add_argument("--top-k", type=int, default=0, help="KL over the teacher's top-k logits only")
    p.add_argument("--layer-map", type=_layer_map, default={}, help="feature: STUDENT:TEACHER block pairs, e.g. 0:1,1:3")
    p.add_argument("--feature-loss", choices=["mse", "cosine"], default="", help="feature loss (default mse)")
    p.add_argument("--relation", choices=["sample", "token"], default="", help="relation kind (default sample)")
    p.add_argument("--loss-weight", action="append", default=[], metavar="NAME=W", help="weight of a loss term")
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--dataset", default="", help="a store dataset")
    data.add_argument("--corpus", action="append", default=[],
                      help="a .txt/.jsonl file, repeatable; files on this machine are pushed as one store dataset "
                           "first (corpus-<sha256 prefix>, reused), other paths are read by the service inside its "
                           "APT_DATA_ROOTS")
    p.add_argument("--seq-len", type=int, default=0, help="tokens per sample (default 128)")
    p.add_argument("--batch-size", type=int, default=0, help="samples per step (default 8)")
    p.add_argument("--steps", type=int, default=0, help="optimiser steps (default 200)")
    p.add_argument("--lr", type=float, default=0.0, help="peak learning rate (default 1e-3)")
    p.add_argument("--warmup", type=int, default=0, help="warm-up steps (default 5%% of steps)")
    p.add_argument("--eval-every", type=int, default=0, help="steps between validation checks (default 50)")
    p.add_argument("--checkpoint-every", type=int, default=0, help="steps between checkpoints (default 100)")
    p.add_argument("--device", default="", help="auto (default), cpu or cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from this output's checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    add_job_options(p)
    p.set_defaults(func=cmd_distill)


def cmd_distill(ctx: Ctx) -> None:
    a = ctx.args
    corpus, dataset = files_or_dataset(ctx, a.corpus, a.dataset, "--corpus")
    request = pb.DistillRequest(
        teacher=a.teacher, student=a.student, student_preset_size=a.student_size, student_layers=a.student_layers,
        output_name=a.output, strategies=a.strategy or ["response"], kl_direction=a.kl, top_k=a.top_k,
        layer_map=a.layer_map, feature_loss=a.feature_loss, relation=a.relation,
        loss_weights=_weights(a.loss_weight), dataset=dataset, corpus_paths=corpus, seq_len=a.seq_len,
        batch_size=a.batch_size, max_steps=a.steps, learning_rate=a.lr, warmup_steps=a.warmup,
        eval_every=a.eval_every, checkpoint_every=a.checkpoint_every, device=a.device, seed=a.seed,
        resume=a.resume, overwrite=a.overwrite,
    )
    if a.temperature is not None:
        request.temperature = a.temperature
    if a.alpha is not None:
        request.alpha = a.alpha
    stub = distillation_pb2_grpc.DistillationStub(ctx.channel())
    start_and_watch(ctx, stub.StartDistill, request, a, render=_render)


def _render(result: dict) -> None:
    flat = {**result, **result.get("custom_losses", {})}  # a registered loss's term beside the others
    rows = [[k, f"{v:.4g}" if isinstance(v, float) else v] for k, v in sorted(flat.items())
            if not isinstance(v, (dict, list))]
    print_table("distillation result", ["field", "value"], rows)
