"""Benchmark: a 1 GiB upload through the gateway next to the same upload straight to files.

Run: `.venv/bin/python bench/gateway_upload.py [--size-mb 1024] [--rounds 2]`.
Provisions a throwaway TestEnvironment (database, namespace, signing key), starts auth and files
under gunicorn (gthread, 1 worker, 8 threads, deploy/gunicorn.conf.py) and the gateway under
uvicorn as subprocesses on free loopback ports, registers one user, then streams a generated
file of `--size-mb` MiB:

* through the gateway, as apollo-upload-client sends it (multipart `operations`, `map`, file
  part `1`, Content-Length, `Apollo-Require-Preflight`), which passes it on to files as a
  chunked multipart body of its own while it arrives;
* straight to the files service (POST /v1/files, multipart field `file`) with a
  Content-Length, as a browser would: the baseline;
* straight to the files service again, chunked in 1 MiB frames.

The gateway passes the file on chunked, in the frames its multipart parser yields (up to
64 KiB), and gunicorn 27 reads such a body about twice as fast as the same bytes under a
Content-Length (measured on the 2-CPU development VM: 420 vs 180 MB/s; 1 MiB frames: 190 MB/s).
That, not magic, is why the gateway path can beat the baseline here.

For each it prints the throughput (MB/s, 10^6 bytes) and the peak RSS (VmHWM from
/proc/<pid>/status, reset through /proc/<pid>/clear_refs before each upload) of the gateway
process and of the files service's gunicorn worker, and records (bench/results.py) the
gateway's throughput against the direct upload's (passing a file on costs at most a tenth) and
each peak RSS (target: under 150 MB each).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from results import record
from support import BIN, ROOT, free_port, gateway_command, gateway_env, register, serve

from services.gateway.tests.apollo import apollo_upload
from services.registry import REGISTRY
from shared.testing import TestEnvironment

MIB = 1024 * 1024
NAME = "gateway_upload"
RSS_TARGET_MB = 150
#: Distinct random blocks the generated file cycles through (random bytes hold CR and LF
#: often enough to keep the multipart parsers' boundary search honest).
BLOCKS = 16


def children(pid: int) -> list[int]:
    """The direct children of a process (a gunicorn master's workers)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _status_mb(pid: int, field: str) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.M).group(1)) * 1024 / 1e6


def reset_peak(pid: int) -> float:
    """Restart the process's peak-RSS count (Linux clear_refs); its RSS now, in MB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _status_mb(pid, "VmRSS")


def peak_mb(pid: int) -> float:
    """The process's peak RSS since the last reset, in MB (10^6 bytes)."""
    return _status_mb(pid, "VmHWM")


class Content:
    """The generated file: BLOCKS random MiB blocks, cycled to `size` bytes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.blocks = [os.urandom(MIB) for _ in range(BLOCKS)]

    def chunks(self) -> Iterator[bytes]:
        """The content, a MiB at a time."""
        left, index = self.size, 0
        while left > 0:
            block = self.blocks[index % BLOCKS][:left]
            index += 1
            left -= len(block)
            yield block

    def sha256(self) -> str:
        """Its SHA-256 (computed once, outside any timing)."""
        digest = hashlib.sha256()
        for chunk in self.chunks():
            digest.update(chunk)
        return digest.hexdigest()


def post_streamed(
    port: int,
    path: str,
    headers: dict[str, str],
    head: bytes,
    content: Content,
    tail: bytes,
    *,
    chunked: bool = False,
) -> tuple[int, bytes, float]:
    """POST head + content + tail with a Content-Length (or chunked); (status, body, seconds)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    started = time.perf_counter()
    conn.putrequest("POST", path)
    for name, value in headers.items():
        conn.putheader(name, value)
    if chunked:
        conn.putheader("Transfer-Encoding", "chunked")
    else:
        conn.putheader("Content-Length", str(len(head) + content.size + len(tail)))
    conn.endheaders()
    for piece in (head, *content.chunks(), tail):
        conn.send(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
    if chunked:
        conn.send(b"0\r\n\r\n")
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    conn.close()
    return response.status, body, elapsed


@dataclass
class Run:
    """One measured upload."""

    label: str
    seconds: float
    size: int
    #: (RSS before, peak during) of each process, in MB.
    gateway_mb: tuple[float, float] | None
    files_mb: tuple[float, float]

    @property
    def gateway_peak_mb(self) -> float | None:
        """The gateway's peak RSS during the upload."""
        return None if self.gateway_mb is None else self.gateway_mb[1]

    def row(self) -> str:
        """One line of the results table."""
        gateway = "-" if self.gateway_mb is None else "{:.0f} -> {:.0f}".format(*self.gateway_mb)
        files = "{:.0f} -> {:.0f}".format(*self.files_mb)
        return (
            f"{self.label:<28} {self.size / 1e6:>8.0f} {self.seconds:>8.2f} "
            f"{self.size / 1e6 / self.seconds:>8.1f} {gateway:>14} {files:>14}"
        )


def through_gateway(
    gateway_port: int, pids: dict[str, int], token: str, content: Content, expected_sha: str
) -> tuple[Run, str]:
    """Upload as apollo-upload-client does, through the gateway."""
    request = apollo_upload("bench.bin", file_type="application/octet-stream")
    before = {name: reset_peak(pid) for name, pid in pids.items()}
    status, body, seconds = post_streamed(
        gateway_port, "/graphql", request.headers(token), request.head, content, request.tail
    )
    answer = json.loads(body)
    if status != 200 or "errors" in answer:
        raise RuntimeError(f"gateway upload failed ({status}): {body[:500]!r}")
    uploaded = answer["data"]["uploadFile"]
    check(uploaded["size"], uploaded["id"], content, expected_sha, gateway_port, token)
    run = Run(
        "gateway (apollo multipart)",
        seconds,
        content.size,
        (before["gateway"], peak_mb(pids["gateway"])),
        (before["files"], peak_mb(pids["files"])),
    )
    return run, uploaded["id"]


def delete(files_port: int, token: str, file_id: str) -> None:
    """Delete an uploaded file, so the next upload starts from the same storage state."""
    conn = http.client.HTTPConnection("127.0.0.1", files_port, timeout=30)
    conn.request("DELETE", f"/v1/files/{file_id}", headers={"Authorization": f"Bearer {token}"})
    if conn.getresponse().status != 204:
        raise RuntimeError(f"could not delete {file_id}")
    conn.close()


def check(size: int, file_id: str, content: Content, expected_sha: str, port: int, token: str):
    """The stored file has the size and SHA-256 that were sent."""
    if size != content.size:
        raise RuntimeError(f"stored {size} bytes of {content.size}")
    query = json.dumps({"query": f'{{ file(id: "{file_id}") {{ sha256 }} }}'}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    conn.request("POST", "/graphql", body=query, headers=headers)
    sha = json.loads(conn.getresponse().read())["data"]["file"]["sha256"]
    if sha != expected_sha:
        raise RuntimeError("the stored content differs from what was sent")


def direct(
    files_port: int,
    files_pid: int,
    token: str,
    content: Content,
    expected_sha: str,
    *,
    chunked: bool = False,
) -> tuple[Run, str]:
    """Upload straight to the files service (the baseline), as a browser would or chunked."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench.bin"'
        "\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Authorization": f"Bearer {token}",
    }
    before = reset_peak(files_pid)
    status, body, seconds = post_streamed(
        files_port, "/v1/files", headers, head, content, tail, chunked=chunked
    )
    if status != 201:
        raise RuntimeError(f"direct upload failed ({status}): {body[:500]!r}")
    stored = json.loads(body)
    if stored["size"] != content.size or stored["sha256"] != expected_sha:
        raise RuntimeError("the stored content differs from what was sent")
    label = "files directly, chunked" if chunked else "files directly (baseline)"
    run = Run(label, seconds, content.size, None, (before, peak_mb(files_pid)))
    return run, stored["id"]


def main(argv: list[str] | None = None) -> int:
    """Provision, start the three servers, upload both ways, print the figures, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="MiB to upload")
    parser.add_argument("--rounds", type=int, default=2, help="uploads per path, alternating")
    parser.add_argument(
        "--storage-dir",
        default="/dev/shm" if Path("/dev/shm").is_dir() else None,
        help="parent of the files service's storage directory (default: tmpfs, so the disk's "
        "writeback does not drown the difference between the two paths)",
    )
    args = parser.parse_args(argv)
    size = args.size_mb * MIB

    with (
        TestEnvironment(REGISTRY) as environment,
        tempfile.TemporaryDirectory(
            prefix="dockyard-bench-files-", dir=args.storage_dir
        ) as storage,
    ):
        auth_port, files_port, gateway_port = free_port(), free_port(), free_port()
        env = {
            **gateway_env(environment, auth_port),
            "FILES_SERVICE_URL": f"http://127.0.0.1:{files_port}",
            "FILES_STORAGE_DIR": storage,
            "FILES_MAX_UPLOAD_BYTES": str(max(size, 1024 * MIB)),
            "FILES_USER_QUOTA_BYTES": str(4 * max(size, MIB)),
        }

        def gunicorn(name: str, port: int) -> list[str]:
            return [
                str(BIN / "gunicorn"), "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
                "--name", f"dockyard-{name}", "--bind", f"127.0.0.1:{port}",
                "--log-level", "warning", f"services.{name}.wsgi:app",
            ]  # fmt: skip

        content = Content(size)
        expected_sha = content.sha256()
        with (
            serve("auth", gunicorn("auth", auth_port), env, auth_port),
            serve("files", gunicorn("files", files_port), env, files_port) as files_master,
            serve("gateway", gateway_command(gateway_port), env, gateway_port) as gateway_pid,
        ):
            (files_worker,) = children(files_master)
            token = register(gateway_port)
            pids = {"gateway": gateway_pid, "files": files_worker}
            runs: list[Run] = []
            for _ in range(args.rounds):
                run, file_id = through_gateway(gateway_port, pids, token, content, expected_sha)
                runs.append(run)
                delete(files_port, token, file_id)
                for chunked in (False, True):
                    run, file_id = direct(
                        files_port, files_worker, token, content, expected_sha, chunked=chunked
                    )
                    runs.append(run)
                    delete(files_port, token, file_id)

        print(
            f"cpus: {os.cpu_count()}  python: {sys.version.split()[0]}  file: {args.size_mb} MiB"
            f"  storage: {storage}"
        )
        print("RSS columns: MB resident before the upload -> peak during it (VmHWM)")
        print(
            f"{'path':<28} {'MB':>8} {'seconds':>8} {'MB/s':>8} "
            f"{'gateway RSS':>14} {'files RSS':>14}"
        )
        for run in runs:
            print(run.row())
        through = [run for run in runs if run.gateway_peak_mb is not None]
        baseline = [run for run in runs if run.label.endswith("(baseline)")]
        megabytes = size / 1e6
        record(
            NAME,
            f"{args.size_mb} MiB upload through the gateway, MB/s",
            megabytes * len(through) / sum(r.seconds for r in through),
            "MB/s",
            baseline=megabytes * len(baseline) / sum(r.seconds for r in baseline),
            baseline_label="straight to the files service",
            target=0.9,
        )
        worst_gateway = max(r.gateway_peak_mb for r in through)
        worst_files = max(r.files_mb[1] for r in runs)
        for name, worst in (("gateway", worst_gateway), ("files", worst_files)):
            record(
                NAME,
                f"peak RSS of the {name} while it streams, MB",
                worst,
                "MB",
                baseline=float(RSS_TARGET_MB),
                baseline_label="the streaming target",
                target=RSS_TARGET_MB,
                compare="absolute",
                better="lower",
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
