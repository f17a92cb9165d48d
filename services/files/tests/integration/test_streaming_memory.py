"""A 200 MB upload and download over real HTTP stream through the service: memory barely moves."""

from __future__ import annotations

import gc
import hashlib
import os
import re

import pytest
import requests

from services.files.app import create_app
from services.files.config import FilesSettings
from services.files.tests.conftest import multipart_body
from shared.testing import ServerThread

MIB = 1024 * 1024
SIZE = 200 * MIB
#: Far less than the file: what buffers, the JWKS fetch and allocator noise may add up to.
ALLOWED_GROWTH = 40 * MIB


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return int(re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.M).group(1))


def reset_peak_rss() -> int:
    """Restart this process's peak-RSS count (Linux clear_refs); return the current RSS."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    return _status_kib("VmRSS") * 1024


def peak_rss() -> int:
    """This process's peak RSS since the last reset, in bytes."""
    return _status_kib("VmHWM") * 1024


@pytest.fixture
def server(test_env, jwks_url, tmp_path):
    """The files service over real HTTP on the local backend, in this very process."""
    app = create_app(FilesSettings(JWKS_URL=jwks_url, STORAGE_DIR=str(tmp_path)))
    with ServerThread(app) as running:
        yield running
    app.extensions["files"].engine.dispose()


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_a_200_mb_file_streams_in_and_out_without_being_held_in_memory(server, user):
    block = os.urandom(MIB)
    head, tail = multipart_body(b"|", filename="big.bin")[0].split(b"|")
    _, content_type = multipart_body(b"")
    sent = hashlib.sha256()

    def body():
        yield head
        for _ in range(SIZE // MIB):
            sent.update(block)
            yield block
        yield tail

    session = requests.Session()
    # Fetch the JWKS and warm the connection pools before measuring.
    session.get(f"{server.url}/v1/files", headers=user.headers, timeout=10).raise_for_status()

    before = reset_peak_rss()
    created = session.post(
        f"{server.url}/v1/files",
        data=body(),
        headers={**user.headers, "Content-Type": content_type},
        timeout=120,
    )
    upload_growth = peak_rss() - before
    assert created.status_code == 201, created.text
    assert created.json()["size"] == SIZE
    assert created.json()["sha256"] == sent.hexdigest()
    assert upload_growth < ALLOWED_GROWTH, f"upload grew peak RSS by {upload_growth / MIB:.0f} MiB"

    before = reset_peak_rss()
    received = hashlib.sha256()
    with session.get(
        f"{server.url}/v1/files/{created.json()['id']}/content",
        headers=user.headers,
        stream=True,
        timeout=120,
    ) as download:
        assert download.status_code == 200
        for chunk in download.iter_content(MIB):
            received.update(chunk)
    download_growth = peak_rss() - before
    assert received.hexdigest() == sent.hexdigest()
    assert download_growth < ALLOWED_GROWTH, (
        f"download grew peak RSS by {download_growth / MIB:.0f} MiB"
    )
