"""Benchmark: `me` through the gateway next to GET /v1/users/me on auth directly, same run.

Run: `.venv/bin/python bench/gateway_me.py [--requests 2000] [--clients 4] [--rounds 4]`.
Provisions a throwaway TestEnvironment (database, Redis namespace, signing key), starts auth
under gunicorn (gthread, 1 worker, 8 threads) and the gateway under uvicorn as subprocesses on
free loopback ports, registers one user, then measures both paths sequentially and with
concurrent clients, alternating between them in rounds so the machine's drift hits both alike.
Both servers log at WARNING so the per-request access log does not dominate either side.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.testing import TestEnvironment  # noqa: E402

ME_QUERY = json.dumps({"query": "{ me { id email createdAt } }"}).encode()
#: No loop runs longer than this, whatever the request count.
TIME_CAP_SECONDS = 60.0


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def process(name: str, argv: list[str], env: dict[str, str], health_url: str) -> Iterator[None]:
    """Run a server subprocess until its health URL answers 200; stop it afterwards."""
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        host, port = health_url.split("//")[1].split("/")[0].split(":")
        while True:
            try:
                conn = http.client.HTTPConnection(host, int(port), timeout=1)
                conn.request("GET", "/" + health_url.split("/", 3)[3])
                if conn.getresponse().status == 200:
                    conn.close()
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"{name} did not start:\n{log.read().decode()[-3000:]}")
            time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class Client:
    """One keep-alive HTTP/1.1 connection issuing one kind of request."""

    def __init__(self, port: int, method: str, path: str, body: bytes | None, token: str):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.method, self.path, self.body = method, path, body
        self.headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            self.headers["Content-Type"] = "application/json"

    def call(self) -> bytes:
        """Send the request once; fail loudly unless it succeeded."""
        self.conn.request(self.method, self.path, body=self.body, headers=self.headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200 or b'"errors"' in data:
            raise RuntimeError(f"{self.path} answered {response.status}: {data[:300]!r}")
        return data


@dataclass
class Figures:
    """Throughput and latency of one measured loop."""

    label: str
    requests: int
    seconds: float
    latencies: list[float]

    def percentile(self, p: float) -> float:
        """Latency percentile in milliseconds."""
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[index] * 1000

    def row(self) -> str:
        """One line of the results table."""
        return (
            f"{self.label:<34} {self.requests:>6} {self.requests / self.seconds:>9.0f} "
            f"{self.percentile(50):>8.2f} {self.percentile(99):>8.2f} "
            f"{statistics.fmean(self.latencies) * 1000:>8.2f}"
        )


def measure(label: str, make_client: Callable[[], Client], requests: int, clients: int) -> Figures:
    """`requests` calls split over `clients` threads, each on its own connection."""
    per_client = requests // clients
    latencies: list[list[float]] = [[] for _ in range(clients)]
    connections = [make_client() for _ in range(clients)]
    for connection in connections:
        for _ in range(20):  # warm the connection and both servers' caches
            connection.call()
    deadline = time.monotonic() + TIME_CAP_SECONDS
    barrier = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            own, connection = latencies[index], connections[index]
            for _ in range(per_client):
                started = time.perf_counter()
                connection.call()
                own.append(time.perf_counter() - started)
                if started > deadline:
                    break
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    flat = [value for own in latencies for value in own]
    return Figures(label, len(flat), elapsed, flat)


def interleaved(
    paths: list[tuple[str, Callable[[], Client]]], requests: int, clients: int, rounds: int
) -> list[Figures]:
    """Measure the paths in alternating rounds, so drift of the machine hits both alike."""
    totals = [Figures(label, 0, 0.0, []) for label, _ in paths]
    for _ in range(rounds):
        for total, (label, make_client) in zip(totals, paths, strict=True):
            figures = measure(label, make_client, requests // rounds, clients)
            total.requests += figures.requests
            total.seconds += figures.seconds
            total.latencies += figures.latencies
    return totals


def register(gateway_port: int) -> str:
    """Register a fresh user through the gateway; return the access token."""
    mutation = (
        "mutation ($e: String!, $p: String!) { register(email: $e, password: $p) { accessToken } }"
    )
    body = json.dumps(
        {
            "query": mutation,
            "variables": {"e": f"bench-{uuid.uuid4().hex[:10]}@example.com", "p": "bench pass"},
        }
    ).encode()
    conn = http.client.HTTPConnection("127.0.0.1", gateway_port, timeout=10)
    conn.request("POST", "/graphql", body=body, headers={"Content-Type": "application/json"})
    answer = json.loads(conn.getresponse().read())
    if "errors" in answer:
        raise RuntimeError(f"registration failed: {answer['errors']}")
    return answer["data"]["register"]["accessToken"]


def main(argv: list[str] | None = None) -> int:
    """Provision, start both servers, measure, print the figures, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per loop")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--rounds", type=int, default=4, help="alternations of the two paths")
    args = parser.parse_args(argv)

    environment = TestEnvironment()
    environment.set_up()
    try:
        auth_port, gateway_port = free_port(), free_port()
        auth_url = f"http://127.0.0.1:{auth_port}"
        env = {
            **os.environ,
            **environment.env(),
            "LOG_LEVEL": "WARNING",
            "AUTH_REGISTER_LIMIT_PER_IP": "1000/minute",
            "AUTH_SERVICE_URL": auth_url,
            "AUTH_JWKS_URL": f"{auth_url}/v1/.well-known/jwks.json",
        }
        bin_dir = Path(sys.executable).parent
        auth_argv = [
            str(bin_dir / "gunicorn"), "--worker-class", "gthread", "--workers", "1",
            "--threads", "8", "--keep-alive", "15", "--bind", f"127.0.0.1:{auth_port}",
            "--log-level", "warning", "services.auth.wsgi:app",
        ]  # fmt: skip
        gateway_argv = [
            sys.executable, "-m", "uvicorn", "services.gateway.asgi:app", "--host", "127.0.0.1",
            "--port", str(gateway_port), "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        with (
            process("auth", auth_argv, env, f"{auth_url}/healthz"),
            process("gateway", gateway_argv, env, f"http://127.0.0.1:{gateway_port}/healthz"),
        ):
            token = register(gateway_port)

            def direct() -> Client:
                return Client(auth_port, "GET", "/v1/users/me", None, token)

            def through_gateway() -> Client:
                return Client(gateway_port, "POST", "/graphql", ME_QUERY, token)

            results = []
            for clients in (1, args.clients):
                mode = "sequential" if clients == 1 else f"{clients} clients"
                paths = [
                    (f"auth GET /v1/users/me, {mode}", direct),
                    (f"gateway me, {mode}", through_gateway),
                ]
                results += interleaved(paths, args.requests, clients, args.rounds)

        print(f"cpus: {os.cpu_count()}  python: {sys.version.split()[0]}")
        print(f"{'path':<34} {'n':>6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
        for figures in results:
            print(figures.row())
        for direct_figures, gateway_figures in zip(results[::2], results[1::2], strict=True):
            added = gateway_figures.percentile(50) - direct_figures.percentile(50)
            verdict = "within" if added < 5 else "OVER"
            print(
                f"added at p50 ({gateway_figures.label.split(', ')[1]}): {added:.2f} ms "
                f"({verdict} the 5 ms target)"
            )
    finally:
        environment.tear_down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
