"""What the benchmarks share: a throwaway environment, server subprocesses, the gateway, stats.

Imported as `support`: the benchmarks run as scripts (`bench/run.py`, `make bench`,
`.venv/bin/python bench/<name>.py`), so this directory is first on `sys.path`; `services` and
`shared` come from the editable install that `make venv` makes.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.processes import ManagedProcess, stop_all
from shared.testing import TestEnvironment

ROOT = Path(__file__).resolve().parent.parent
#: The virtualenv's scripts: gunicorn, celery, dockyard.
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spawn(argv: list[str], *, env: dict[str, str], log: Path) -> ManagedProcess:
    """Start a subprocess in the repository root, its stdout and stderr appended to `log`."""
    return ManagedProcess(Path(argv[0]).name, argv, env=env, log=log, cwd=ROOT).start()


def stop(*processes: ManagedProcess, timeout: float = 30) -> None:
    """SIGTERM the processes, then wait for each; kill any still running after `timeout` s."""
    stop_all(processes, timeout)


@contextmanager
def serve(
    name: str, argv: list[str], env: dict[str, str], port: int, *, ready_timeout: float = 30
) -> Iterator[int]:
    """Run a server subprocess until GET /healthz on `port` answers 200; yield its pid; stop it."""
    with ManagedProcess(name, argv, env=env, cwd=ROOT) as server:
        server.wait_ready(url=f"http://127.0.0.1:{port}/healthz", timeout=ready_timeout)
        yield server.pid


def gateway_env(environment: TestEnvironment, auth_port: int) -> dict[str, str]:
    """Environment variables for auth, the gateway and their peers, auth on `auth_port`."""
    auth_url = f"http://127.0.0.1:{auth_port}"
    return {
        **os.environ,
        **environment.env(),
        # Quiet, so the per-request access log does not dominate what is measured.
        "LOG_LEVEL": "WARNING",
        # Every run registers users from the same loopback address.
        "AUTH_REGISTER_LIMIT_PER_IP": "1000/minute",
        "AUTH_SERVICE_URL": auth_url,
        "AUTH_JWKS_URL": f"{auth_url}/v1/.well-known/jwks.json",
    }


def gateway_command(port: int) -> list[str]:
    """The gateway under uvicorn on a loopback port, without its access log."""
    return [
        sys.executable, "-m", "uvicorn", "services.gateway.asgi:app", "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


def register(gateway_port: int) -> str:
    """Register a fresh user through the gateway; return the access token."""
    mutation = (
        "mutation ($e: String!, $p: String!) { register(email: $e, password: $p) { accessToken } }"
    )
    body = json.dumps(
        {
            "query": mutation,
            "variables": {
                "e": f"bench-{uuid.uuid4().hex[:10]}@example.com",
                "p": "bench pass, rusty anchor",
            },
        }
    ).encode()
    conn = http.client.HTTPConnection("127.0.0.1", gateway_port, timeout=10)
    conn.request("POST", "/graphql", body=body, headers={"Content-Type": "application/json"})
    answer = json.loads(conn.getresponse().read())
    if "errors" in answer:
        raise RuntimeError(f"registration failed: {answer['errors']}")
    return answer["data"]["register"]["accessToken"]


def percentile(values: list[float], fraction: float) -> float:
    """The `fraction` quantile of `values` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def timed_calls(
    callers: list[Callable[[], object]], calls_each: int, *, time_cap: float = 60.0
) -> tuple[float, list[float]]:
    """Each caller in its own thread, all released at once, `calls_each` calls apiece.

    Returns the wall-clock seconds until the last thread finished and every call's latency. A
    thread stops early once `time_cap` seconds have passed; the first error is raised.
    """
    latencies: list[list[float]] = [[] for _ in callers]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(callers) + 1)
    deadline = time.monotonic() + time_cap

    def run(index: int) -> None:
        barrier.wait()
        try:
            for _ in range(calls_each):
                started = time.perf_counter()
                callers[index]()
                latencies[index].append(time.perf_counter() - started)
                if time.monotonic() > deadline:
                    break
        except BaseException as exc:  # noqa: BLE001 - reported by the calling thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(callers))]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed, [value for own in latencies for value in own]
