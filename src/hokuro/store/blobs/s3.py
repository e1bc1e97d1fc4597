"""Blob store in an S3 bucket (or any S3-compatible server): ``s3://bucket/prefix``.

Why these choices:
- Atomic visibility comes from S3 itself: an object appears only when its upload completes,
  whole. A small blob is one ``PutObject``; a large one is a multipart upload that becomes
  an object only at ``CompleteMultipartUpload``, and its parts are never readable before.
  A failed upload is aborted by boto3's transfer manager; one left behind by a killed
  process stays invisible and is removed by :meth:`S3Blobs.clean_temp`.
- One boto3 client per process (clients are thread-safe, sessions are not), created on
  first use and again after ``fork``, with botocore's "standard" retries for throttling and
  passing network faults.
- Credentials come from boto3's usual chain (environment, config files, instance role) and
  never appear in ``describe()`` or in an error message.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from ...errors import BlobError, BlobMissing, ConfigurationError, MissingDependency
from .base import BlobInfo, BlobStorageBase
from .names import check_ref, is_safe_ref

try:
    import boto3
    from boto3.exceptions import S3UploadFailedError
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise MissingDependency("boto3", "s3") from exc

MiB = 1024 * 1024
#: The server a local or S3-compatible store is reached at, when no endpoint_url is given.
ENDPOINT_ENV = "HOKURO_S3_ENDPOINT_URL"
# S3 refuses multipart parts below 5 MiB (except the last one).
_MIN_PART = 5 * MiB
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_NO_BUCKET_CODES = frozenset({"NoSuchBucket", "404", "NotFound"})
_FORBIDDEN_CODES = frozenset({"403", "AccessDenied", "Forbidden"})
# The folder of a task's own files (see blobs.names.files_ref) is not made of blobs: gc must
# not see its contents as orphans, as LocalBlobs does not.
_FILES = "files/"
# What a failed S3 call may raise, translated to BlobError at this boundary.
_S3_ERRORS = (ClientError, BotoCoreError, S3UploadFailedError, OSError)


class S3Blobs(BlobStorageBase):
    """Blobs as objects under ``prefix/`` in ``bucket``.

    ``multipart_threshold``: blobs of at least this many bytes go up as a multipart upload
    in parts of ``multipart_chunksize`` (at least 5 MiB, S3's minimum part size).
    """

    kind = "s3"

    def __init__(self, url: str, *, endpoint_url: str | None = None,
                 region_name: str | None = None, multipart_threshold: int = 8 * MiB,
                 multipart_chunksize: int = 8 * MiB, max_attempts: int = 5,
                 addressing_style: str | None = None, max_pool_connections: int = 32) -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ConfigurationError(
                f"blobs URL {url!r} is not of the form s3://bucket/prefix"
            )
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        if self.prefix and any(seg in ("", ".", "..") for seg in self.prefix.split("/")):
            raise ConfigurationError(
                f"the prefix of {url!r} must not have empty, '.' or '..' parts"
            )
        if multipart_threshold < 1:
            raise ConfigurationError("multipart_threshold must be at least 1 byte")
        self.endpoint_url = endpoint_url or os.environ.get(ENDPOINT_ENV) or None
        self.region_name = region_name
        self.multipart_threshold = multipart_threshold
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=max(multipart_chunksize, _MIN_PART),
            # The classic transfer manager everywhere, so behaviour does not change with
            # whether the optional CRT package happens to be installed.
            preferred_transfer_client="classic",
        )
        s3_options = {"addressing_style": addressing_style} if addressing_style else None
        self._config = Config(
            retries={"mode": "standard", "max_attempts": max_attempts},
            max_pool_connections=max_pool_connections,
            s3=s3_options,
        )
        self._client_obj: Any = None
        self._ready = False
        self._pid = os.getpid()
        self._lock = threading.Lock()

    # -- the client -----------------------------------------------------------------------
    def _client(self) -> Any:
        client, pid = self._client_obj, os.getpid()
        if client is not None and self._pid == pid:
            return client
        if self._pid != pid:
            # A forked child shares the parent's sockets; it makes its own client (and
            # lock: the parent's may have been held at fork time).
            self._lock = threading.Lock()
            self._client_obj, self._pid = None, pid
        with self._lock:
            if self._client_obj is None:
                session = boto3.session.Session(region_name=self.region_name)
                self._client_obj = session.client("s3", endpoint_url=self.endpoint_url,
                                                  config=self._config)
            return self._client_obj

    def key_of(self, ref: str) -> str:
        """The object key of ``ref``; refuses any unsafe reference."""
        check_ref(ref)
        return f"{self.prefix}/{ref}" if self.prefix else ref

    def _fail(self, doing: str, ref: str, exc: BaseException) -> BlobError:
        return BlobError(f"cannot {doing} blob {ref!r} in {self.describe()}: {_reason(exc)}")

    # -- the protocol ---------------------------------------------------------------------
    def ensure_ready(self) -> None:
        """Check once that the bucket exists (HeadBucket), so a missing bucket is reported
        before a task runs rather than after its result could not be uploaded."""
        if self._ready:
            return
        try:
            self._client().head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = _code(exc)
            if code in _NO_BUCKET_CODES:
                raise BlobError(
                    f"the bucket {self.bucket!r} of {self.describe()} does not exist"
                    f"{self._where()}: create it (aws s3 mb s3://{self.bucket}) or correct "
                    "the blobs= URL"
                ) from exc
            if code not in _FORBIDDEN_CODES:
                raise self._unready(exc) from exc
            # HeadBucket needs s3:ListBucket, which a role allowed only to read and write
            # objects lacks: the bucket exists, and the uploads themselves will say more.
        except _S3_ERRORS as exc:
            raise self._unready(exc) from exc
        self._ready = True

    def _where(self) -> str:
        if not self.endpoint_url:
            return ""
        parts = urlsplit(self.endpoint_url)  # host and port only: never userinfo
        return f" on {parts.hostname}{f':{parts.port}' if parts.port else ''}"

    def _unready(self, exc: BaseException) -> BlobError:
        return BlobError(
            f"cannot reach the bucket of {self.describe()}{self._where()}: {_reason(exc)}; "
            "check the endpoint, the network and the credentials"
        )

    def save(self, ref: str, data: bytes) -> str:
        key = self.key_of(ref)
        client = self._client()
        try:
            if len(data) < self.multipart_threshold:
                client.put_object(Bucket=self.bucket, Key=key, Body=bytes(data))
            else:
                client.upload_fileobj(io.BytesIO(data), self.bucket, key,
                                      Config=self._transfer)
        except _S3_ERRORS as exc:
            raise self._fail("write", ref, exc) from exc
        return ref

    def load(self, ref: str) -> bytes:
        key = self.key_of(ref)
        try:
            response = self._client().get_object(Bucket=self.bucket, Key=key)
            return response["Body"].read()
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                raise BlobMissing(f"blob {ref!r} is not in {self.describe()}") from exc
            raise self._fail("read", ref, exc) from exc
        except _S3_ERRORS as exc:
            raise self._fail("read", ref, exc) from exc

    def delete(self, ref: str) -> bool:
        key = self.key_of(ref)
        client = self._client()
        try:
            # S3's DeleteObject succeeds whether or not the object exists, so ask first to
            # tell the caller which it was.
            try:
                client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _code(exc) in _MISSING_CODES:
                    return False
                raise
            client.delete_object(Bucket=self.bucket, Key=key)
            return True
        except _S3_ERRORS as exc:
            raise self._fail("remove", ref, exc) from exc

    def list_blobs(self) -> Iterator[BlobInfo]:
        start = f"{self.prefix}/" if self.prefix else ""
        paginator = self._client().get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
                for item in page.get("Contents", ()):
                    ref = item["Key"][len(start):]
                    if ref.startswith(_FILES) or not is_safe_ref(ref):
                        continue  # not something this store wrote: leave it alone
                    yield BlobInfo(ref, int(item["Size"]), item["LastModified"].timestamp())
        except _S3_ERRORS as exc:
            raise BlobError(f"cannot list blobs in {self.describe()}: {_reason(exc)}") \
                from exc

    def clean_temp(self, max_age_seconds: float, now: float | None = None) -> int:
        """Abort multipart uploads idle for ``max_age_seconds``; return how many.

        They are what a process killed mid-upload leaves behind: invisible, but billed.
        Idle means begun, and last given a part, that long ago: a large upload that is
        still sending parts is left alone however long ago it began.
        """
        now = time.time() if now is None else now
        start = f"{self.prefix}/" if self.prefix else ""
        client = self._client()
        aborted = 0
        try:
            paginator = client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
                for upload in page.get("Uploads", ()):
                    try:
                        if not self._idle(upload, now - max_age_seconds):
                            continue
                        client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                      UploadId=upload["UploadId"])
                    except ClientError as exc:
                        if _code(exc) == "NoSuchUpload":
                            continue  # completed or aborted meanwhile
                        raise
                    aborted += 1
        except _S3_ERRORS as exc:
            raise BlobError(
                f"cannot clean unfinished uploads in {self.describe()}: {_reason(exc)}"
            ) from exc
        return aborted

    def _idle(self, upload: dict[str, Any], since: float) -> bool:
        """True when ``upload`` began, and last received a part, before ``since``."""
        if upload["Initiated"].timestamp() >= since:
            return False
        paginator = self._client().get_paginator("list_parts")
        pages = paginator.paginate(Bucket=self.bucket, Key=upload["Key"],
                                   UploadId=upload["UploadId"])
        for page in pages:
            for part in page.get("Parts", ()):
                if part["LastModified"].timestamp() >= since:
                    return False
        return True

    def close(self) -> None:
        with self._lock:
            client, self._client_obj = self._client_obj, None
        if client is not None and self._pid == os.getpid():
            client.close()

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def __repr__(self) -> str:
        return f"S3Blobs({self.describe()!r})"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _reason(exc: BaseException) -> str:
    """A short reason for a failed call: the S3 error code and message, no request data."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, ClientError):
        return _reason(exc.__context__)
    return str(exc) or type(exc).__name__


