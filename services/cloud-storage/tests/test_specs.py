"""cloud-storage's guards one rule at a time: destination URIs, transfer options, tags, the three
requests' specs (every default and every refusal, whole sentences), and the backup manifest's
bytes and its checks. Written from a ``make mutate`` run of storage-spec (docs/mutation.md):
the other tests reach these through backups and a served plugin, where most of a message or a
default can change unseen.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from apt_model import errors
from apt_model.gen.apt.plugins.cloud_storage.v1 import cloud_storage_pb2 as pb
from apt_storage.backends.base import MIN_PART_SIZE, TransferOptions
from apt_storage.layout import FORMAT, Manifest, backup_key, check_relative, timestamp_tag, validate_tag
from apt_storage.specs import MAX_CONCURRENCY, MAX_PART_SIZE, BackupSpec, RestoreSpec, UploadSpec, parse_kind, transfer_options
from apt_storage.uri import Destination, parse, supported

SUPPORTED = ("s3://bucket/prefix, oss://bucket/prefix, hf://owner/repo[/path], modelscope://owner/repo[/path], "
             "gdrive://folder-id[/path], file:///absolute/path")


def _refused(call, *args, **kwargs) -> str:
    with pytest.raises(errors.InvalidArgument) as caught:
        call(*args, **kwargs)
    return str(caught.value)


# -- URIs -------------------------------------------------------------------------------------

def test_each_scheme_parses_into_its_parts_and_prints_back():
    cases = {
        "s3://bucket/a//b/": ("s3", "bucket", "a/b", "s3://bucket/a/b"),
        "S3://bucket": ("s3", "bucket", "", "s3://bucket"),
        "oss://b.c-d/x": ("oss", "b.c-d", "x", "oss://b.c-d/x"),
        "hf://Owner/Repo.v1/sub/dir": ("hf", "Owner/Repo.v1", "sub/dir", "hf://Owner/Repo.v1/sub/dir"),
        "modelscope://org/model": ("modelscope", "org/model", "", "modelscope://org/model"),
        "gdrive://1AbC_d-EF/backups": ("gdrive", "1AbC_d-EF", "backups", "gdrive://1AbC_d-EF/backups"),
        "gdrive://root": ("gdrive", "root", "", "gdrive://root"),
        "file:///srv/x//y/": ("file", "", "/srv/x/y", "file:///srv/x/y"),
        "file://localhost/srv": ("file", "", "/srv", "file:///srv"),
    }
    for uri, (scheme, container, prefix, text) in cases.items():
        dest = parse(uri)
        assert (dest.scheme, dest.container, dest.prefix, str(dest)) == (scheme, container, prefix, text), uri
    assert supported() == SUPPORTED
    assert parse("s3://bucket/p/").key("models", "/m/", "", "t") == "p/models/m/t"
    assert Destination("s3", "b", "").key("x") == "x"
    assert parse("s3://bucket/p").key("/", "X", "Xa/", "bX") == "p/X/Xa/bX"  # only '/' is stripped, empty parts dropped
    assert backup_key(parse("s3://bucket/p"), "models", "m") == "p/models/m"
    assert backup_key(parse("s3://bucket/p"), "models", "m", "t1", "files", "a") == "p/models/m/t1/files/a"


def test_each_bad_uri_gets_its_whole_sentence():
    assert _refused(parse, "") == f"Destination '' is not a URI; use one of: {SUPPORTED}."
    assert _refused(parse, "/a/path") == f"Destination '/a/path' is not a URI; use one of: {SUPPORTED}."
    assert _refused(parse, "ftp://h/x") == f"Unsupported scheme 'ftp' in 'ftp://h/x'; supported: {SUPPORTED}."
    tail = ("queries, fragments and credentials do not belong in a destination URI; pass endpoints as "
            "endpoint_url and credentials through the environment.")
    for uri in ("s3://bucket/x?a=1", "s3://bucket/x#f", "s3://k:s@bucket/x"):
        assert _refused(parse, uri) == f"{uri!r}: {tail}"
    assert _refused(parse, "file://host/x") == "'file://host/x': use file:///absolute/path (three slashes)."
    assert _refused(parse, "file://localhost") == "'file://localhost': a file destination needs an absolute path."
    for bucket in ("ab", "Bad_Bucket", "-bucket", "bucket-", "b" * 64):
        uri = f"oss://{bucket}/x"
        assert _refused(parse, uri) == (f"{uri!r}: {bucket!r} is not a valid bucket name (3-63 characters of a-z, "
                                        "0-9, '.', '-').")
    assert parse(f"s3://{'b' * 63}").container == "b" * 63 and parse("s3://abc").container == "abc"
    for folder in ("abc", "a/b", "x" * 201, "a.b"):
        uri = f"gdrive://{folder}/x"
        netloc = folder.split("/")[0]
        assert _refused(parse, uri) == (f"{uri!r}: {netloc!r} is not a Drive folder id (the last part of the folder's "
                                        "URL, letters, digits, '-' and '_').")
    assert parse(f"gdrive://{'x' * 200}").container == "x" * 200 and parse("gdrive://abcd").container == "abcd"
    for uri in ("hf://owner", "hf://owner/", "hf://-owner/repo", "hf://owner/.repo", f"modelscope://o/{'r' * 97}"):
        scheme = uri.split(":")[0]
        form = {"hf": "hf://owner/repo[/path]", "modelscope": "modelscope://owner/repo[/path]"}[scheme]
        assert _refused(parse, uri) == f"{uri!r}: expected {form} with a valid owner and repository name."
    assert parse(f"hf://o/{'r' * 96}").container == f"o/{'r' * 96}"
    for uri in ("s3://bucket/../etc", "file:///srv/./x", "hf://o/r/a/../b", "gdrive://abcd/.."):
        assert _refused(parse, uri) == f"{uri!r}: '.' and '..' are not allowed in a destination path."


# -- transfer options, kinds, tags ----------------------------------------------------------------

def test_transfer_options_take_their_edges_and_refuse_just_past_them():
    defaults = TransferOptions()
    assert transfer_options() == TransferOptions(part_size=defaults.part_size, concurrency=defaults.concurrency)
    got = transfer_options("https://s3.example", "cn-hangzhou", MIN_PART_SIZE, 1, "msg")
    assert (got.endpoint_url, got.region, got.part_size, got.concurrency, got.commit_message) == (
        "https://s3.example", "cn-hangzhou", MIN_PART_SIZE, 1, "msg")
    assert transfer_options("http://minio:9000", part_size=MAX_PART_SIZE, concurrency=MAX_CONCURRENCY).part_size == MAX_PART_SIZE
    assert transfer_options(concurrency=MAX_CONCURRENCY).concurrency == 64
    assert transfer_options(region="a").region == "a" and transfer_options(region="a" + "b" * 62).region
    assert _refused(transfer_options, endpoint_url="ftp://x") == "endpoint_url 'ftp://x' must start with http:// or https://."
    for region in ("evil.example/x?", "US-EAST-1", "-a", "a" * 64):
        assert _refused(transfer_options, region=region) == (
            f"region {region!r} is not a region name (e.g. cn-hangzhou, us-east-1: lowercase letters, digits and '-').")
    for size in (MIN_PART_SIZE - 1, MAX_PART_SIZE + 1):
        assert _refused(transfer_options, part_size=size) == (
            f"part_size {size} is out of range: use {MIN_PART_SIZE} (5 MiB) to {MAX_PART_SIZE} (5 GiB).")
    for n in (-1, MAX_CONCURRENCY + 1):
        assert _refused(transfer_options, concurrency=n) == f"concurrency {n} is out of range: use 1 to 64."
    for kwargs, field in ((dict(endpoint_url="x"), "endpoint_url"), (dict(region="A"), "region")):
        with pytest.raises(errors.InvalidArgument) as caught:
            transfer_options(**kwargs)
        assert [v[0] for v in caught.value.violations] == [field]  # the field a form marks


def test_kinds_and_tags():
    assert (parse_kind(""), parse_kind("MODEL"), parse_kind("dataset"), parse_kind("", default="dataset")) == (
        "models", "models", "datasets", "datasets")
    assert _refused(parse_kind, "weights") == "kind 'weights' is not one of: model, dataset."
    for tag in ("a", "A.b_c-1", "x" * 64):
        assert validate_tag(tag) == tag
    for tag in ("", "-a", ".a", "a/b", "x" * 65, "a\n"):  # a trailing newline too: the rule is the whole tag
        assert _refused(validate_tag, tag) == (f"Invalid tag {tag!r}: use 1-64 characters of A-Z, a-z, 0-9, '.', '_' "
                                               "or '-', starting with a letter or digit.")
    assert timestamp_tag(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)) == "20260102T030405Z"


def test_a_timestamp_tag_is_utc_whatever_the_machines_zone(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Asia/Shanghai")  # UTC+8, no summer time
    time.tzset()
    try:
        before = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        now = timestamp_tag()
        after = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    finally:
        monkeypatch.undo()
        time.tzset()
    assert before <= now <= after


# -- the three requests -------------------------------------------------------------------------

def test_a_backup_request_becomes_its_spec_with_every_default():
    spec = BackupSpec.from_request(pb.BackupRequest(name="m", destination="s3://bucket/p"))
    assert spec == BackupSpec(name="m", kind="models", destination=parse("s3://bucket/p"), tag="",
                              options=transfer_options())
    full = BackupSpec.from_request(pb.BackupRequest(
        name="d", kind="dataset", destination="oss://bucket", tag="t1", endpoint_url="https://oss.example",
        region="cn-hangzhou", part_size=MIN_PART_SIZE, concurrency=2))
    assert (full.kind, full.tag, full.options.endpoint_url, full.options.region, full.options.part_size,
            full.options.concurrency) == ("datasets", "t1", "https://oss.example", "cn-hangzhou", MIN_PART_SIZE, 2)
    assert _refused(BackupSpec.from_request, pb.BackupRequest(name="Bad", destination="s3://bucket")).startswith(
        "Invalid model name 'Bad'")
    assert _refused(BackupSpec.from_request, pb.BackupRequest(name="Bad", kind="dataset",
                                                              destination="s3://bucket")).startswith(
        "Invalid dataset name 'Bad'")
    assert _refused(BackupSpec.from_request, pb.BackupRequest(name="m", destination="s3://bucket", tag="-x")).startswith(
        "Invalid tag '-x'")
    assert _refused(BackupSpec.from_request, pb.BackupRequest(name="m", destination="s3://bucket",
                                                              concurrency=65)).startswith("concurrency 65")
    assert _refused(BackupSpec.from_request, pb.BackupRequest(name="m", destination="nowhere")).startswith(
        "Destination 'nowhere' is not a URI")


def test_a_restore_request_becomes_its_spec_with_every_default():
    spec = RestoreSpec.from_request(pb.RestoreRequest(source="s3://bucket/p"))
    assert spec == RestoreSpec(source=parse("s3://bucket/p"), backup_name="", tag="", name="", kind="",
                               overwrite=False, options=transfer_options())
    full = RestoreSpec.from_request(pb.RestoreRequest(
        source="hf://o/r", backup_name="orig", tag="t1", name="copy", kind="dataset", overwrite=True,
        endpoint_url="http://hub:8080", region="us-east-1", concurrency=3))
    assert full == RestoreSpec(source=parse("hf://o/r"), backup_name="orig", tag="t1", name="copy", kind="datasets",
                               overwrite=True, options=transfer_options("http://hub:8080", "us-east-1",
                                                                        concurrency=3))
    for request, start in (
            (pb.RestoreRequest(source="s3://bucket", backup_name="Bad"), "Invalid backup name 'Bad'"),
            (pb.RestoreRequest(source="s3://bucket", name="Bad"), "Invalid model name 'Bad'"),
            (pb.RestoreRequest(source="s3://bucket", tag="/t"), "Invalid tag '/t'"),
            (pb.RestoreRequest(source="s3://bucket", kind="weights"), "kind 'weights' is not one of"),
            (pb.RestoreRequest(source="s3://bucket", region="A"), "region 'A' is not a region name"),
            (pb.RestoreRequest(source="s3://bucket", concurrency=99), "concurrency 99 is out of range"),
            (pb.RestoreRequest(source="s3://bucket", endpoint_url="minio:9000"), "endpoint_url 'minio:9000'"),
            (pb.RestoreRequest(source="x"), "Destination 'x' is not a URI")):
        assert _refused(RestoreSpec.from_request, request).startswith(start), request


def test_an_upload_request_becomes_its_spec_with_every_default():
    spec = UploadSpec.from_request(pb.UploadRequest(paths=["/data/a", "/data/b"], destination="s3://bucket/up"))
    assert spec == UploadSpec(paths=("/data/a", "/data/b"), destination=parse("s3://bucket/up"),
                              options=transfer_options())
    full = UploadSpec.from_request(pb.UploadRequest(
        paths=["/x"], destination="hf://o/r", endpoint_url="https://hub", region="eu-1", part_size=MIN_PART_SIZE,
        concurrency=5, commit_message="add x"))
    assert full.options == transfer_options("https://hub", "eu-1", MIN_PART_SIZE, 5, "add x")
    assert _refused(UploadSpec.from_request, pb.UploadRequest(destination="s3://bucket")) == (
        "Give at least one file or folder to upload.")
    assert _refused(UploadSpec.from_request, pb.UploadRequest(paths=["/x"], destination="s3://bucket",
                                                              part_size=1)).startswith("part_size 1 is out of range")


# -- the manifest --------------------------------------------------------------------------------

def _manifest() -> Manifest:
    return Manifest(name="m", kind="models", tag="t1", created="2026-01-02T03:04:05+00:00",
                    files={"b.bin": {"sha256": "bb", "size": 2}, "a/c.json": {"sha256": "cc", "size": 10}},
                    meta={"name": "m", "modèle": "é"})


def test_a_manifest_is_written_as_sorted_readable_json_and_read_back_whole():
    manifest = _manifest()
    data = manifest.to_json()
    doc = {"format": FORMAT, "name": "m", "kind": "models", "tag": "t1", "created": "2026-01-02T03:04:05+00:00",
           "size_bytes": 12, "files": manifest.files, "meta": manifest.meta}
    assert data == json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8")
    assert FORMAT == "apt-backup/1" and manifest.size_bytes == 12
    assert Manifest.from_json(data, "s3://b/m/t1") == manifest
    bare = json.loads(data)
    del bare["meta"]
    assert Manifest.from_json(json.dumps(bare).encode(), "w").meta == {}
    bare["files"] = {"x": {"sha256": 5, "size": "7"}}  # coerced to the record's types
    assert Manifest.from_json(json.dumps(bare).encode(), "w").files == {"x": {"sha256": "5", "size": 7}}


@pytest.mark.parametrize("change, reason", [
    (lambda d: d.update(format="apt-backup/2"), "format 'apt-backup/2', expected 'apt-backup/1'"),
    (lambda d: d.pop("format"), "format None, expected 'apt-backup/1'"),
    (lambda d: d.pop("files"), "'files'"),
    (lambda d: d.pop("name"), "'name'"),
    (lambda d: d.update(files={"a": {"size": 1}}), "'sha256'"),
    (lambda d: d.update(files={"a": {"sha256": "x", "size": "big"}}), "invalid literal for int() with base 10: 'big'"),
    (lambda d: d.update(files=[]), "'list' object has no attribute 'items'"),
])
def test_a_damaged_manifest_is_data_loss_saying_what_and_where(change, reason):
    doc = json.loads(_manifest().to_json())
    change(doc)
    with pytest.raises(errors.DataLoss) as caught:
        Manifest.from_json(json.dumps(doc).encode(), "s3://b/models/m/t1/manifest.json")
    assert str(caught.value) == (f"The backup record s3://b/models/m/t1/manifest.json is damaged ({reason}); "
                                 "restore another tag or back up again.")
    with pytest.raises(errors.DataLoss, match=r"is damaged \(Expecting value"):
        Manifest.from_json(b"not json", "w")


@pytest.mark.parametrize("rel", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/.", "apt.json"])
def test_a_manifest_path_that_leaves_the_entry_is_refused(rel):
    with pytest.raises(errors.DataLoss) as caught:
        check_relative(rel, "where")
    assert str(caught.value) == f"The backup record where lists an unsafe path {rel!r}; refusing it."
    doc = json.loads(_manifest().to_json())
    doc["files"] = {rel: {"sha256": "x", "size": 1}}
    with pytest.raises(errors.DataLoss) as caught:
        Manifest.from_json(json.dumps(doc).encode(), "where")
    assert str(caught.value) == f"The backup record where lists an unsafe path {rel!r}; refusing it."


def test_safe_manifest_paths_pass():
    for rel in ("a", "a/b.json", "sub/apt.json", ".hidden", "a..b"):
        assert check_relative(rel, "w") == rel
