"""``apt-model prune``: magnitude, Taylor, lottery-ticket and structured pruning (model-pruning plugin)."""

from __future__ import annotations

import argparse

from apt_model.cli.common import new_parser, Ctx, add_job_options, print_table, start_and_watch
from apt_model.cli.data import file_or_dataset
from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2 as pb
from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2_grpc


_PUSHED = ("; a file on this machine is pushed as a store dataset first (corpus-<sha256 prefix>, reused), "
           "any other path is read by the service inside its APT_DATA_ROOTS")


def register(sub, common: argparse.ArgumentParser) -> None:
    p = new_parser(sub, "prune", common, "prune a store model into a new one (model-pruning plugin)",
                   ["apt-model prune base --strategy structured --ratio 0.5 --output base-s50 "
                    "--recovery-steps 150 --recovery-file train.jsonl --eval-file eval.txt",
                    "apt-model prune base --strategy structured --ratio 0.5 --hidden-ratio 0.25 --eval-file eval.txt",
                    "apt-model prune base --strategy structured --ratio 0.5 --keep-width --eval-file eval.txt",
                    "apt-model prune base --strategy magnitude --ratio 0.5 --2-4 --eval-file eval.txt",
                    "apt-model prune base --strategy taylor --ratio 0.6 --calibration-file calib.txt",
                    "apt-model prune base --strategy lottery --ratio 0.8 --rounds 4 --round-steps 100 "
                    "--rewind-step 10 --recovery-dataset corpus",
                    "apt-model prune strategies"])
    p.add_argument("name", help="store model to prune (never modified), or 'strategies' to list them")
    p.add_argument("--strategy", default="", help="magnitude, taylor, lottery, structured or a registered importance")
    p.add_argument("--ratio", type=float, default=0.0, help="fraction removed, in (0, 1)")
    p.add_argument("--output", default="", help="store name of the result (default NAME-STRATEGYPERCENT)")
    p.add_argument("--scope", choices=["global", "layer"], default="", help="unstructured ranking (default global)")
    p.add_argument("--2-4", dest="two_four", action="store_true", help="unstructured 2:4 pattern (ratio 0.5)")
    p.add_argument("--importance", default="", help="structured: magnitude (default), taylor or a registered one")
    parts = p.add_mutually_exclusive_group()
    parts.add_argument("--heads-only", action="store_true", help="structured: prune attention head groups only")
    parts.add_argument("--mlp-only", action="store_true", help="structured: prune MLP channels only")
    parts.add_argument("--hidden-only", action="store_true", help="structured: prune the hidden width only")
    parts.add_argument("--keep-width", action="store_true",
                       help="structured: prune head groups and MLP channels but keep hidden_size")
    p.add_argument("--hidden-ratio", type=float, default=0.0,
                   help="structured: share of hidden (residual) channels removed (default: as many as make "
                        "the whole model --ratio smaller in parameters)")
    p.add_argument("--calibration-dataset", default="", help="store dataset for Taylor gradients")
    p.add_argument("--calibration-file", default="", help=f"text file for Taylor gradients{_PUSHED}")
    p.add_argument("--rounds", type=int, default=0, help="lottery rounds (default 3)")
    p.add_argument("--round-ratio", type=float, default=0.0, help="lottery: fraction of survivors removed per round")
    p.add_argument("--round-steps", type=int, default=0, help="lottery: training steps per round (default 50)")
    p.add_argument("--rewind-step", type=int, default=0, help="lottery: step whose weights survivors rewind to (default 5)")
    p.add_argument("--recovery-steps", type=int, default=0, help="fine-tune steps after pruning (default 0)")
    p.add_argument("--recovery-dataset", default="", help="store dataset for recovery / lottery training")
    p.add_argument("--recovery-file", default="", help=f"text file for recovery / lottery training{_PUSHED}")
    p.add_argument("--eval-dataset", default="", help="held-out store dataset for perplexity")
    p.add_argument("--eval-file", default="", help=f"held-out text file for perplexity{_PUSHED}")
    p.add_argument("--lr", type=float, default=0.0, help="learning rate for training (default 3e-4)")
    p.add_argument("--batch-size", type=int, default=0, help="sequences per step (default 8)")
    p.add_argument("--seq-len", type=int, default=0, help="tokens per sequence (default 128)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    add_job_options(p)
    p.set_defaults(func=cmd_prune)


def cmd_prune(ctx: Ctx) -> None:
    a = ctx.args
    stub = pruning_pb2_grpc.PruningStub(ctx.channel())
    if a.name == "strategies" and not a.strategy:
        resp = stub.ListStrategies(pb.ListStrategiesRequest(), timeout=ctx.timeout or 30)
        print_table("pruning", ["strategies", "importances"],
                    [[", ".join(resp.strategies), ", ".join(resp.importances)]])
        return
    calibration_path, calibration_dataset = file_or_dataset(ctx, a.calibration_file, a.calibration_dataset,
                                                            "--calibration-file", "--calibration-dataset")
    recovery_path, recovery_dataset = file_or_dataset(ctx, a.recovery_file, a.recovery_dataset,
                                                      "--recovery-file", "--recovery-dataset")
    eval_path, eval_dataset = file_or_dataset(ctx, a.eval_file, a.eval_dataset, "--eval-file", "--eval-dataset")
    request = pb.PruneRequest(
        name=a.name, output_name=a.output, strategy=a.strategy, ratio=a.ratio, scope=a.scope,
        semi_structured_2_4=a.two_four, importance=a.importance, prune_heads=a.heads_only or a.keep_width,
        prune_mlp=a.mlp_only or a.keep_width, prune_hidden=a.hidden_only, hidden_ratio=a.hidden_ratio,
        calibration_dataset=calibration_dataset, calibration_path=calibration_path,
        lottery_rounds=a.rounds, lottery_round_ratio=a.round_ratio, lottery_steps=a.round_steps,
        rewind_step=a.rewind_step, recovery_steps=a.recovery_steps, recovery_dataset=recovery_dataset,
        recovery_path=recovery_path, eval_dataset=eval_dataset, eval_path=eval_path,
        learning_rate=a.lr, batch_size=a.batch_size, seq_len=a.seq_len, seed=a.seed, overwrite=a.overwrite,
    )
    start_and_watch(ctx, stub.StartPrune, request, a, render=_render)


def _render(r: dict) -> None:
    b, a = r.get("before", {}), r.get("after", {})
    rows = [[k, "-" if b.get(k) is None else b[k], "-" if a.get(k) is None else a[k]]
            for k in ("latency_ms", "perplexity", "size_bytes", "prunable_sparsity")]
    rows.insert(0, ["parameters", b.get("parameters", {}).get("total", ""), a.get("parameters", {}).get("total", "")])
    print_table(f"{r.get('output', '')}: {r.get('strategy', '')} (speedup {r.get('speedup', 0):.2f}x)",
                ["", "before", "after"], rows)
    notes = [r[k] for k in ("note", "perplexity_note") if r.get(k)]
    for line in r.get("structured", {}).get("rounding", []) + notes:
        print(line)
