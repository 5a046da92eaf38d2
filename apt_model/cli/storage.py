"""``apt-model storage``: backup, restore, upload and list through the cloud-storage plugin."""

from __future__ import annotations

import argparse

from apt_model.cli.common import (new_parser, Ctx, add_job_options, emit_json, human_bytes, print_table,
                                  start_and_watch, to_dict)
from apt_model.gen.apt.plugins.cloud_storage.v1 import cloud_storage_pb2 as pb
from apt_model.gen.apt.plugins.cloud_storage.v1 import cloud_storage_pb2_grpc

MiB = 1 << 20
DESTINATIONS = "s3://bucket/prefix, oss://bucket/prefix, hf://owner/repo[/path], modelscope://owner/repo[/path], file:///path"


def _stub(ctx: Ctx) -> cloud_storage_pb2_grpc.CloudStorageStub:
    return cloud_storage_pb2_grpc.CloudStorageStub(ctx.channel())


def _endpoint_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoint-url", default="", help="S3-compatible (MinIO, Ceph), OSS or hub endpoint")
    p.add_argument("--region", default="", help="S3 or OSS region")


def _transfer_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--part-size-mib", type=int, default=0, help="multipart part size in MiB (5..5120; default 8)")
    p.add_argument("--concurrency", type=int, default=0, help="parts in flight at once (1..64; default 4)")


def register(sub, common: argparse.ArgumentParser) -> None:
    st = new_parser(sub, "storage", common, "back up, restore, upload and list with the cloud-storage plugin",
                    ["apt-model storage backup tiny s3://my-bucket/apt --tag v1",
                     "apt-model storage list s3://my-bucket/apt"])
    st_sub = st.add_subparsers(dest="action", required=True, metavar="ACTION")

    b = new_parser(st_sub, "backup", common, "back up a store model or dataset (resumes an unfinished one)",
                   ["apt-model storage backup tiny s3://my-bucket/apt",
                    "apt-model storage backup tiny s3://bk/apt --endpoint-url http://minio:9000 --tag v1",
                    "apt-model storage backup corpus oss://bk/apt --dataset --region cn-hangzhou",
                    "apt-model storage backup tiny hf://me/backups"])
    b.add_argument("name", help="store model (or dataset with --dataset)")
    b.add_argument("destination", help=DESTINATIONS)
    b.add_argument("--dataset", action="store_true", help="NAME is a dataset")
    b.add_argument("--tag", default="", help="version tag (default: a UTC timestamp, or the unfinished backup)")
    _endpoint_options(b)
    _transfer_options(b)
    add_job_options(b)
    b.set_defaults(func=cmd_backup)

    r = new_parser(st_sub, "restore", common, "restore a backup into the store after checking every sha256",
                   ["apt-model storage restore s3://my-bucket/apt",
                    "apt-model storage restore s3://my-bucket/apt --backup tiny --tag v1 --name tiny-v1"])
    r.add_argument("source", help="the destination URI the backup was written to")
    r.add_argument("--backup", default="", help="the backed-up name (default: the only one at SOURCE)")
    r.add_argument("--tag", default="", help="default: the newest complete backup")
    r.add_argument("--name", default="", help="store name (default: the backed-up name)")
    r.add_argument("--dataset", action="store_true", help="restore a dataset backup")
    r.add_argument("--overwrite", action="store_true", help="replace an existing store entry")
    r.add_argument("--concurrency", type=int, default=0, help="files downloaded at once (default 4)")
    _endpoint_options(r)
    add_job_options(r)
    r.set_defaults(func=cmd_restore)

    u = new_parser(st_sub, "upload", common, "upload files or folders the service can read",
                   ["apt-model storage upload hf://me/tiny models/tiny --message 'first upload'",
                    "apt-model storage upload s3://bucket/exports /data/exports/report.html"])
    u.add_argument("destination", help=DESTINATIONS)
    u.add_argument("paths", nargs="+", help="files or folders; relative paths are inside the store")
    u.add_argument("--message", default="", help="hub commit message")
    _endpoint_options(u)
    _transfer_options(u)
    add_job_options(u)
    u.set_defaults(func=cmd_upload)

    ls = new_parser(st_sub, "list", common, "backups at a destination: names, tags, sizes, dates, complete",
                    ["apt-model storage list s3://my-bucket/apt", "apt-model storage list hf://me/backups --json"])
    ls.add_argument("destination", help=DESTINATIONS)
    ls.add_argument("--name", default="", help="only backups of this name")
    ls.add_argument("--dataset", action="store_true", help="only dataset backups")
    _endpoint_options(ls)
    ls.set_defaults(func=cmd_list)


def cmd_backup(ctx: Ctx) -> None:
    a = ctx.args
    req = pb.BackupRequest(name=a.name, kind="dataset" if a.dataset else "model", destination=a.destination,
                           tag=a.tag, endpoint_url=a.endpoint_url, region=a.region,
                           part_size=a.part_size_mib * MiB, concurrency=a.concurrency)
    start_and_watch(ctx, _stub(ctx).StartBackup, req, a, render=lambda r: print(
        f"backed up {r['name']} to {r['destination']} as {r['tag']}: {r['files']:.0f} files, "
        f"{human_bytes(r['bytes_sent'])} sent, {human_bytes(r['bytes_skipped'])} already there"))


def cmd_restore(ctx: Ctx) -> None:
    a = ctx.args
    req = pb.RestoreRequest(source=a.source, backup_name=a.backup, tag=a.tag, name=a.name,
                            kind="dataset" if a.dataset else "", overwrite=a.overwrite,
                            endpoint_url=a.endpoint_url, region=a.region, concurrency=a.concurrency)
    start_and_watch(ctx, _stub(ctx).StartRestore, req, a, render=lambda r: print(
        f"restored {r['name']} from {r['source']} ({r['tag']}), {r['files']:.0f} files verified"))


def cmd_upload(ctx: Ctx) -> None:
    a = ctx.args
    req = pb.UploadRequest(paths=a.paths, destination=a.destination, endpoint_url=a.endpoint_url,
                           region=a.region, commit_message=a.message, part_size=a.part_size_mib * MiB,
                           concurrency=a.concurrency)
    start_and_watch(ctx, _stub(ctx).StartUpload, req, a, render=lambda r: print(
        "\n".join(f"{u['key']}  {human_bytes(u['size'])}" for u in r["uploaded"])))


def cmd_list(ctx: Ctx) -> None:
    a = ctx.args
    resp = _stub(ctx).ListBackups(pb.ListBackupsRequest(
        destination=a.destination, endpoint_url=a.endpoint_url, region=a.region, name=a.name,
        kind="dataset" if a.dataset else ""), timeout=ctx.timeout or 60)
    if ctx.as_json:
        emit_json(to_dict(resp).get("backups", []))
        return
    print_table(f"backups at {a.destination}", ["name", "kind", "tag", "size", "files", "created", "complete"],
                [[b.name, b.kind, b.tag, human_bytes(b.size_bytes), b.files, b.created or "-",
                  "yes" if b.complete else "no (rerun the backup to finish it)"] for b in resp.backups])
