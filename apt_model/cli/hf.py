"""``apt-model hf import|dataset``: what the huggingface-integration plugin's generated commands
cannot do alone — a local model folder sent as its absolute path, local data files pushed into
the store first. Export, push and the Trainer are the generated commands
(``apt-model huggingface-integration export-model|push-model|train``)."""

from __future__ import annotations

import argparse
import os

from apt_model.cli.common import new_parser, Ctx, add_job_options, print_table, start_and_watch
from apt_model.cli.data import corpus_dataset
from apt_model.gen.apt.plugins.huggingface_integration.v1 import huggingface_pb2 as pb
from apt_model.gen.apt.plugins.huggingface_integration.v1 import huggingface_pb2_grpc


def _local_or_repo(text: str) -> str:
    """Paths are sent absolute (the service resolves them on its machine); repo ids as given."""
    if text.startswith(("/", "./", "../", "~")) or os.path.exists(text):
        return os.path.abspath(os.path.expanduser(text))
    return text


def register(sub, common: argparse.ArgumentParser) -> None:
    hf = new_parser(sub, "hf", common, "Hugging Face Hub / ModelScope / local import and datasets "
                    "(export, push, train: apt-model huggingface-integration --help)",
                    ["apt-model hf import Qwen/Qwen2.5-0.5B --name qwen", "apt-model hf dataset ./corpus.jsonl --name c",
                     "apt-model huggingface-integration push-model --name mymodel --repo-id me/mymodel --private"],
                    aliases=("huggingface",))
    hs = hf.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = new_parser(hs, "import", common, "import a causal LM from a hub repo or a local HF folder",
                   ["apt-model hf import gpt2 --name gpt2", "apt-model hf import org/model --revision v1.0 --name m",
                    "apt-model hf import ./my-hf-folder --name local",
                    "apt-model hf import qwen/Qwen2.5-0.5B --hub modelscope --name q"])
    p.add_argument("source", type=_local_or_repo, help="repo id 'org/name' or a local folder path")
    p.add_argument("--name", required=True, help="store name of the imported model")
    p.add_argument("--hub", default="", choices=["", "huggingface", "modelscope"], help="default huggingface")
    p.add_argument("--revision", default="", help="branch, tag or commit (default main)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store model")
    add_job_options(p)
    p.set_defaults(func=cmd_import)

    p = new_parser(hs, "dataset", common, "load a hub dataset or local json/jsonl/csv/parquet/text files",
                   ["apt-model hf dataset ./corpus.jsonl --name corpus --tokenizer-from mymodel",
                    "apt-model hf dataset org/dataset --split train --name ds"])
    p.add_argument("source", type=_local_or_repo,
                   help="dataset id, 'dataset:NAME' (a store dataset), or a file/folder on this machine "
                        "(pushed into the store first as dataset corpus-<sha256 prefix>)")
    p.add_argument("--name", required=True, help="store dataset name")
    p.add_argument("--format", default="", choices=["", "json", "jsonl", "csv", "parquet", "text"],
                   help="default: from the file suffixes")
    p.add_argument("--split", default="", help="split to load (default train)")
    p.add_argument("--tokenizer-from", default="", help="store model whose tokenizer counts tokens")
    p.add_argument("--text-field", default="", help="text column (default 'text' or the first string column)")
    p.add_argument("--preview-rows", type=int, default=0, help="rows kept as a preview (default 5)")
    p.add_argument("--revision", default="", help="hub revision (default main)")
    p.add_argument("--hub", default="", choices=["", "huggingface", "modelscope"], help="default huggingface")
    p.add_argument("--overwrite", action="store_true")
    add_job_options(p)
    p.set_defaults(func=cmd_dataset)


def _stub(ctx: Ctx):
    return huggingface_pb2_grpc.HuggingFaceStub(ctx.channel())


def cmd_import(ctx: Ctx) -> None:
    a = ctx.args
    req = pb.ImportModelRequest(source=a.source, name=a.name, hub=a.hub, revision=a.revision, overwrite=a.overwrite)
    start_and_watch(ctx, _stub(ctx).StartImportModel, req, a, render=_render)


def cmd_dataset(ctx: Ctx) -> None:
    a = ctx.args
    source = a.source
    if os.path.exists(source):  # a file or folder here: the service reads it from the store
        source = "dataset:" + corpus_dataset(ctx, [source], "SOURCE")
    req = pb.LoadDatasetRequest(source=source, format=a.format, split=a.split, name=a.name,
                                tokenizer_from=a.tokenizer_from, text_field=a.text_field,
                                preview_rows=a.preview_rows, overwrite=a.overwrite, revision=a.revision, hub=a.hub)
    start_and_watch(ctx, _stub(ctx).StartLoadDataset, req, a, render=_render_dataset)


def _render(result: dict) -> None:
    rows = [[k, f"{v:.4g}" if isinstance(v, float) else v] for k, v in sorted(result.items())
            if not isinstance(v, (dict, list))]
    print_table("result", ["field", "value"], rows)


def _render_dataset(result: dict) -> None:
    _render(result)
    print_table("columns", ["column", "type"], [[k, v] for k, v in result.get("features", {}).items()])
    stats = result.get("token_stats") or {}
    if stats:
        print_table("tokens", ["statistic", "value"], [[k, v] for k, v in stats.items()])
    preview = result.get("preview") or []
    if preview:
        cols = list(preview[0])
        print_table("preview", cols, [[str(r.get(c, ""))[:60] for c in cols] for r in preview])
