"""LocalOssApiServer: a local server implementing the subset of the Aliyun OSS HTTP API that the
cloud-storage plugin's oss2 calls use — path-style buckets, signature V1 (``OSS key:sig``),
ListObjects, Put/Get/Head/DeleteObject with ``x-oss-meta-*``, and multipart uploads
(Initiate, UploadPart, ListParts, ListMultipartUploads, Complete, Abort). OSS-style XML bodies
(no S3 namespace), ``ETag`` and ``x-oss-request-id`` headers, OSS error codes.

It exists because the real OSS cannot be reached from the test machines; it is not a mock
of our code: the real oss2 client talks HTTP to it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

from apt_model.testing.http_server import LocalServer, QuietHandler

_SUBRESOURCES = {"acl", "uploadId", "uploads", "partNumber", "location", "bucketInfo", "delete",
                 "objectMeta", "continuation-token", "security-token"}


@dataclass
class _Object:
    data: bytes
    etag: str
    meta: dict[str, str]
    content_type: str
    modified: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))


@dataclass
class _Upload:
    key: str
    meta: dict[str, str]
    initiated: dt.datetime
    parts: dict[int, _Object] = field(default_factory=dict)


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


class _OssHandler(QuietHandler):
    def _error(self, status: int, code: str, message: str) -> None:
        rid = uuid.uuid4().hex[:24].upper()
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>"
                f"<Message>{escape(message)}</Message><RequestId>{rid}</RequestId>"
                f"<HostId>127.0.0.1</HostId></Error>").encode()
        headers = {"x-oss-request-id": rid}
        if self.command == "HEAD":  # HEAD carries no body: OSS puts the error in x-oss-err
            headers["x-oss-err"] = base64.b64encode(body).decode()
        self.send(status, body, headers)

    def _ok(self, body: bytes = b"", headers: dict[str, str] | None = None, status: int = 200) -> None:
        self.send(status, body, {"x-oss-request-id": uuid.uuid4().hex[:24].upper(), **(headers or {})})

    def _authorized(self, bucket: str, key: str, params: dict[str, str]) -> bool:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("OSS ") or ":" not in auth:
            return False
        key_id, signature = auth[4:].split(":", 1)
        if key_id != self.api.access_key_id:
            return False
        oss_headers = sorted((k.lower(), v) for k, v in self.headers.items() if k.lower().startswith("x-oss-"))
        canon = "".join(f"{k}:{v}\n" for k, v in oss_headers)
        sub = sorted((k, v) for k, v in params.items() if k in _SUBRESOURCES)
        resource = f"/{bucket}/{key}" if bucket else "/"
        if sub:
            resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in sub)
        to_sign = "\n".join([self.command, self.headers.get("Content-MD5", ""),
                             self.headers.get("Content-Type", ""),
                             self.headers.get("x-oss-date", "") or self.headers.get("Date", ""),
                             canon + resource])
        expected = base64.b64encode(hmac.new(self.api.access_key_secret.encode(), to_sign.encode(),
                                             hashlib.sha1).digest()).decode()
        return hmac.compare_digest(expected, signature)

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        self.api.record(self.command, self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        bucket, _, key = unquote(url.path).lstrip("/").partition("/")
        data = self.body() if self.command in ("PUT", "POST") else b""
        if not self._authorized(bucket, key, params):
            return self._error(403, "SignatureDoesNotMatch",
                               "The request signature we calculated does not match the signature you provided.")
        store = self.api.buckets.get(bucket)
        if store is None:
            return self._error(404, "NoSuchBucket", "The specified bucket does not exist.")
        if not key:
            if self.command == "GET" and "uploads" in params:
                return self._list_uploads(bucket, params)
            if self.command == "GET":
                return self._list_objects(bucket, store, params)
            return self._error(405, "MethodNotAllowed", "Not implemented by this local server.")
        if "uploads" in params and self.command == "POST":
            return self._initiate(bucket, key)
        if "uploadId" in params:
            return self._multipart(bucket, key, params, data)
        if self.command == "PUT":
            if md5 := self.headers.get("Content-MD5"):
                if base64.b64encode(hashlib.md5(data).digest()).decode() != md5:
                    return self._error(400, "InvalidDigest", "The Content-MD5 you specified is not valid.")
            obj = _Object(data, hashlib.md5(data).hexdigest().upper(), self._meta(),
                          self.headers.get("Content-Type", "application/octet-stream"))
            store[key] = obj
            return self._ok(headers={"ETag": f'"{obj.etag}"'})
        obj = store.get(key)
        if obj is None:
            return self._error(404, "NoSuchKey", "The specified key does not exist.")
        if self.command == "DELETE":
            del store[key]
            return self._ok(status=204)
        headers = {"ETag": f'"{obj.etag}"', "Last-Modified": formatdate(obj.modified.timestamp(), usegmt=True),
                   **{f"x-oss-meta-{k}": v for k, v in obj.meta.items()}}
        if self.command == "HEAD":
            return self.send(200, b"", {**headers, "Content-Length": str(len(obj.data)),
                                        "Content-Type": obj.content_type,
                                        "x-oss-request-id": uuid.uuid4().hex[:24].upper()})
        return self._ok(obj.data, headers)

    def _meta(self) -> dict[str, str]:
        return {k.lower()[len("x-oss-meta-"):]: v for k, v in self.headers.items()
                if k.lower().startswith("x-oss-meta-")}

    def _list_objects(self, bucket: str, store: dict[str, _Object], params: dict[str, str]) -> None:
        prefix, marker = params.get("prefix", ""), params.get("marker", "")
        max_keys = int(params.get("max-keys", "100"))
        keys = sorted(k for k in store if k.startswith(prefix) and k > marker)
        page, truncated = keys[:max_keys], len(keys) > max_keys
        items = "".join(
            f"<Contents><Key>{escape(k)}</Key><LastModified>{_iso(store[k].modified)}</LastModified>"
            f"<ETag>\"{store[k].etag}\"</ETag><Type>Normal</Type><Size>{len(store[k].data)}</Size>"
            f"<StorageClass>Standard</StorageClass></Contents>" for k in page)
        nxt = f"<NextMarker>{escape(page[-1])}</NextMarker>" if truncated else ""
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult><Name>{bucket}</Name>"
                f"<Prefix>{escape(prefix)}</Prefix><Marker>{escape(marker)}</Marker><MaxKeys>{max_keys}</MaxKeys>"
                f"<Delimiter></Delimiter><IsTruncated>{str(truncated).lower()}</IsTruncated>{nxt}{items}"
                "</ListBucketResult>")
        self._ok(body.encode())

    def _initiate(self, bucket: str, key: str) -> None:
        upload_id = uuid.uuid4().hex.upper()
        self.api.uploads[upload_id] = _Upload(key, self._meta(), dt.datetime.now(dt.timezone.utc))
        self._ok((f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult>"
                  f"<Bucket>{bucket}</Bucket><Key>{escape(key)}</Key><UploadId>{upload_id}</UploadId>"
                  "</InitiateMultipartUploadResult>").encode())

    def _list_uploads(self, bucket: str, params: dict[str, str]) -> None:
        prefix = params.get("prefix", "")
        items = "".join(
            f"<Upload><Key>{escape(u.key)}</Key><UploadId>{uid}</UploadId>"
            f"<Initiated>{_iso(u.initiated)}</Initiated></Upload>"
            for uid, u in sorted(self.api.uploads.items(), key=lambda x: (x[1].key, x[1].initiated))
            if u.key.startswith(prefix))
        self._ok((f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListMultipartUploadsResult>"
                  f"<Bucket>{bucket}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>"
                  f"<NextKeyMarker></NextKeyMarker><NextUploadIdMarker></NextUploadIdMarker>"
                  f"<Prefix>{escape(prefix)}</Prefix><MaxUploads>1000</MaxUploads>"
                  f"<IsTruncated>false</IsTruncated>{items}</ListMultipartUploadsResult>").encode())

    def _multipart(self, bucket: str, key: str, params: dict[str, str], data: bytes) -> None:
        upload = self.api.uploads.get(params["uploadId"])
        if upload is None or upload.key != key:
            return self._error(404, "NoSuchUpload", "The specified upload does not exist.")
        if self.command == "PUT":
            with self.api.lock:  # fault injection for retry tests
                failing = self.api.fail_next_parts > 0
                self.api.fail_next_parts -= int(failing)
            if failing:
                return self._error(503, "ServiceUnavailable", "Please reduce your request rate.")
            if md5 := self.headers.get("Content-MD5"):
                if base64.b64encode(hashlib.md5(data).digest()).decode() != md5:
                    return self._error(400, "InvalidDigest", "The Content-MD5 you specified is not valid.")
            part = _Object(data, hashlib.md5(data).hexdigest().upper(), {}, "")
            upload.parts[int(params["partNumber"])] = part
            return self._ok(headers={"ETag": f'"{part.etag}"'})
        if self.command == "GET":
            items = "".join(
                f"<Part><PartNumber>{n}</PartNumber><LastModified>{_iso(p.modified)}</LastModified>"
                f"<ETag>\"{p.etag}\"</ETag><Size>{len(p.data)}</Size></Part>"
                for n, p in sorted(upload.parts.items()))
            return self._ok((f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListPartsResult>"
                             f"<Bucket>{bucket}</Bucket><Key>{escape(key)}</Key><UploadId>{params['uploadId']}"
                             f"</UploadId><PartNumberMarker>0</PartNumberMarker><NextPartNumberMarker>0"
                             f"</NextPartNumberMarker><MaxParts>1000</MaxParts><IsTruncated>false</IsTruncated>"
                             f"{items}</ListPartsResult>").encode())
        if self.command == "DELETE":
            del self.api.uploads[params["uploadId"]]
            return self._ok(status=204)
        # POST: complete
        chosen = [(int(p.findtext("PartNumber")), p.findtext("ETag").strip('"'))
                  for p in ET.fromstring(data).findall("Part")]
        blob = bytearray()
        for i, (n, etag) in enumerate(chosen):
            part = upload.parts.get(n)
            if part is None or part.etag != etag.upper():
                return self._error(400, "InvalidPart", f"Part {n} was not uploaded or its ETag differs.")
            if i < len(chosen) - 1 and len(part.data) < 100 * 1024:
                return self._error(400, "EntityTooSmall", "Parts other than the last must be >= 100 KiB.")
            blob += part.data
        digest = hashlib.md5(b"".join(bytes.fromhex(e) for _, e in chosen)).hexdigest().upper()
        obj = _Object(bytes(blob), f"{digest}-{len(chosen)}", upload.meta, "application/octet-stream")
        self.api.buckets[bucket][key] = obj
        del self.api.uploads[params["uploadId"]]
        self._ok((f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUploadResult>"
                  f"<Location>{self.api.url}/{bucket}/{escape(key)}</Location><Bucket>{bucket}</Bucket>"
                  f"<Key>{escape(key)}</Key><ETag>\"{obj.etag}\"</ETag></CompleteMultipartUploadResult>"
                  ).encode(), {"ETag": f'"{obj.etag}"'})

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _dispatch


class LocalOssApiServer(LocalServer):
    """Start with ``with LocalOssApiServer(key_id, secret, buckets=["b"]) as oss: oss.url``."""

    handler_cls = _OssHandler

    def __init__(self, access_key_id: str, access_key_secret: str, buckets: list[str]):
        super().__init__()
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.buckets: dict[str, dict[str, _Object]] = {b: {} for b in buckets}
        self.uploads: dict[str, _Upload] = {}
        self.fail_next_parts = 0  # the next N UploadPart requests answer 503 (retry tests)
