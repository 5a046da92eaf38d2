"""Amazon S3 and S3-compatible stores (MinIO, Ceph, ...) through boto3's low-level client.

The low-level multipart calls (create_multipart_upload / upload_part / list_parts) are used
instead of ``upload_file`` so an interrupted upload can be resumed part by part.
"""

from __future__ import annotations

import base64
import zlib
from pathlib import Path

import boto3
from botocore import UNSIGNED
from botocore import exceptions as bx
from botocore.config import Config

from apt_model import errors
from apt_storage.backends.base import ObjectInfo, write_chunks
from apt_storage.backends.multipart import MultipartBackend, RemotePart, md5_b64
from apt_storage.progress import TransferProgress

_AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
               "InvalidToken", "AllAccessDisabled", "403", "AuthorizationHeaderMalformed"}
_TRANSIENT_CODES = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable",
                    "RequestTimeTooSkewed", "500", "502", "503", "504"}
_CHUNK = 1 << 20


def _crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode("ascii")


class S3Backend(MultipartBackend):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bucket = self.dest.container
        endpoint = (self.options.endpoint_url or self.source.env("AWS_ENDPOINT_URL_S3")
                    or self.source.env("AWS_ENDPOINT_URL") or None)
        region = (self.options.region or self.source.env("AWS_REGION")
                  or self.source.env("AWS_DEFAULT_REGION") or "us-east-1")
        self.endpoint = endpoint or f"https://s3.{region}.amazonaws.com"
        session = boto3.session.Session(
            aws_access_key_id=self.creds.get("AWS_ACCESS_KEY_ID") or None,
            aws_secret_access_key=self.creds.get("AWS_SECRET_ACCESS_KEY") or None,
            aws_session_token=self.creds.get("AWS_SESSION_TOKEN") or None,
            region_name=region,
        )
        config = Config(
            # one retry layer (ours, in MultipartBackend._call) so attempts are counted once
            retries={"total_max_attempts": 1},
            connect_timeout=5, read_timeout=120,
            max_pool_connections=max(10, self.options.concurrency * 2),
            # integrity headers are chosen per call (Content-MD5 on small writes, CRC32 on parts)
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"} if endpoint else {},
            # no credentials given: unsigned requests. Without this botocore would look for keys
            # itself (environment, ~/.aws, instance metadata) and sign with them for any endpoint
            **({} if self.creds.get("AWS_ACCESS_KEY_ID") else {"signature_version": UNSIGNED}),
        )
        self.client = session.client("s3", endpoint_url=endpoint, config=config)

    def describe(self) -> str:
        return f"s3://{self.bucket} at {self.endpoint}"

    # --- errors ---------------------------------------------------------------------
    def _is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectionClosedError,
                            bx.ReadTimeoutError, bx.ConnectTimeoutError)):
            return True
        if isinstance(exc, bx.ClientError):
            return str(exc.response.get("Error", {}).get("Code", "")) in _TRANSIENT_CODES
        return False

    def _map_error(self, exc: BaseException, action: str) -> errors.AptError | None:
        where = self.describe()
        if isinstance(exc, bx.NoCredentialsError):
            return errors.PermissionDenied(
                f"Cannot {action}: no AWS credentials found. Set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY in the service's environment or mount them as secret files.")
        if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectionClosedError,
                            bx.ConnectTimeoutError, bx.ReadTimeoutError)):
            return errors.Unavailable(
                f"Cannot {action}: {where} is unreachable ({type(exc).__name__}). Check the "
                "endpoint URL and the network, then run the command again; backups resume.")
        if isinstance(exc, bx.ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "NoSuchBucket" or (code == "404" and action.startswith("open bucket")):
                return errors.NotFound(
                    f"Bucket {self.bucket!r} does not exist at {self.endpoint}; create it or fix the URI.")
            if code in ("NoSuchKey", "404", "NoSuchUpload"):
                return errors.NotFound(f"Cannot {action}: not found in {where}.")
            if code in _AUTH_CODES:
                return errors.PermissionDenied(
                    f"Cannot {action}: {where} refused the credentials ({code}). Check "
                    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (values are not shown) and the "
                    "bucket policy.")
            if code in _TRANSIENT_CODES:
                return errors.Unavailable(f"Cannot {action}: {where} answered {code}; try again later.")
            return errors.FailedPrecondition(
                self.creds.redact(f"Cannot {action}: {where} answered {code}: "
                                  f"{exc.response.get('Error', {}).get('Message', '')}"))
        if isinstance(exc, bx.BotoCoreError):
            return errors.Unavailable(self.creds.redact(f"Cannot {action} at {where}: {exc}"))
        return None

    # --- Backend --------------------------------------------------------------------
    def check(self) -> None:
        self._call(lambda: self.client.head_bucket(Bucket=self.bucket), f"open bucket {self.bucket}")

    def list(self, prefix: str) -> list[ObjectInfo]:
        def run() -> list[ObjectInfo]:
            out = []
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix.rstrip("/") + "/" if prefix else "")
            for page in pages:
                for obj in page.get("Contents", []):
                    out.append(ObjectInfo(obj["Key"], int(obj["Size"]),
                                          obj["LastModified"].isoformat(timespec="seconds")))
            return out
        return self._call(run, f"list bucket {self.bucket}")

    def read_bytes(self, key: str) -> bytes | None:
        def run() -> bytes | None:
            try:
                return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except bx.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise
        return self._call(run, f"read {key}")

    def write_bytes(self, key: str, data: bytes) -> None:
        self._call(lambda: self.client.put_object(Bucket=self.bucket, Key=key, Body=data,
                                                  ContentMD5=md5_b64(data)[1]), f"write {key}")

    def download(self, key: str, target: Path, progress: TransferProgress) -> None:
        def run() -> None:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            write_chunks(body.iter_chunks(_CHUNK), target, progress)
        self._call(run, f"download {key}")

    # --- multipart primitives ---------------------------------------------------------
    def _head_sha256(self, key: str) -> tuple[int, str] | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except bx.ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey"):
                return None
            raise
        return int(head["ContentLength"]), head.get("Metadata", {}).get(self.META_SHA256, "")

    def _put(self, key: str, data: bytes, md5: str, sha256: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentMD5=md5,
                               Metadata={self.META_SHA256: sha256})

    def _find_upload(self, key: str) -> tuple[str, dict[int, RemotePart]] | None:
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key).get("Uploads", [])
        mine = sorted((u for u in uploads if u["Key"] == key), key=lambda u: u["Initiated"])
        if not mine:
            return None
        upload_id = mine[-1]["UploadId"]
        parts: dict[int, RemotePart] = {}
        pages = self.client.get_paginator("list_parts").paginate(Bucket=self.bucket, Key=key,
                                                                  UploadId=upload_id)
        for page in pages:
            for p in page.get("Parts", []):
                parts[int(p["PartNumber"])] = RemotePart(int(p["Size"]), p["ETag"].strip('"').lower())
        return upload_id, parts

    def _create_upload(self, key: str, sha256: str) -> str:
        # CRC32 per part (verified by S3 on arrival) costs a fraction of MD5 on large files
        return self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, Metadata={self.META_SHA256: sha256},
            ChecksumAlgorithm="CRC32")["UploadId"]

    def _upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> dict:
        crc = _crc32_b64(data)
        resp = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                       Body=data, ChecksumAlgorithm="CRC32", ChecksumCRC32=crc)
        return {"PartNumber": number, "ETag": resp["ETag"], "ChecksumCRC32": crc}

    def _existing_part(self, number: int, remote: RemotePart, data: bytes) -> dict:
        return {"PartNumber": number, "ETag": f'"{remote.etag}"', "ChecksumCRC32": _crc32_b64(data)}

    def _complete(self, key: str, upload_id: str, parts: dict[int, dict]) -> None:
        self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                              MultipartUpload={"Parts": [parts[n] for n in sorted(parts)]})

    def _abort(self, key: str, upload_id: str) -> None:
        self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    def close(self) -> None:
        self.client.close()
