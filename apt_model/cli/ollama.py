"""``apt-model ollama``: GGUF export, Modelfile and ``ollama create`` (ollama-export plugin)."""

from __future__ import annotations

import argparse

from apt_model.cli.common import new_parser, CliError, Ctx, add_job_options, emit_json, print_table, start_and_watch
from apt_model.gen.apt.plugins.ollama_export.v1 import ollama_export_pb2 as pb
from apt_model.gen.apt.plugins.ollama_export.v1 import ollama_export_pb2_grpc


def _params(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--param {item!r}: use NAME=VALUE, e.g. temperature=0.7", 2)
        out[key] = value
    return out


def register(sub, common: argparse.ArgumentParser) -> None:
    p = new_parser(sub, "ollama", common, "export store models to GGUF and Ollama (ollama-export plugin)",
                   ["apt-model ollama export mymodel --outtype q8_0",
                    "apt-model ollama export mymodel --ollama-url http://ollama:11434 --ollama-model mymodel:q8",
                    "apt-model ollama modelfile mymodel --system 'You are terse.'"])
    ps = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    e = new_parser(ps, "export", common, "convert to GGUF, write a Modelfile, check with llama.cpp, create in Ollama",
                   ["apt-model ollama export mymodel",
                    "apt-model ollama export mymodel --outtype q8_0 --param temperature=0.7 --num-ctx 2048",
                    "apt-model ollama export mymodel --ollama-url http://localhost:11434 --ollama-model me/mine:q8"])
    e.add_argument("name", help="store model (Llama incl. the apt preset, or Qwen2)")
    e.add_argument("--outtype", choices=["f32", "f16", "q8_0"], default="f16",
                   help="type of 2-D weights; norms and biases stay f32 (default f16)")
    e.add_argument("--output-dir", default="", help="folder name under APT_HOME/exports (default NAME-OUTTYPE)")
    e.add_argument("--ollama-url", default="",
                   help="Ollama server the *service* reaches (default its APT_OLLAMA_URL; none: print the command; "
                        "another URL must be on the operator's APT_ALLOWED_ENDPOINTS)")
    e.add_argument("--ollama-model", default="", help="model name in Ollama (default NAME)")
    e.add_argument("--skip-verify", action="store_true", help="skip the llama.cpp logits/tokenization check")
    _modelfile_options(e)
    add_job_options(e)
    e.set_defaults(func=cmd_export)

    m = new_parser(ps, "modelfile", common, "print the Modelfile an export would write (converts nothing)",
                   ["apt-model ollama modelfile mymodel", "apt-model ollama modelfile mymodel --gguf-path ./mine.gguf"])
    m.add_argument("name", help="store model")
    m.add_argument("--gguf-path", default="", help="the FROM line (default ./model.gguf)")
    _modelfile_options(m)
    m.set_defaults(func=cmd_modelfile)


def _modelfile_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--system", default="", help="SYSTEM prompt")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a Modelfile PARAMETER (temperature, top_k, top_p, min_p, repeat_penalty, seed, ...); repeatable")
    p.add_argument("--num-ctx", type=int, default=0, help="context window in Ollama (default the model's)")


def cmd_export(ctx: Ctx) -> None:
    a = ctx.args
    request = pb.ExportRequest(name=a.name, outtype=a.outtype, output_dir=a.output_dir, ollama_url=a.ollama_url,
                               ollama_model=a.ollama_model, skip_verify=a.skip_verify, system=a.system,
                               parameters=_params(a.param), num_ctx=a.num_ctx)
    stub = ollama_export_pb2_grpc.OllamaExportStub(ctx.channel())
    start_and_watch(ctx, stub.StartExport, request, a, render=_render)


def cmd_modelfile(ctx: Ctx) -> None:
    a = ctx.args
    stub = ollama_export_pb2_grpc.OllamaExportStub(ctx.channel())
    mf = stub.CreateModelfile(pb.CreateModelfileRequest(name=a.name, gguf_path=a.gguf_path, system=a.system,
                                                        parameters=_params(a.param), num_ctx=a.num_ctx),
                              timeout=ctx.timeout or 60)
    if ctx.as_json:
        emit_json({"text": mf.text, "chat_format": mf.chat_format, "warnings": list(mf.warnings)})
        return
    print(mf.text, end="")
    for w in mf.warnings:
        print(f"# warning: {w}")


def _render(result: dict) -> None:
    v = result.get("verification", {})
    rows = [["GGUF", result.get("gguf", "")], ["size (bytes)", result.get("size_bytes", "")],
            ["type", f"{result.get('outtype')} ({result.get('tensor_types')})"],
            ["pre-tokenizer", result.get("pre_tokenizer", "")], ["chat format", result.get("chat_format") or "-"]]
    if "skipped" in v:
        rows.append(["llama.cpp check", f"skipped: {v['skipped']}"])
    elif v:
        rows.append(["llama.cpp check", f"top-1 {v['top1_agreement']:.1%}, max |Δ| {v['max_abs_diff']:.3g} over "
                                        f"{v['positions']} positions; tokenization {v['tokenization_texts']}/"
                                        f"{v['tokenization_texts']} identical"])
    if "ollama" in result:
        o = result["ollama"]
        rows.append(["ollama", f"created {o['model']} at {o['url']} ({o['statuses'][-1]})"])
    print_table("ollama export", ["", ""], rows)
    for w in result.get("warnings", []):
        print(f"warning: {w}")
    if "command" in result:
        print(f"\nTo load it into Ollama:\n  {result['command']}")
