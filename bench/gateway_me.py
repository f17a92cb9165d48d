"""Benchmark: the gateway against what it stands on, same run, same uvicorn settings.

Run: `.venv/bin/python bench/gateway_me.py [--requests 2000] [--clients 8] [--rounds 4]`.
Provisions a throwaway TestEnvironment (database, Redis namespace, signing key), starts auth
under gunicorn (gthread, 1 worker, 8 threads), the gateway and a bare Ariadne ASGI app (one
resolver) under the same uvicorn command as subprocesses on free loopback ports, registers one
user, then measures, alternating between the paths in rounds so the machine's drift hits both:
- `{ __typename }` through the gateway against the bare Ariadne app (req/s, sequential and
  with concurrent clients), target >= 0.9x;
- `{ me { id email } }` through the gateway against GET /v1/users/me on auth: added p50
  sequentially (target <= 2 ms) and throughput with concurrent clients (target >= 0.7x).
Every server logs at WARNING so the per-request access log does not dominate either side.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from results import record
from support import (
    BIN,
    ROOT,
    free_port,
    gateway_command,
    gateway_env,
    percentile,
    register,
    serve,
    timed_calls,
)

from services.registry import REGISTRY
from shared.processes import ManagedProcess
from shared.testing import TestEnvironment

NAME = "gateway_me"
ME_QUERY = json.dumps({"query": "{ me { id email } }"}).encode()
TYPENAME_QUERY = json.dumps({"query": "{ __typename }"}).encode()
#: No loop runs longer than this, whatever the request count.
TIME_CAP_SECONDS = 60.0


class Client:
    """One keep-alive HTTP/1.1 connection issuing one kind of request."""

    def __init__(
        self, port: int, method: str, path: str, body: bytes | None, token: str | None = None
    ):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.method, self.path, self.body = method, path, body
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
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

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds

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
    connections = [make_client() for _ in range(clients)]
    for connection in connections:
        for _ in range(20):  # warm the connection and both servers' caches
            connection.call()
    callers = [connection.call for connection in connections]
    elapsed, latencies = timed_calls(callers, requests // clients, time_cap=TIME_CAP_SECONDS)
    return Figures(label, len(latencies), elapsed, latencies)


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


def bare_ariadne_app():
    """The baseline: Ariadne's ASGI GraphQL app over a one-resolver schema (a uvicorn factory)."""
    from ariadne import QueryType, make_executable_schema
    from ariadne.asgi import GraphQL

    query = QueryType()

    @query.field("hello")
    def resolve_hello(*_args) -> str:
        return "hello"

    return GraphQL(make_executable_schema("type Query { hello: String! }", query))


def bare_ariadne_command(port: int) -> list[str]:
    """The bare app under exactly the gateway's uvicorn command."""
    argv = gateway_command(port)
    index = argv.index("services.gateway.asgi:app")
    argv[index : index + 1] = ["--app-dir", str(Path(__file__).parent), "--factory"]
    argv.insert(index + 3, "gateway_me:bare_ariadne_app")
    return argv


def report(results: dict[str, Figures], clients: int) -> None:
    """Print the table and record each target's figure."""
    print(f"cpus: {os.cpu_count()}  python: {sys.version.split()[0]}")
    print(f"{'path':<34} {'n':>6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for figures in results.values():
        print(figures.row())
    for mode in ("sequential", f"{clients} clients"):
        bare, gateway = results[f"bare __typename, {mode}"], results[f"gateway __typename, {mode}"]
        record(
            NAME,
            f"__typename req/s, {mode}",
            gateway.rate,
            "req/s",
            baseline=bare.rate,
            baseline_label="bare Ariadne ASGI app",
            target=0.9,
        )
    auth, gateway = results["auth me, sequential"], results["gateway me, sequential"]
    record(
        NAME,
        "me p50, sequential",
        gateway.percentile(50),
        "ms",
        baseline=auth.percentile(50),
        baseline_label="auth GET /v1/users/me",
        target=2.0,
        compare="difference",
        better="lower",
    )
    auth, gateway = (
        results[f"auth me, {clients} clients"],
        results[f"gateway me, {clients} clients"],
    )
    record(
        NAME,
        f"me req/s, {clients} clients",
        gateway.rate,
        "req/s",
        baseline=auth.rate,
        baseline_label="auth GET /v1/users/me",
        target=0.7,
    )


def main(argv: list[str] | None = None) -> int:
    """Provision, start the servers, measure, print and record the figures, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per loop")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--rounds", type=int, default=4, help="alternations of the two paths")
    args = parser.parse_args(argv)

    with TestEnvironment(REGISTRY) as environment:
        auth_port, gateway_port, bare_port = free_port(), free_port(), free_port()
        env = gateway_env(environment, auth_port)
        auth_argv = [
            str(BIN / "gunicorn"), "--worker-class", "gthread", "--workers", "1",
            "--threads", "8", "--keep-alive", "15", "--bind", f"127.0.0.1:{auth_port}",
            "--log-level", "warning", "services.auth.wsgi:app",
        ]  # fmt: skip
        with (
            serve("auth", auth_argv, env, auth_port),
            serve("gateway", gateway_command(gateway_port), env, gateway_port),
            serve_bare(bare_ariadne_command(bare_port), env, bare_port),
        ):
            token = register(gateway_port)
            paths = {
                "bare __typename": lambda: Client(bare_port, "POST", "/", TYPENAME_QUERY),
                "gateway __typename": lambda: Client(
                    gateway_port, "POST", "/graphql", TYPENAME_QUERY
                ),
                "auth me": lambda: Client(auth_port, "GET", "/v1/users/me", None, token),
                "gateway me": lambda: Client(gateway_port, "POST", "/graphql", ME_QUERY, token),
            }
            results: dict[str, Figures] = {}
            for clients in (1, args.clients):
                mode = "sequential" if clients == 1 else f"{clients} clients"
                for pair in (("bare __typename", "gateway __typename"), ("auth me", "gateway me")):
                    labelled = [(f"{label}, {mode}", paths[label]) for label in pair]
                    for figures in interleaved(labelled, args.requests, clients, args.rounds):
                        results[figures.label] = figures
        report(results, args.clients)
    return 0


@contextmanager
def serve_bare(argv: list[str], env: dict[str, str], port: int):
    """The bare app until stopped; it has no /healthz, so readiness is a first answered query."""
    with ManagedProcess("bare-ariadne", argv, env=env, cwd=ROOT) as process:
        deadline = time.monotonic() + 30
        while True:
            try:
                Client(port, "POST", "/", TYPENAME_QUERY).call()
                break
            except OSError:
                if not process.running or time.monotonic() > deadline:
                    raise RuntimeError("the bare Ariadne app did not start") from None
                time.sleep(0.1)
        yield process.pid


if __name__ == "__main__":
    raise SystemExit(main())
