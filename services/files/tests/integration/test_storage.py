"""Both storage backends keep the same contract: put, ranged open, exists, delete, clean failure."""

from __future__ import annotations

import hashlib
import io
import uuid

import pytest

from services.files.config import FilesSettings
from services.files.storage import S3_PART_SIZE, ObjectMissing, S3Storage, storage_from_settings


@pytest.fixture
def storage(test_env, storage_settings):
    """An empty store of the backend under test."""
    return storage_from_settings(FilesSettings(**storage_settings))


class FailingStream:
    """Yields `good` bytes, then fails like a client that went away."""

    def __init__(self, good: int) -> None:
        self.left = good

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            raise ConnectionResetError("client went away")
        data = b"q" * min(size, self.left)
        self.left -= len(data)
        return data


def test_put_returns_a_uuid_key_the_size_and_the_sha256(storage):
    content = b"stored bytes"
    stored = storage.put(io.BytesIO(content))
    assert uuid.UUID(stored.key)
    assert stored.size == len(content)
    assert stored.sha256 == hashlib.sha256(content).hexdigest()
    assert storage.exists(stored.key)
    assert storage.keys() == [stored.key]


def test_open_reads_the_whole_object_or_a_byte_range(storage):
    content = bytes(range(256)) * 10
    key = storage.put(io.BytesIO(content)).key
    with storage.open(key) as reader:
        assert b"".join(reader) == content
    with storage.open(key, start=100, length=50) as reader:
        assert reader.length == 50
        assert reader.read() == content[100:150]
    with storage.open(key, start=2500) as reader:
        assert reader.read() == content[2500:]


def test_an_empty_object_round_trips(storage):
    stored = storage.put(io.BytesIO(b""))
    assert stored.size == 0
    assert stored.sha256 == hashlib.sha256(b"").hexdigest()
    with storage.open(stored.key) as reader:
        assert reader.read() == b""


def test_delete_removes_the_object_and_tolerates_a_missing_one(storage):
    key = storage.put(io.BytesIO(b"bye")).key
    storage.delete(key)
    assert not storage.exists(key)
    storage.delete(key)
    with pytest.raises(ObjectMissing):
        storage.open(key)
    assert storage.keys() == []


def test_objects_larger_than_one_s3_part_round_trip(storage):
    content = (b"0123456789abcdef" * (1024 * 1024))[: 2 * S3_PART_SIZE + 12345]
    stored = storage.put(io.BytesIO(content))
    assert stored.size == len(content)
    assert stored.sha256 == hashlib.sha256(content).hexdigest()
    with storage.open(stored.key, start=S3_PART_SIZE - 5, length=10) as reader:
        assert reader.read() == content[S3_PART_SIZE - 5 : S3_PART_SIZE + 5]


@pytest.mark.parametrize("good_bytes", [1000, S3_PART_SIZE + 1000])
def test_a_stream_that_fails_midway_leaves_nothing_behind(storage, good_bytes):
    with pytest.raises(ConnectionResetError):
        storage.put(FailingStream(good_bytes))
    assert storage.keys() == []
    if isinstance(storage, S3Storage):
        uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket)
        assert uploads.get("Uploads", []) == []
    else:
        assert [p for p in storage.root.rglob("*") if p.is_file()] == []


def test_keys_that_are_not_uuids_name_no_object(storage):
    for key in ("../../etc/passwd", "", "not-a-key"):
        assert not storage.exists(key)
        with pytest.raises(ObjectMissing):
            storage.open(key)
