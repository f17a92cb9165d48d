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
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from support import (
    BIN,
    free_port,
    gateway_command,
    gateway_env,
    percentile,
    register,
    serve,
)

from shared.testing import TestEnvironment

ME_QUERY = json.dumps({"query": "{ me { id email createdAt } }"}).encode()
#: No loop runs longer than this, whatever the request count.
TIME_CAP_SECONDS = 60.0


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
        return percentile(self.latencies, p / 100) * 1000

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


def main(argv: list[str] | None = None) -> int:
    """Provision, start both servers, measure, print the figures, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per loop")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--rounds", type=int, default=4, help="alternations of the two paths")
    args = parser.parse_args(argv)

    with TestEnvironment() as environment:
        auth_port, gateway_port = free_port(), free_port()
        env = gateway_env(environment, auth_port)
        auth_argv = [
            str(BIN / "gunicorn"), "--worker-class", "gthread", "--workers", "1",
            "--threads", "8", "--keep-alive", "15", "--bind", f"127.0.0.1:{auth_port}",
            "--log-level", "warning", "services.auth.wsgi:app",
        ]  # fmt: skip
        with (
            serve("auth", auth_argv, env, auth_port),
            serve("gateway", gateway_command(gateway_port), env, gateway_port),
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
