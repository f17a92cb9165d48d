"""Where file content lives: one interface, a local-directory backend and an S3 backend."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from shared import plugins

log = logging.getLogger(__name__)

#: Bytes read from an upload stream per call; bounds what one read holds in memory.
CHUNK_SIZE = 64 * 1024
#: Size of each S3 multipart part (S3's minimum is 5 MiB); one part is held in memory at a time.
S3_PART_SIZE = 8 * 1024 * 1024


class Readable(Protocol):
    """Anything with `read(size)`: an upload stream."""

    def read(self, size: int = -1, /) -> bytes:
        """Up to `size` bytes; b"" at the end."""


@dataclass(frozen=True)
class StoredObject:
    """What storing a stream produced."""

    key: str
    size: int
    sha256: str


class ObjectMissing(Exception):
    """No object is stored under this key."""


class StorageUnavailable(Exception):
    """The store itself cannot be reached (a missing mount, say): worth retrying later."""


@contextmanager
def _reachable() -> Iterator[None]:
    """Turn botocore's failures to reach the server into StorageUnavailable."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    try:
        yield
    except (BotoConnectionError, HTTPClientError) as exc:
        raise StorageUnavailable(f"S3 unreachable: {exc}") from exc


class ObjectReader:
    """A readable view of a stored object (or a byte range of it); close it when done."""

    def __init__(self, raw: Any, length: int) -> None:
        self._raw = raw
        self._remaining = length
        self.length = length

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes of the object (all that remain when negative); b"" at the end."""
        if self._remaining <= 0:
            return b""
        size = self._remaining if size is None or size < 0 else min(size, self._remaining)
        data = self._raw.read(size)
        if not data:
            raise ObjectMissing("stored object ended before its recorded length")
        self._remaining -= len(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK_SIZE):
            yield chunk

    def close(self) -> None:
        """Release the file handle or HTTP connection."""
        self._raw.close()

    def __enter__(self) -> ObjectReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class Storage(Protocol):
    """A store of immutable objects under generated UUID keys."""

    def put(self, stream: Readable) -> StoredObject:
        """Store the stream under a new key; on any failure nothing is left behind."""

    def open(self, key: str, *, start: int = 0, length: int | None = None) -> ObjectReader:
        """Read an object, or `length` bytes of it from `start`; raises ObjectMissing."""

    def delete(self, key: str) -> None:
        """Remove an object; removing a missing one is not an error."""

    def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""

    def check(self) -> None:
        """Raise when the store cannot be used (readiness)."""


def new_key() -> str:
    """A fresh object key: a UUID, so no client input ever reaches a path or object name."""
    return str(uuid.uuid4())


def _canonical(key: str) -> str | None:
    """The key in canonical UUID form; None for anything this store never handed out."""
    try:
        return str(uuid.UUID(key))
    except (TypeError, ValueError):
        return None


class _Digest:
    """Counts and hashes the bytes that pass through it."""

    def __init__(self) -> None:
        self.size = 0
        self._sha256 = hashlib.sha256()

    def update(self, data: bytes) -> bytes:
        self.size += len(data)
        self._sha256.update(data)
        return data

    def hexdigest(self) -> str:
        return self._sha256.hexdigest()


def _read_up_to(stream: Readable, size: int) -> bytes:
    buffer = bytearray()
    while len(buffer) < size:
        chunk = stream.read(min(CHUNK_SIZE, size - len(buffer)))
        if not chunk:
            break
        buffer += chunk
    return bytes(buffer)


class LocalStorage:
    """Objects as files under one directory, sharded by the first characters of the key.

    The directory is provisioned (`make up`, a mounted volume), never created here: a missing
    one most likely means an unmounted volume, and a fresh empty directory in its place would
    make every stored file look missing and send new uploads to the wrong disk.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def _unavailable(self) -> StorageUnavailable:
        return StorageUnavailable(f"storage directory {self.root} is missing or not a directory")

    def _require_root(self) -> None:
        if not self.root.is_dir():
            raise self._unavailable()

    def _make_shard(self, shard: Path) -> None:
        """Create the key's two shard directories, one level at a time: never the root."""
        try:
            for directory in (shard.parent, shard):
                directory.mkdir(exist_ok=True)
        except (FileNotFoundError, NotADirectoryError):
            raise self._unavailable() from None

    def _path(self, key: str) -> Path | None:
        # Keys are ours (UUIDs); refusing anything else keeps a bad key from naming a path.
        canonical = _canonical(key)
        if canonical is None:
            return None
        return self.root / canonical[:2] / canonical[2:4] / canonical

    def put(self, stream: Readable) -> StoredObject:
        """Write to a temporary file beside the target, fsync, then rename it into place."""
        key = new_key()
        path = self._path(key)
        self._make_shard(path.parent)
        partial = path.with_name(f"{path.name}.partial")
        digest = _Digest()
        try:
            with open(partial, "wb") as out:
                while chunk := stream.read(CHUNK_SIZE):
                    out.write(digest.update(chunk))
                out.flush()
                # The row that points here commits next; the bytes must survive a crash first.
                os.fsync(out.fileno())
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return StoredObject(key=key, size=digest.size, sha256=digest.hexdigest())

    def open(self, key: str, *, start: int = 0, length: int | None = None) -> ObjectReader:
        """Open the file and seek to `start`."""
        path = self._path(key)
        try:
            if path is None:
                raise FileNotFoundError(key)
            handle = open(path, "rb")  # noqa: SIM115 - ObjectReader closes it
        except (FileNotFoundError, NotADirectoryError):
            if not self.root.is_dir():
                # An unmounted volume says nothing about the object: do not call it missing.
                raise self._unavailable() from None
            raise ObjectMissing(key) from None
        try:
            total = os.fstat(handle.fileno()).st_size
            handle.seek(start)
        except BaseException:
            handle.close()
            raise
        available = max(total - start, 0)
        return ObjectReader(handle, available if length is None else min(length, available))

    def delete(self, key: str) -> None:
        """Unlink the file; StorageUnavailable without the directory (the object may be there)."""
        self._require_root()
        path = self._path(key)
        if path is not None:
            path.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        """Whether the file exists; StorageUnavailable without the directory."""
        self._require_root()
        path = self._path(key)
        return path is not None and path.is_file()

    def keys(self) -> list[str]:
        """Every stored key, partial writes included (for tests and sweeping)."""
        self._require_root()
        return sorted(p.name for p in self.root.glob("*/*/*") if p.is_file())

    def check(self) -> None:
        """The directory exists and is writable."""
        self._require_root()
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise PermissionError(f"{self.root} is not writable")


class S3Storage:
    """Objects in one bucket of an S3-compatible server, uploaded part by part."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @classmethod
    def from_settings(cls, settings: Any) -> S3Storage:
        """A client for FILES_S3_*; path-style addressing when a custom endpoint is set."""
        import boto3
        from botocore.config import Config

        config = Config(
            s3={"addressing_style": "path" if settings.S3_ENDPOINT_URL else "auto"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        )
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.S3_ENDPOINT_URL or None,
            region_name=settings.S3_REGION,
            aws_access_key_id=settings.S3_ACCESS_KEY_ID or None,
            aws_secret_access_key=settings.S3_SECRET_ACCESS_KEY or None,
            config=config,
        )
        return cls(client, settings.S3_BUCKET)

    def put(self, stream: Readable) -> StoredObject:
        """One PUT for small objects, a multipart upload (aborted on failure) for larger ones."""
        with _reachable():
            return self._put(stream)

    def _put(self, stream: Readable) -> StoredObject:
        key = new_key()
        digest = _Digest()
        part = digest.update(_read_up_to(stream, S3_PART_SIZE))
        if len(part) < S3_PART_SIZE:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=part)
            return StoredObject(key=key, size=digest.size, sha256=digest.hexdigest())
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        try:
            parts = []
            while part:
                number = len(parts) + 1
                response = self.client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part
                )
                parts.append({"PartNumber": number, "ETag": response["ETag"]})
                part = digest.update(_read_up_to(stream, S3_PART_SIZE))
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except Exception:  # noqa: BLE001 - the original failure is the one to report
                log.warning("could not abort multipart upload %s of %s", upload_id, key)
            raise
        return StoredObject(key=key, size=digest.size, sha256=digest.hexdigest())

    def open(self, key: str, *, start: int = 0, length: int | None = None) -> ObjectReader:
        """GET the object, with a Range header when only part of it is wanted."""
        from botocore.exceptions import ClientError

        if _canonical(key) is None:
            raise ObjectMissing(key)
        if length == 0:
            return ObjectReader(io.BytesIO(), 0)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start or length is not None:
            end = "" if length is None else str(start + length - 1)
            kwargs["Range"] = f"bytes={start}-{end}"
        try:
            with _reachable():
                response = self.client.get_object(**kwargs)
        except ClientError as exc:
            if _error_code(exc) in {"NoSuchKey", "404", "InvalidRange"}:
                raise ObjectMissing(key) from None
            raise
        return ObjectReader(response["Body"], int(response["ContentLength"]))

    def delete(self, key: str) -> None:
        """DELETE the object (S3 does not mind a missing one)."""
        if _canonical(key) is not None:
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def exists(self, key: str) -> bool:
        """HEAD the object."""
        from botocore.exceptions import ClientError

        if _canonical(key) is None:
            return False
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True

    def keys(self) -> list[str]:
        """Every stored key (for tests and sweeping)."""
        paginator = self.client.get_paginator("list_objects_v2")
        return sorted(
            item["Key"]
            for page in paginator.paginate(Bucket=self.bucket)
            for item in page.get("Contents", [])
        )

    def check(self) -> None:
        """HEAD the bucket."""
        with _reachable():
            self.client.head_bucket(Bucket=self.bucket)


def _error_code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def local_storage(settings: Any) -> LocalStorage:
    """The `local` backend: the directory FILES_STORAGE_DIR."""
    return LocalStorage(settings.STORAGE_DIR)


def storage_from_settings(settings: Any) -> Storage:
    """The backend FILES_STORAGE_BACKEND names, from the `dockyard.storage` plugins."""
    factory = plugins.require("storage", settings.STORAGE_BACKEND, setting="FILES_STORAGE_BACKEND")
    return factory(settings)
