"""Aliyun OSS through oss2: its multipart API, and ListParts to resume.

Requests are signed with OSS signature V1 (``oss2.Auth``). CRC64 checks are off because
every write carries a Content-MD5 that OSS verifies, and the restore checks sha256.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import oss2
import requests
from oss2 import exceptions as ox
from oss2.models import PartInfo

from apt_model import errors
from apt_storage.backends.base import ObjectInfo, write_chunks
from apt_storage.backends.multipart import MultipartBackend, RemotePart, md5_b64
from apt_storage.progress import TransferProgress

_AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "SecurityTokenExpired",
               "InvalidSecurityToken"}
_CHUNK = 1 << 20


class OssBackend(MultipartBackend):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        region = self.options.region or self.source.env("OSS_REGION")
        self.endpoint = (self.options.endpoint_url or self.source.env("OSS_ENDPOINT")
                         or (f"https://oss-{region}.aliyuncs.com" if region else ""))
        if not self.endpoint:
            raise errors.InvalidArgument(
                "An oss:// destination needs an endpoint: pass endpoint_url (e.g. "
                "https://oss-cn-hangzhou.aliyuncs.com) or region, or set OSS_ENDPOINT on the service.")
        key_id, secret = self.creds.get("OSS_ACCESS_KEY_ID"), self.creds.get("OSS_ACCESS_KEY_SECRET")
        if not key_id or not secret:
            raise errors.PermissionDenied(
                "No OSS credentials: set OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET in the "
                "service's environment or mount them as secret files.")
        token = self.creds.get("OSS_SESSION_TOKEN")
        auth = oss2.StsAuth(key_id, secret, token) if token else oss2.Auth(key_id, secret)
        self.bucket = oss2.Bucket(auth, self.endpoint, self.dest.container, connect_timeout=10,
                                  enable_crc=False)

    def describe(self) -> str:
        return f"oss://{self.dest.container} at {self.endpoint}"

    # --- errors ---------------------------------------------------------------------
    def _is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, ox.RequestError):  # connection refused, reset, timeout
            return True
        return isinstance(exc, ox.ServerError) and (exc.status >= 500 or exc.status == 429)

    def _map_error(self, exc: BaseException, action: str) -> errors.AptError | None:
        where = self.describe()
        if isinstance(exc, (ox.RequestError, requests.RequestException)):
            return errors.Unavailable(
                f"Cannot {action}: {where} is unreachable. Check the endpoint and the network, "
                "then run the command again; backups resume.")
        if isinstance(exc, ox.ServerError):
            if exc.code == "NoSuchBucket":
                return errors.NotFound(
                    f"Bucket {self.dest.container!r} does not exist at {self.endpoint}; create it or fix the URI.")
            if exc.code in _AUTH_CODES or exc.status == 403:
                return errors.PermissionDenied(
                    f"Cannot {action}: {where} refused the credentials ({exc.code or exc.status}). Check "
                    "OSS_ACCESS_KEY_ID / OSS_ACCESS_KEY_SECRET (values are not shown) and the bucket policy.")
            if exc.status == 404:
                return errors.NotFound(f"Cannot {action}: not found in {where}.")
            if exc.status >= 500 or exc.status == 429:
                return errors.Unavailable(f"Cannot {action}: {where} answered {exc.status}; try again later.")
            return errors.FailedPrecondition(
                self.creds.redact(f"Cannot {action}: {where} answered {exc.status} {exc.code}: {exc.message}"))
        if isinstance(exc, ox.OssError):
            return errors.Unavailable(self.creds.redact(f"Cannot {action} at {where}: {exc}"))
        return None

    # --- Backend --------------------------------------------------------------------
    def check(self) -> None:
        self._call(lambda: self.bucket.list_objects(max_keys=1), f"open bucket {self.dest.container}")

    def list(self, prefix: str) -> list[ObjectInfo]:
        def run() -> list[ObjectInfo]:
            out = []
            for obj in oss2.ObjectIterator(self.bucket, prefix=prefix.rstrip("/") + "/" if prefix else ""):
                when = dt.datetime.fromtimestamp(obj.last_modified, dt.timezone.utc)
                out.append(ObjectInfo(obj.key, int(obj.size), when.isoformat(timespec="seconds")))
            return out
        return self._call(run, f"list bucket {self.dest.container}")

    def read_bytes(self, key: str) -> bytes | None:
        def run() -> bytes | None:
            try:
                return self.bucket.get_object(key).read()
            except ox.NoSuchKey:
                return None
        return self._call(run, f"read {key}")

    def write_bytes(self, key: str, data: bytes) -> None:
        self._call(lambda: self.bucket.put_object(key, data, headers={"Content-MD5": md5_b64(data)[1]}),
                   f"write {key}")

    def download(self, key: str, target: Path, progress: TransferProgress) -> None:
        def run() -> None:
            stream = self.bucket.get_object(key)
            write_chunks(iter(lambda: stream.read(_CHUNK), b""), target, progress)
        self._call(run, f"download {key}")

    # --- multipart primitives ---------------------------------------------------------
    def _head_sha256(self, key: str) -> tuple[int, str] | None:
        try:
            head = self.bucket.head_object(key)
        except ox.NotFound:
            return None
        return int(head.content_length), head.headers.get(f"x-oss-meta-{self.META_SHA256}", "")

    def _put(self, key: str, data: bytes, md5: str, sha256: str) -> None:
        self.bucket.put_object(key, data, headers={"Content-MD5": md5, f"x-oss-meta-{self.META_SHA256}": sha256})

    def _find_upload(self, key: str) -> tuple[str, dict[int, RemotePart]] | None:
        mine = sorted((u for u in oss2.MultipartUploadIterator(self.bucket, prefix=key) if u.key == key),
                      key=lambda u: u.initiation_date)
        if not mine:
            return None
        upload_id = mine[-1].upload_id
        parts = {p.part_number: RemotePart(int(p.size), p.etag.strip('"').lower())
                 for p in oss2.PartIterator(self.bucket, key, upload_id)}
        return upload_id, parts

    def _create_upload(self, key: str, sha256: str) -> str:
        return self.bucket.init_multipart_upload(
            key, headers={f"x-oss-meta-{self.META_SHA256}": sha256}).upload_id

    def _upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> dict:
        etag = self.bucket.upload_part(key, upload_id, number, data,
                                       headers={"Content-MD5": md5_b64(data)[1]}).etag
        return {"number": number, "etag": etag.strip('"')}

    def _existing_part(self, number: int, remote: RemotePart, data: bytes) -> dict:
        # OSS compares ETags case-sensitively and hands them out in upper case
        return {"number": number, "etag": remote.etag.upper()}

    def _complete(self, key: str, upload_id: str, parts: dict[int, dict]) -> None:
        self.bucket.complete_multipart_upload(
            key, upload_id, [PartInfo(parts[n]["number"], parts[n]["etag"]) for n in sorted(parts)])

    def _abort(self, key: str, upload_id: str) -> None:
        self.bucket.abort_multipart_upload(key, upload_id)
