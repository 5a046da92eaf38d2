"""The command-line side of a large process job (a Kubernetes Indexed Job, or processes by hand):
``python -m apt_data.shard`` (one index's pieces) and ``python -m apt_data.merge`` (the dataset).

Both read the same request (a JSON ``ProcessRequest``, by the proto's field names) and check it
the way the service does: ``ProcessSpec.from_request``, input paths resolved inside
``APT_DATA_ROOTS`` (``PermissionDenied`` outside), a ``dataset`` read from the store. The pieces
are planned from the input alone, so every pod and the merge agree on them; the shard folders go to
``$APT_HOME/exports/<name>-shards/`` (a path no request chooses). The merge refuses shards of
another request or plan and names the missing ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

from google.protobuf import json_format

from apt_model import errors
from apt_model.gen.apt.plugins.data_processors.v1 import data_processors_pb2 as pb
from apt_model.runtime.jobs import JobContext, JobManager
from apt_model.store import Store
from apt_model.trust import PathPolicy

from apt_data.filters import tokenizer_file
from apt_data.ingest import check_file
from apt_data.shard import SUMMARY, Piece, ShardJob, plan, plan_record, run_shard, shard_folder
from apt_data.spec import ProcessSpec

PLAN = "plan.json"
DEFAULT_MAX_FILE_MB = 1024


@dataclasses.dataclass(frozen=True)
class Setup:
    store: Store
    spec: ProcessSpec
    pieces: list[Piece]
    work: Path
    max_file_bytes: int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--request", type=Path, required=True,
                        help="a JSON ProcessRequest: the fields of 'apt-model data-processors process' by their proto "
                             'names, e.g. {"name": "corpus-clean", "dataset": "raw", "dedup": true}')
    parser.add_argument("--home", default=os.environ.get("APT_HOME", ""), help="the store (default: $APT_HOME)")
    parser.add_argument("--shard-mb", type=float, default=32.0,
                        help="jsonl files larger than this are read as several pieces (the same for every pod "
                             "and the merge)")


def setup(args: argparse.Namespace) -> Setup:
    if not args.home:
        raise errors.InvalidArgument("No store: set APT_HOME or pass --home.")
    try:
        request = json_format.Parse(args.request.read_text(encoding="utf-8"), pb.ProcessRequest())
    except (OSError, json_format.ParseError) as exc:
        raise errors.InvalidArgument(f"{args.request} is not a readable JSON ProcessRequest: {exc}") from exc
    from apt_data.service import input_files  # the service's own reading of paths and datasets

    policy = PathPolicy.from_env(args.home, os.environ)
    spec = ProcessSpec.from_request(request)
    spec = dataclasses.replace(spec, paths=policy.resolve_all(spec.paths, "input path"))
    store = Store(args.home)
    max_file_bytes = int(os.environ.get("APT_DATA_MAX_FILE_MB", DEFAULT_MAX_FILE_MB)) << 20
    files = input_files(store, spec)
    for f in files:
        check_file(f, max_file_bytes)
    pieces = plan(files, int(args.shard_mb * (1 << 20)))
    return Setup(store, spec, pieces, policy.export_dir(f"{spec.name}-shards"), max_file_bytes)


def run_index(args: argparse.Namespace) -> None:
    """This pod's pieces: index, index + of, ... into the work folder."""
    index = args.index if args.index is not None else os.environ.get("JOB_COMPLETION_INDEX")
    if index is None or not str(index).isdigit() or not 0 <= int(index) < args.of:
        raise errors.InvalidArgument(f"The shard index must be 0..{args.of - 1} (--index, or JOB_COMPLETION_INDEX "
                                     f"as an Indexed Job sets it); got {index!r}.")
    s = setup(args)
    s.work.mkdir(parents=True, exist_ok=True)
    _write_atomic(s.work / PLAN, plan_record(s.spec, s.pieces))
    tokenizer = str(tokenizer_file(s.store, s.spec.tokenizer_model)) if s.spec.tokenizer_model else ""
    for number in range(int(index), len(s.pieces), args.of):
        started = time.monotonic()
        summary = run_shard(ShardJob(s.spec, s.pieces[number], str(shard_folder(s.work, number)), s.max_file_bytes,
                                     tokenizer))
        print(f"shard {number + 1}/{len(s.pieces)}: {summary['read']} read, {summary['documents']} kept "
              f"({time.monotonic() - started:.1f} s)", flush=True)


def run_merge(args: argparse.Namespace) -> None:
    """Every shard folder, in order, into the dataset (the service's merge_into)."""
    from apt_data.pipeline import OPERATION, merge_into, write_eval_dataset

    s = setup(args)
    recorded = s.work / PLAN
    if not recorded.is_file() or json.loads(recorded.read_text(encoding="utf-8")) != plan_record(s.spec, s.pieces):
        raise errors.FailedPrecondition(
            f"{s.work} holds no shards of this request and input (or of another --shard-mb); run "
            "'python -m apt_data.shard' with the same --request and --shard-mb first.")
    missing = [n for n in range(len(s.pieces)) if not (shard_folder(s.work, n) / SUMMARY).is_file()]
    if missing:
        raise errors.FailedPrecondition(
            f"{len(missing)} of {len(s.pieces)} shards have not finished (numbers {missing[:10]}); wait for the Job "
            "to complete (kubectl wait --for=condition=complete job/...) or rerun the failed indexes.")
    ctx = JobContext(JobManager("data-processors-merge"), "merge")
    started = time.monotonic()
    with s.store.create("datasets", s.spec.name, operation=OPERATION, parent=s.spec.dataset,
                        parameters=s.spec.lineage(), overwrite=s.spec.overwrite,
                        extra={"text_files": ["data.jsonl"]}) as folder:
        folders = (shard_folder(s.work, n) for n in range(len(s.pieces)))
        result, eval_tmp = merge_into(folder, s.spec, folders, len(s.pieces), ctx, started)
        if result["eval_documents"]:
            write_eval_dataset(s.store, s.spec, eval_tmp)
        shutil.rmtree(folder / ".staging")
    if not args.keep_shards:
        shutil.rmtree(s.work)
    print(json.dumps({**result, "warnings": ctx.warnings}, ensure_ascii=False))


def _write_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, ensure_ascii=False, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def run_cli(work) -> int:
    """0, or 2 with the error's status and sentence on stderr."""
    try:
        work()
    except errors.AptError as exc:
        print(f"{exc.code.name}: {exc.message}", file=sys.stderr)
        return 2
    return 0
