"""``apt-model data``: datasets in and out of the store, and the streaming both data and models use.

A dataset is plain data files (.txt .md .text .jsonl .ndjson .json .csv .tsv .parquet) in
``APT_HOME/datasets/<name>/``, moved like a model: a header with every file's size and sha256,
then chunks of about 1 MiB; the gateway checks them all before the dataset appears.

Text files named on this machine (``--corpus``, ``--eval-file``, ``--calibration-file``, ...) are
pushed as a dataset first (``corpus_dataset``) and the operation gets the dataset's name: the
service never reads a path on its own host, and the same file pushed twice is stored once.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import uuid
from pathlib import Path, PurePosixPath

import grpc

from apt_model import errors
from apt_model.cli.common import new_parser, CliError, Ctx, emit_json, human_bytes, print_table, to_dict
from apt_model.gen.apt.gateway.v1 import gateway_pb2 as pb
from apt_model.gen.apt.gateway.v1 import gateway_pb2_grpc
from apt_model.store import sha256_file
from apt_model.transfer import (DATASET_SUFFIXES, FileSpec, check_relative_path, iter_file_chunks, local_file,
                                local_folder_files)

CORPUS_PREFIX = "corpus-"


def _core(ctx: Ctx) -> gateway_pb2_grpc.CoreStub:
    return gateway_pb2_grpc.CoreStub(ctx.channel())


def register(sub, common: argparse.ArgumentParser) -> None:
    d = new_parser(sub, "data", common, "move datasets (plain data files) in and out of the store",
                   ["apt-model data push train.jsonl eval.txt --name corpus", "apt-model data list",
                    "apt-model data info corpus", "apt-model data pull corpus -o ./corpus", "apt-model data rm corpus"])
    d_sub = d.add_subparsers(dest="action", required=True, metavar="ACTION")
    push = new_parser(d_sub, "push", common,
                      "upload local files or folders as a store dataset (sha256 checked); accepted: "
                      ".txt .md .text .jsonl .ndjson .json .csv .tsv .parquet",
                      ["apt-model data push train.jsonl --name corpus",
                       "apt-model data push ./shards --name web --overwrite"])
    push.add_argument("paths", nargs="+", metavar="FILE", help="files, or folders whose files are pushed")
    push.add_argument("--name", required=True, help="store name of the dataset")
    push.add_argument("--overwrite", action="store_true", help="replace an existing dataset of that name")
    push.set_defaults(func=cmd_push)
    ls = new_parser(d_sub, "list", common, "datasets in the store", ["apt-model data list --filter corpus"])
    ls.add_argument("--filter", default="", help="name substring")
    ls.set_defaults(func=cmd_list)
    info = new_parser(d_sub, "info", common, "a dataset's files (size, sha256), lineage and metrics",
                      ["apt-model data info corpus --json"])
    info.add_argument("name")
    info.set_defaults(func=cmd_info)
    pull = new_parser(d_sub, "pull", common, "download a store dataset into a local folder (sha256 checked)",
                      ["apt-model data pull corpus -o ./corpus"])
    pull.add_argument("name")
    pull.add_argument("-o", "--output", default="", help="target folder (default ./NAME)")
    pull.add_argument("--overwrite", action="store_true")
    pull.set_defaults(func=cmd_pull)
    rm = new_parser(d_sub, "rm", common, "remove a store dataset", ["apt-model data rm corpus"])
    rm.add_argument("name")
    rm.set_defaults(func=cmd_rm)


# -- local files to push -------------------------------------------------------------------------

# (header entry, local file) pairs
Sources = list[tuple[FileSpec, Path]]


def _cli_error(exc: errors.AptError) -> CliError:
    return CliError(exc.message, 4 if isinstance(exc, errors.NotFound) else 3)


def folder_files(folder: Path) -> Sources:
    """(header entry, local file) for every file of a local folder; hidden files and apt.json
    are left out, symbolic links that lead out of the folder refused."""
    try:
        return [(f, folder / f.path) for f in local_folder_files(folder)]
    except errors.AptError as exc:
        raise _cli_error(exc) from exc


def data_files(paths: list[str]) -> Sources:
    """(header entry, local file) for each file to push: named files under their own names, the
    files of named folders under their paths inside them. Symbolic links that lead outside
    their folder, files a dataset may not hold and names given twice are refused."""
    out: Sources = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir() and not path.is_symlink():
            out += folder_files(path)
        elif path.is_file() or path.is_symlink():
            try:
                local_file(path, path.parent)
            except errors.AptError as exc:
                raise _cli_error(exc) from exc
            out.append((FileSpec(path.name, path.stat().st_size, sha256_file(path)), path))
        else:
            raise CliError(f"{raw} does not exist on this machine.", 4)
    seen: dict[str, Path] = {}
    for spec, path in out:
        if PurePosixPath(spec.path).suffix.lower() not in DATASET_SUFFIXES:
            raise CliError(f"{path} is not a data file a dataset may hold; use {' '.join(DATASET_SUFFIXES)} "
                           "files (convert others with the data-processors plugin).", 3)
        if spec.path in seen:
            raise CliError(f"{path} and {seen[spec.path]} would both be stored as {spec.path!r}; "
                           "rename one or push them as separate datasets.", 3)
        seen[spec.path] = path
    if not out:
        raise CliError(f"{', '.join(paths)} holds no files to push.", 3)
    return out


def upload_requests(request, name: str, overwrite: bool, sources: Sources):
    """The messages of an upload: the header listing every file, then the files' chunks."""
    yield request(header=pb.UploadHeader(name=name, overwrite=overwrite, files=[
        pb.FileInfo(path=f.path, size=f.size, sha256=f.sha256) for f, _ in sources]))
    for rel, data in iter_file_chunks((f.path, path) for f, path in sources):
        yield request(chunk=pb.FileChunk(path=rel, data=data))


def push_dataset(ctx: Ctx, name: str, sources: Sources, overwrite: bool = False) -> pb.DatasetInfo:
    return _core(ctx).UploadDataset(upload_requests(pb.UploadDatasetRequest, name, overwrite, sources),
                                    timeout=ctx.timeout)


def corpus_dataset(ctx: Ctx, paths: list[str], flag: str) -> str:
    """Push text files from this machine as one store dataset; its name, ``corpus-<12 hex>``.

    The name comes from the content (a file's sha256; for several, the sha256 of their list),
    so pushing the same files again reuses the dataset already there. Several files keep their
    order (the dataset's files are read sorted): ``000-<name>``, ``001-<name>``, ...
    """
    sources = data_files(paths)
    if len(sources) > 1:
        sources = [(FileSpec(f"{i:03d}-{PurePosixPath(f.path).name}", f.size, f.sha256), p)
                   for i, (f, p) in enumerate(sources)]
        key = hashlib.sha256("".join(f"{f.sha256} {_suffix(f.path)}\n" for f, _ in sources).encode()).hexdigest()
    else:
        key = sources[0][0].sha256
    name = CORPUS_PREFIX + key[:12]
    if _same_dataset(ctx, name, sources, flag):
        return name
    if not ctx.as_json:
        size = sum(f.size for f, _ in sources)
        print(f"pushing {', '.join(str(p) for _, p in sources)} ({human_bytes(size)}) as dataset {name}",
              file=sys.stderr)
    try:
        push_dataset(ctx, name, sources)
    except grpc.RpcError as exc:
        # another push of the same files got there first: theirs is as good as ours
        if exc.code() != grpc.StatusCode.ALREADY_EXISTS or not _same_dataset(ctx, name, sources, flag):
            raise
    return name


def _suffix(path: str) -> str:
    return PurePosixPath(path).suffix.lower()


def _same_dataset(ctx: Ctx, name: str, sources: Sources, flag: str) -> bool:
    """True when ``name`` holds these files (same bytes, same kinds); False when it does not exist."""
    try:
        info = _core(ctx).GetDatasetInfo(pb.GetDatasetInfoRequest(name=name), timeout=ctx.timeout or 60)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return False
        raise
    stored = [(f.sha256, _suffix(f.path)) for f in sorted(info.files, key=lambda f: f.path)]
    if stored == [(f.sha256, _suffix(f.path)) for f, _ in sources]:
        return True
    raise CliError(f"The store's dataset {name} holds other files than {flag} names. Push yours under a name "
                   f"of your own with 'apt-model data push FILE... --name NAME' and pass the dataset instead.", 4)


def file_or_dataset(ctx: Ctx, path: str, dataset: str, flag: str, dataset_flag: str) -> tuple[str, str]:
    """(path, dataset) to send for a FILE option that has a store-dataset twin: a file that
    exists here is pushed and named as a dataset; any other path is sent as it is, for the
    service to resolve on its machine (inside the folders its operator allows)."""
    if not path or not os.path.lexists(os.path.expanduser(path)):
        return path, dataset
    if dataset:
        raise CliError(f"Give {flag} or {dataset_flag}, not both.", 2)
    return "", corpus_dataset(ctx, [path], flag)


def files_or_dataset(ctx: Ctx, paths: list[str], dataset: str, flag: str,
                     dataset_flag: str = "--dataset") -> tuple[list[str], str]:
    """``file_or_dataset`` for a repeatable FILE option: the files found here become one dataset."""
    local = [p for p in paths if os.path.lexists(os.path.expanduser(p))]
    if not local:
        return list(paths), dataset
    if dataset:
        raise CliError(f"{flag} files from this machine are sent as a store dataset; give {flag} or "
                       f"{dataset_flag}, not both (or push them into one with 'apt-model data push').", 2)
    return [p for p in paths if p not in local], corpus_dataset(ctx, local, flag)


# -- downloads -------------------------------------------------------------------------------------

def pull_into(stream, target: Path, overwrite: bool) -> tuple[int, int]:
    """Write a download stream into ``target`` atomically (built beside it, then renamed);
    (files, bytes). Every path is checked before anything is written and every file's size and
    sha256 after, so a hostile or broken gateway leaves nothing behind."""
    if target.exists() and not overwrite:
        raise CliError(f"{target} exists; choose another --output or pass --overwrite.", 4)
    tmp = target.with_name(f".{target.name}.pull-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        counts = _receive(stream, tmp)
        if target.exists():
            shutil.rmtree(target)
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts


def _inside(folder: Path, path: str) -> Path:
    """Where a file the gateway names goes in ``folder``; CliError for a path that would leave it."""
    try:
        check_relative_path(path)
    except errors.InvalidArgument as exc:
        raise CliError(f"The gateway sent an unsafe file path {path!r} ({exc.message}); nothing was written.",
                       8) from exc
    target = (folder / path).resolve()
    if folder.resolve() not in target.parents:
        raise CliError(f"The gateway sent a file path outside the target folder: {path!r}; nothing was written.", 8)
    return target


def _receive(stream, folder: Path) -> tuple[int, int]:
    """Write a download stream into ``folder``; every file's path, size and sha256 checked."""
    header, fh, current, digests, sizes, declared, targets = None, None, None, {}, {}, {}, {}
    try:
        for msg in stream:
            if msg.WhichOneof("part") == "header":
                if header is not None:
                    raise CliError("The download sent a second header.", 8)
                header = msg.header
                for f in header.files:  # every path, empty files' too, before a byte is written
                    if f.path in declared:
                        raise CliError(f"The download lists {f.path!r} twice.", 8)
                    declared[f.path], targets[f.path] = f.size, _inside(folder, f.path)
                continue
            if header is None:
                raise CliError("The download did not start with a header.", 8)
            path, data = msg.chunk.path, msg.chunk.data
            if path not in declared:
                raise CliError(f"The download sent bytes for {path!r}, which its header does not list.", 8)
            if path != current:
                if path in digests:
                    raise CliError(f"The download sent {path!r} in two parts that are not in sequence.", 8)
                if fh:
                    fh.close()
                targets[path].parent.mkdir(parents=True, exist_ok=True)
                fh, current, digests[path], sizes[path] = open(targets[path], "wb"), path, hashlib.sha256(), 0
            if sizes[path] + len(data) > declared[path]:
                raise CliError(f"The download sent more bytes for {path!r} than the {declared[path]} it declared.", 8)
            fh.write(data)
            digests[path].update(data)
            sizes[path] += len(data)
    finally:
        if fh:
            fh.close()
    if header is None:
        raise CliError("The download ended before its header.", 8)
    for f in header.files:
        if f.size == 0 and f.path not in digests:  # empty files get no chunk
            targets[f.path].parent.mkdir(parents=True, exist_ok=True)
            targets[f.path].touch()
            digests[f.path], sizes[f.path] = hashlib.sha256(), 0
        if f.path not in digests or sizes[f.path] != f.size or digests[f.path].hexdigest() != f.sha256:
            raise CliError(f"{f.path}: the bytes received do not match the sha256 in the header; "
                           "nothing was written. Retry the pull.", 8)
    return len(header.files), sum(f.size for f in header.files)


# -- commands --------------------------------------------------------------------------------------

def cmd_push(ctx: Ctx) -> None:
    a = ctx.args
    sources = data_files(a.paths)
    info = push_dataset(ctx, a.name, sources, a.overwrite)
    if ctx.as_json:
        emit_json(to_dict(info))
    else:
        print(f"pushed {len(sources)} file(s) as dataset {info.name}: {human_bytes(info.size_bytes)}, sha256 verified")


def cmd_list(ctx: Ctx) -> None:
    resp = _core(ctx).ListDatasets(pb.ListDatasetsRequest(filter=ctx.args.filter), timeout=ctx.timeout or 60)
    if ctx.as_json:
        emit_json(to_dict(resp).get("datasets", []))
        return
    print_table("datasets", ["name", "files", "size", "created", "operation"],
                [[d.name, d.file_count, human_bytes(d.size_bytes), d.created, d.operation] for d in resp.datasets])


def cmd_info(ctx: Ctx) -> None:
    info = _core(ctx).GetDatasetInfo(pb.GetDatasetInfoRequest(name=ctx.args.name), timeout=ctx.timeout or 60)
    if ctx.as_json:
        emit_json(to_dict(info))
        return
    parent = to_dict(info).get("lineage", {}).get("parent") or "-"
    print(f"{info.name}: {len(info.files)} file(s), {human_bytes(info.size_bytes)}, created {info.created}, "
          f"operation={info.operation} parent={parent}")
    if info.metrics:
        print("metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(info.metrics.items())))
    print_table("files", ["path", "size", "sha256"],
                [[f.path, human_bytes(f.size), f.sha256[:16] or "(settling)"] for f in info.files])


def cmd_pull(ctx: Ctx) -> None:
    a = ctx.args
    target = Path(a.output or a.name).resolve()
    files, total = pull_into(_core(ctx).DownloadDataset(pb.DownloadDatasetRequest(name=a.name), timeout=ctx.timeout),
                             target, a.overwrite)
    if ctx.as_json:
        emit_json({"name": a.name, "folder": str(target), "files": files, "bytes": total})
    else:
        print(f"pulled dataset {a.name} into {target}: {files} files, {human_bytes(total)}, sha256 verified")


def cmd_rm(ctx: Ctx) -> None:
    _core(ctx).DeleteDataset(pb.DeleteDatasetRequest(name=ctx.args.name), timeout=ctx.timeout or 60)
    if ctx.as_json:
        emit_json({"removed": ctx.args.name})
    else:
        print(f"removed dataset {ctx.args.name}", file=sys.stderr)
