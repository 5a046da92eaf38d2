"""The core commands: train, info, list, size, test, compare, debug, model push/pull/rm."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from apt_model.cli.common import (new_parser, CliError, Ctx, add_job_options, emit_json, human_bytes, print_table,
                                  start_and_watch, to_dict)
from apt_model.cli.data import file_or_dataset, files_or_dataset, folder_files, pull_into, upload_requests
from apt_model.gen.apt.gateway.v1 import gateway_pb2 as pb
from apt_model.gen.apt.gateway.v1 import gateway_pb2_grpc


def _core(ctx: Ctx) -> gateway_pb2_grpc.CoreStub:
    return gateway_pb2_grpc.CoreStub(ctx.channel())


def _eval_options(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--eval-text", default="", help="held-out text, inline")
    src.add_argument("--eval-file", default="", help="held-out .txt/.jsonl file; one on this machine is pushed "
                     "as a store dataset first (corpus-<sha256 prefix>, reused), any other path is read by the "
                     "gateway inside its APT_DATA_ROOTS")
    src.add_argument("--eval-dataset", default="", help="held-out store dataset")
    p.add_argument("--prompt", action="append", default=[], dest="prompts", help="a generation prompt (repeatable)")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-eval-tokens", type=int, default=16384, help="tokens scored at most")
    add_job_options(p)


def _generation(a) -> pb.GenerationOptions:
    return pb.GenerationOptions(max_new_tokens=a.max_new_tokens, do_sample=a.sample, temperature=a.temperature,
                                top_k=a.top_k, top_p=a.top_p, seed=a.seed)


def register(sub, common: argparse.ArgumentParser) -> None:
    """The core commands, in the order ``--help`` lists them."""
    _register_train(sub, common)
    _register_inspection(sub, common)
    _register_evaluation(sub, common)
    _register_model(sub, common)


def _register_train(sub, common: argparse.ArgumentParser) -> None:
    t = new_parser(sub, "train", common, "train a model from scratch on .txt/.jsonl text (a job)",
                   ["apt-model train demo --corpus demo-train.jsonl --size small --max-steps 600",
                    "apt-model train demo --resume --corpus demo-train.jsonl --size small --max-steps 600",
                    "apt-model train gpt --config gpt2-config.json --corpus book.txt --vocab-size 8000"])
    t.add_argument("name", help="the new store model")
    t.add_argument("--corpus", action="append", default=[],
                   help=".txt/.jsonl file (repeatable); files on this machine are pushed as one store dataset "
                        "first (corpus-<sha256 prefix>, reused when already there), other paths are read by the "
                        "gateway inside its APT_DATA_ROOTS")
    t.add_argument("--dataset", default="", help="a store dataset instead of files")
    t.add_argument("--text-field", default="text", help="jsonl field holding the text")
    t.add_argument("--size", default="tiny", help="apt preset size: tiny, small, base, medium")
    t.add_argument("--config", default="", help="a Hugging Face config.json to train instead of the preset")
    t.add_argument("--vocab-size", type=int, default=4096)
    t.add_argument("--tokenizer-from", default="", help="reuse this store model's tokenizer")
    t.add_argument("--seq-len", type=int, default=128)
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--grad-accum", type=int, default=1)
    t.add_argument("--max-steps", type=int, default=200)
    t.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    t.add_argument("--min-lr-ratio", type=float, default=None)
    t.add_argument("--warmup-steps", type=int, default=None, help="default: 5%% of max steps")
    t.add_argument("--weight-decay", type=float, default=None)
    t.add_argument("--grad-clip", type=float, default=None)
    t.add_argument("--eval-every", type=int, default=50)
    t.add_argument("--eval-fraction", type=float, default=None)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint-every", type=int, default=None)
    t.add_argument("--resume", action="store_true", help="continue the checkpoint of an earlier run")
    t.add_argument("--overwrite", action="store_true")
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    t.add_argument("--threads", type=int, default=0, help="CPU threads (0: the gateway's setting)")
    t.add_argument("--max-minutes", type=float, default=0.0, help="stop and save after this long")
    t.add_argument("--workers", type=int, default=0,
                   help="data-parallel ranks on the gateway's machine (torchrun; default 1); --batch-size is "
                        "the global batch, split evenly over them")
    t.add_argument("--nodes", type=int, default=0, help="machines (default 1; more needs the kubernetes deployer)")
    t.add_argument("--sharding", default="", choices=["ddp", "fsdp"],
                   help="with --workers > 1: ddp (default; every rank a whole copy) or fsdp (FSDP2: each rank "
                        "1/N of the weights, gradients and optimizer state)")
    add_job_options(t)
    t.set_defaults(func=cmd_train)


def _register_inspection(sub, common: argparse.ArgumentParser) -> None:
    """info, list and size: read-only looks at the store."""
    i = new_parser(sub, "info", common, "architecture, config, parameters, files, tokenizer, lineage, metrics",
                   ["apt-model info demo", "apt-model info demo --json", "apt-model info demo --log"])
    i.add_argument("name")
    i.add_argument("--log", action="store_true",
                   help="also summarise the model's training log (training_log.jsonl, one row per step)")
    i.set_defaults(func=cmd_info)

    ls = new_parser(sub, "list", common, "models in the store",
                    ["apt-model list", "apt-model list --filter parent=demo --sort created --desc"])
    ls.add_argument("--filter", default="", help="name substring, parent=NAME or arch=ARCH")
    ls.add_argument("--sort", default="name", choices=["name", "created", "size", "parameters"])
    ls.add_argument("--desc", action="store_true")
    ls.set_defaults(func=cmd_list)

    s = new_parser(sub, "size", common, "parameters by module type; inference and training memory estimates",
                   ["apt-model size demo", "apt-model size demo --batch-size 16 --seq-len 256"])
    s.add_argument("name")
    s.add_argument("--batch-size", type=int, default=0, help="for the training estimate (default 8)")
    s.add_argument("--seq-len", type=int, default=0, help="default: the context, at most 512")
    s.set_defaults(func=cmd_size)


def _register_evaluation(sub, common: argparse.ArgumentParser) -> None:
    """test, compare and debug: commands that load a model and run it."""
    te = new_parser(sub, "test", common, "perplexity on held-out text, generations, prefill/decode tokens/s",
                    ["apt-model test demo --eval-file demo-eval.txt --prompt 'The' --prompt '中国'",
                     "apt-model test demo --prompt 'def ' --sample --temperature 0.8 --top-p 0.9"])
    te.add_argument("name")
    te.add_argument("--stride", type=int, default=0, help="perplexity window stride (default: the window)")
    _eval_options(te)
    te.set_defaults(func=cmd_test)

    c = new_parser(sub, "compare", common, "two or more models on the same text and prompts",
                   ["apt-model compare demo demo-pruned --eval-file demo-eval.txt --prompt 'The'"])
    c.add_argument("names", nargs="+")
    _eval_options(c)
    c.set_defaults(func=cmd_compare)

    d = new_parser(sub, "debug", common, "check files, config, tokenizer, weights, one training step",
                   ["apt-model debug demo", "apt-model debug demo --data demo-train.jsonl"])
    d.add_argument("name")
    d.add_argument("--data", default="",
                   help="a data file to check for readability (a file here is pushed as a store dataset first)")
    d.add_argument("--data-dataset", default="", help="a store dataset to check instead")
    d.set_defaults(func=cmd_debug)


def _register_model(sub, common: argparse.ArgumentParser) -> None:
    """model push/pull/rm: move models between this machine and the store."""
    m = new_parser(sub, "model", common, "move models in and out of the store",
                   ["apt-model model push ./my-hf-model --name mine", "apt-model model pull mine -o ./mine",
                    "apt-model model rm mine"])
    m_sub = m.add_subparsers(dest="action", required=True, metavar="ACTION")
    push = new_parser(m_sub, "push", common, "upload a local Hugging Face folder into the store (sha256 checked; "
                      "symbolic links that lead out of the folder are refused)",
                      ["apt-model model push ./my-hf-model --name mine"])
    push.add_argument("folder")
    push.add_argument("--name", required=True)
    push.add_argument("--overwrite", action="store_true")
    push.set_defaults(func=cmd_push)
    pull = new_parser(m_sub, "pull", common, "download a store model into a local folder (sha256 checked)",
                      ["apt-model model pull mine -o ./mine"])
    pull.add_argument("name")
    pull.add_argument("-o", "--output", default="", help="target folder (default ./NAME)")
    pull.add_argument("--overwrite", action="store_true")
    pull.set_defaults(func=cmd_pull)
    rm = new_parser(m_sub, "rm", common, "remove a store model (refused while a job uses it)",
                    ["apt-model model rm mine"])
    rm.add_argument("name")
    rm.set_defaults(func=cmd_rm)


def cmd_train(ctx: Ctx) -> None:
    a = ctx.args
    config_json = Path(a.config).read_text(encoding="utf-8") if a.config else ""
    corpus, dataset = files_or_dataset(ctx, a.corpus, a.dataset, "--corpus")
    optional = {k: v for k, v in dict(min_lr_ratio=a.min_lr_ratio, warmup_steps=a.warmup_steps,
                                      weight_decay=a.weight_decay, grad_clip=a.grad_clip,
                                      eval_fraction=a.eval_fraction, checkpoint_every=a.checkpoint_every).items()
                if v is not None}
    req = pb.TrainRequest(
        name=a.name, preset="apt", size=a.size, config_json=config_json,
        corpus_paths=corpus, dataset=dataset, text_field=a.text_field,
        vocab_size=a.vocab_size, tokenizer_from=a.tokenizer_from, seq_len=a.seq_len, batch_size=a.batch_size,
        grad_accum=a.grad_accum, max_steps=a.max_steps, learning_rate=a.lr, eval_every=a.eval_every, seed=a.seed,
        resume=a.resume, device=a.device, overwrite=a.overwrite, threads=a.threads, max_minutes=a.max_minutes,
        workers=a.workers, nodes=a.nodes, sharding=a.sharding,
        **optional)
    def render(r: dict) -> None:
        val = (f", validation loss {r['val_loss']:.4f} (perplexity {r['val_perplexity']:.2f})"
               if "val_loss" in r else "")
        print(f"trained {r['model']}: {r['steps']:.0f} steps, train loss {r['train_loss']:.4f}{val}, "
              f"{r['tokens_per_s']:.0f} tokens/s")
        for w in r.get("warnings", []):
            print(f"warning: {w}", file=sys.stderr)

    start_and_watch(ctx, _core(ctx).StartTrain, req, a, render=render)


def cmd_info(ctx: Ctx) -> None:
    info = _core(ctx).GetModelInfo(pb.GetModelInfoRequest(name=ctx.args.name, training_log=ctx.args.log),
                                   timeout=ctx.timeout or 60)
    if ctx.as_json:
        emit_json(to_dict(info))
        return
    d = to_dict(info)
    print(f"{info.name}: {info.architecture} ({info.model_type}), {info.parameters:,} parameters, {info.dtype}, "
          f"{human_bytes(info.size_bytes)} on disk, created {info.created}")
    cfg = d.get("config", {})
    keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
            "max_position_embeddings", "vocab_size", "n_embd", "n_layer", "n_head", "n_positions")
    print("config: " + ", ".join(f"{k}={cfg[k]:g}" if isinstance(cfg[k], float) else f"{k}={cfg[k]}"
                                 for k in keys if k in cfg))
    tok = info.tokenizer
    print(f"tokenizer: {tok.type}, {tok.vocab_size} tokens, special {dict(tok.special_tokens)}, "
          f"chat template: {'yes' if tok.has_chat_template else 'no'}")
    lineage = d.get("lineage", {})
    print(f"lineage: operation={lineage.get('operation', '')} parent={lineage.get('parent') or '-'}")
    if info.metrics:
        print("metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(info.metrics.items())))
    print_table("files", ["path", "size", "sha256"], [[f.path, human_bytes(f.size), f.sha256[:16] or "(settling)"] for f in info.files])
    if ctx.args.log:
        _print_log(info)


def _print_log(info: pb.ModelInfo) -> None:
    if not info.HasField("training_log"):
        print(f"training log: none ({info.name} was not trained here, or before training logs were kept)")
        return
    t = info.training_log
    print(f"training log: {t.steps} steps, loss {t.first_loss:.4f} -> {t.last_loss:.4f} (lowest {t.min_loss:.4f} "
          f"at step {t.min_loss_step}), {t.validation_points} validation points, {t.tokens_per_s:,.0f} tokens/s")
    if t.max_grad_norm_step:
        print(f"gradient norm: largest {t.max_grad_norm:.4g} at step {t.max_grad_norm_step}, last {t.last_grad_norm:.4g}")
    if t.spikes:
        print_table("loss spikes", ["step", "loss", "median of the 20 steps before"],
                    [[s.step, f"{s.loss:.4f}", f"{s.median_before:.4f}"] for s in t.spikes])
    else:
        print("loss spikes: none")


def cmd_list(ctx: Ctx) -> None:
    a = ctx.args
    resp = _core(ctx).ListModels(pb.ListModelsRequest(filter=a.filter, order_by=a.sort, descending=a.desc),
                                 timeout=ctx.timeout or 60)
    if ctx.as_json:
        emit_json(to_dict(resp).get("models", []))
        return
    print_table("models", ["name", "architecture", "parameters", "size", "created", "parent", "operation"],
                [[m.name, m.architecture, f"{m.parameters:,}", human_bytes(m.size_bytes), m.created, m.parent or "-",
                  m.operation] for m in resp.models])


def cmd_size(ctx: Ctx) -> None:
    a = ctx.args
    s = _core(ctx).GetModelSize(pb.GetModelSizeRequest(name=a.name, batch_size=a.batch_size, seq_len=a.seq_len),
                                timeout=ctx.timeout or 60)
    if ctx.as_json:
        emit_json(to_dict(s))
        return
    print(f"parameters: {s.total_parameters:,} total, {s.trainable_parameters:,} trainable; "
          f"{human_bytes(s.disk_bytes)} on disk")
    print_table("parameters by module type", ["module type", "parameters"],
                [[k, f"{v:,}"] for k, v in sorted(s.parameters_by_module_type.items(), key=lambda kv: -kv[1])])
    b = to_dict(s).get("training_breakdown", {})
    print_table("memory estimate", ["use", "bytes"], [
        ["inference fp32 (weights + KV cache)", human_bytes(s.inference_bytes_fp32)],
        ["inference fp16", human_bytes(s.inference_bytes_fp16)],
        ["inference int8", human_bytes(s.inference_bytes_int8)],
        [f"training, AdamW, batch {b.get('batch_size', 0):.0f} x {b.get('seq_len', 0):.0f} tokens",
         human_bytes(s.training_bytes)],
        *[[f"  {k}", human_bytes(v)] for k, v in b.items() if k not in ("batch_size", "seq_len")]])


def _render_test(r: dict) -> None:
    if "perplexity" in r:
        print(f"{r['name']}: perplexity {r['perplexity']:.3f} over {r['tokens_scored']:.0f} tokens")
    print(f"prefill {r['prefill_tokens_per_s']:.0f} tokens/s, decode {r['decode_tokens_per_s']:.0f} tokens/s, "
          f"first token {r['first_token_ms']:.1f} ms, then {r['per_token_ms']:.1f} ms/token")
    for g in r["generations"]:
        print(f"--- {g['prompt']!r}\n{g['prompt']}{g['text']}")


def cmd_test(ctx: Ctx) -> None:
    a = ctx.args
    eval_path, eval_dataset = file_or_dataset(ctx, a.eval_file, a.eval_dataset, "--eval-file", "--eval-dataset")
    req = pb.TestModelRequest(name=a.name, eval_text=a.eval_text, eval_path=eval_path,
                              eval_dataset=eval_dataset, prompts=a.prompts, generation=_generation(a),
                              max_eval_tokens=a.max_eval_tokens, stride=a.stride)
    start_and_watch(ctx, _core(ctx).StartTest, req, a, render=_render_test)


def _render_compare(r: dict) -> None:
    rows = [[m["name"], f"{m['perplexity']:.3f}" if "perplexity" in m else "-", f"{m['parameters']:,.0f}",
             human_bytes(m["size_bytes"]), f"{m['first_token_ms']:.1f}", f"{m['per_token_ms']:.2f}",
             f"{m['prefill_tokens_per_s']:.0f}", f"{m['decode_tokens_per_s']:.0f}"] for m in r["models"]]
    print_table("comparison", ["model", "perplexity", "parameters", "size", "first token ms", "ms/token",
                               "prefill tok/s", "decode tok/s"], rows)
    names = [m["name"] for m in r["models"]]
    print_table("generations", ["prompt", *names],
                [[g["prompt"], *[_one_line(g["outputs"][n]) for n in names]] for g in r["generations"]])


def _one_line(text: str) -> str:
    """Generated text for a table cell: line breaks shown, not drawn."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def cmd_compare(ctx: Ctx) -> None:
    a = ctx.args
    eval_path, eval_dataset = file_or_dataset(ctx, a.eval_file, a.eval_dataset, "--eval-file", "--eval-dataset")
    req = pb.CompareModelsRequest(names=a.names, eval_text=a.eval_text, eval_path=eval_path,
                                  eval_dataset=eval_dataset, prompts=a.prompts, generation=_generation(a),
                                  max_eval_tokens=a.max_eval_tokens)
    start_and_watch(ctx, _core(ctx).StartCompare, req, a, render=_render_compare)


def cmd_debug(ctx: Ctx) -> None:
    a = ctx.args
    data_path, data_dataset = file_or_dataset(ctx, a.data, a.data_dataset, "--data", "--data-dataset")
    report = _core(ctx).DebugModel(pb.DebugModelRequest(name=a.name, data_path=_abs(data_path),
                                                        data_dataset=data_dataset), timeout=ctx.timeout or 300)
    if ctx.as_json:
        emit_json(to_dict(report))
    else:
        print_table(f"debug {report.name}", ["check", "result", "finding", "fix"],
                    [[f.check, f.severity, f.message, f.hint] for f in report.findings])
    if not report.healthy:
        raise CliError(f"{report.name} has problems; see the findings above.", 7)


def _abs(path: str) -> str:
    return str(Path(path).resolve()) if path else ""


def cmd_push(ctx: Ctx) -> None:
    a = ctx.args
    folder = Path(a.folder)
    sources = folder_files(folder)
    info = _core(ctx).UploadModel(upload_requests(pb.UploadModelRequest, a.name, a.overwrite, sources),
                                  timeout=ctx.timeout)
    if ctx.as_json:
        emit_json(to_dict(info))
    else:
        print(f"pushed {folder} as {info.name}: {len(sources)} files, {human_bytes(info.size_bytes)}, "
              f"{info.parameters:,} parameters")


def cmd_pull(ctx: Ctx) -> None:
    a = ctx.args
    target = Path(a.output or a.name).resolve()
    expected, total = pull_into(_core(ctx).DownloadModel(pb.DownloadModelRequest(name=a.name), timeout=ctx.timeout),
                                target, a.overwrite)
    if ctx.as_json:
        emit_json({"name": a.name, "folder": str(target), "files": expected, "bytes": total})
    else:
        print(f"pulled {a.name} into {target}: {expected} files, {human_bytes(total)}, sha256 verified")


def cmd_rm(ctx: Ctx) -> None:
    _core(ctx).DeleteModel(pb.DeleteModelRequest(name=ctx.args.name), timeout=ctx.timeout or 60)
    if not ctx.as_json:
        print(f"removed {ctx.args.name}", file=sys.stderr)
    else:
        emit_json({"removed": ctx.args.name})
