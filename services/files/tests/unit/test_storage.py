"""The local backend without its directory: a storage outage, never an empty store made anew."""

from __future__ import annotations

import io
import uuid

import pytest

from services.files.storage import LocalStorage, StorageUnavailable


@pytest.fixture(params=["missing", "a file"])
def lost_root(request, tmp_path):
    """Where the storage directory should be: nothing there, or a plain file."""
    root = tmp_path / "files"
    if request.param == "a file":
        root.write_bytes(b"")
    return root


def test_building_a_local_store_does_not_create_its_directory(lost_root):
    existed = lost_root.exists()
    LocalStorage(lost_root)
    assert lost_root.exists() == existed
    assert not lost_root.is_dir()


def test_every_operation_without_the_directory_is_unavailable_and_creates_nothing(lost_root):
    storage = LocalStorage(lost_root)
    key = str(uuid.uuid4())
    operations = {
        "put": lambda: storage.put(io.BytesIO(b"lost")),
        "open": lambda: storage.open(key),
        "delete": lambda: storage.delete(key),
        "exists": lambda: storage.exists(key),
        "keys": storage.keys,
        "check": storage.check,
    }
    for name, operation in operations.items():
        with pytest.raises(StorageUnavailable, match="missing or not a directory"):
            operation()
        assert not lost_root.is_dir(), f"{name} created the storage directory"


def test_shard_directories_are_created_under_an_existing_root(tmp_path):
    storage = LocalStorage(tmp_path)
    key = storage.put(io.BytesIO(b"sharded")).key
    assert (tmp_path / key[:2] / key[2:4] / key).read_bytes() == b"sharded"
    with storage.open(key) as reader:
        assert reader.read() == b"sharded"


def test_the_directory_provisioned_after_the_store_was_built_is_used(tmp_path):
    root = tmp_path / "mounted-later"
    storage = LocalStorage(root)
    root.mkdir()
    storage.check()
    key = storage.put(io.BytesIO(b"late")).key
    assert storage.keys() == [key]
