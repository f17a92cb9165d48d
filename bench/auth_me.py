"""Benchmark: auth's GET /v1/users/me against a bare Flask JSON route, both under gunicorn.

Run: `.venv/bin/python bench/auth_me.py [--requests 3000] [--clients 1,4,8] [--rounds 3]`.
Provisions a throwaway TestEnvironment, registers one user, then serves the auth service and a
bare Flask app (one JSON route, nothing else) with the same `deploy/gunicorn.conf.py`, side by
side on two loopback ports, and drives both with the same keep-alive HTTP/1.1 clients and
request count, alternating in rounds so the machine's drift hits both alike. Auth runs with its
deployed defaults (LOG_LEVEL=INFO: the access log is part of what a request costs). Besides
req/s and latency it prints each server's CPU time per request (from /proc), which a busy
machine disturbs less than throughput. The recorded figure is auth's req/s over the bare app's.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
from contextlib import ExitStack
from pathlib import Path

from results import record
from support import BIN, ROOT, free_port, percentile, serve, timed_calls

from services.registry import REGISTRY
from shared.testing import TestEnvironment

BENCHMARK = "auth_me"
TARGET_RATIO = 0.5
#: No measured loop runs longer than this, whatever the request count.
TIME_CAP_SECONDS = 60.0
ME_PATH = "/v1/users/me"
#: gunicorn's spec of the baseline app: this module's factory (bench/ is put on PYTHONPATH).
BARE_APP = "auth_me:create_bare_app()"


def create_bare_app():
    """The baseline: Flask with one JSON route shaped like `me`'s answer, and /healthz."""
    from flask import Flask

    app = Flask("bare")

    @app.get(ME_PATH)
    def me():
        return {
            "id": "0b8f6d0e-5c1e-4c53-9d3e-0d6f1f1f7a11",
            "email": "bench@example.com",
            "created_at": "2026-01-01T00:00:00+00:00",
        }

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app


def gunicorn_command(app: str, port: int) -> list[str]:
    """gunicorn with the deployed settings file, on a loopback port."""
    return [
        str(BIN / "gunicorn"), "--config", str(ROOT / "deploy" / "gunicorn.conf.py"),
        "--bind", f"127.0.0.1:{port}", app,
    ]  # fmt: skip


def server_cpu_seconds(master_pid: int) -> float:
    """CPU time (user + system) used so far by a gunicorn master and its workers (Linux /proc)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a process that ended while we looked
        pid, ppid = int(stat.parent.name), int(fields[1])
        if master_pid in (pid, ppid):
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def register_user(port: int) -> str:
    """Register a user on auth directly; return its access token."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = json.dumps({"email": "bench@example.com", "password": "bench password"})
    conn.request("POST", "/v1/auth/register", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    answer = json.loads(response.read())
    if response.status != 201:
        raise RuntimeError(f"registration failed: {response.status} {answer}")
    return answer["access_token"]


def drive(port: int, token: str, requests: int, clients: int) -> tuple[float, list[float]]:
    """`requests` GETs of `me` split over `clients` keep-alive connections: (seconds, latencies)."""
    headers = {"Authorization": f"Bearer {token}"}
    connections = [
        http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(clients)
    ]

    def caller(conn: http.client.HTTPConnection):
        def call() -> None:
            conn.request("GET", ME_PATH, headers=headers)
            response = conn.getresponse()
            data = response.read()
            if response.status != 200:
                raise RuntimeError(f"{ME_PATH} answered {response.status}: {data[:300]!r}")

        return call

    callers = [caller(conn) for conn in connections]
    try:
        for call in callers:
            for _ in range(20):  # open the connection and warm the server's caches
                call()
        return timed_calls(callers, requests // clients, time_cap=TIME_CAP_SECONDS)
    finally:
        for conn in connections:
            conn.close()


def main(argv: list[str] | None = None) -> int:
    """Provision, serve auth and the bare app, measure both in rounds, record the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per loop")
    parser.add_argument("--clients", default="1,4,8", help="client counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two servers")
    args = parser.parse_args(argv)
    client_counts = [int(n) for n in args.clients.split(",")]

    with TestEnvironment(REGISTRY) as environment, ExitStack() as servers:
        env = {**os.environ, **environment.env(), "PYTHONPATH": f"{ROOT / 'bench'}:{ROOT}"}
        auth_port, bare_port = free_port(), free_port()
        auth_pid = servers.enter_context(
            serve("auth", gunicorn_command("services.auth.wsgi:app", auth_port), env, auth_port)
        )
        bare_pid = servers.enter_context(
            serve("bare flask", gunicorn_command(BARE_APP, bare_port), env, bare_port)
        )
        token = register_user(auth_port)
        totals = {}
        for clients in client_counts:
            for _ in range(args.rounds):
                for label, port, pid in (
                    ("auth", auth_port, auth_pid),
                    ("bare", bare_port, bare_pid),
                ):
                    cpu_before = server_cpu_seconds(pid)
                    seconds, latencies = drive(port, token, args.requests // args.rounds, clients)
                    total = totals.setdefault((label, clients), [0.0, [], 0.0])
                    total[0] += seconds
                    total[1] += latencies
                    total[2] += server_cpu_seconds(pid) - cpu_before

    print(f"cpus: {os.cpu_count()}  python: {sys.version.split()[0]}")
    # Server CPU per request holds steadier than req/s on a shared machine (it excludes waiting).
    print("server clients      n    req/s  p50 ms  p99 ms mean ms  server CPU ms/req")
    for (label, clients), (seconds, latencies, cpu) in totals.items():
        print(
            f"{label:<6} {clients:>7} {len(latencies):>6} {len(latencies) / seconds:>8.0f} "
            f"{percentile(latencies, 0.5) * 1000:>7.2f} {percentile(latencies, 0.99) * 1000:>7.2f} "
            f"{statistics.fmean(latencies) * 1000:>7.2f} {cpu / len(latencies) * 1000:>18.3f}"
        )
    for clients in client_counts:
        rates = {}
        for label in ("auth", "bare"):
            seconds, latencies, _cpu = totals[(label, clients)]
            rates[label] = len(latencies) / seconds
        mode = "sequential" if clients == 1 else f"{clients} clients"
        record(
            BENCHMARK,
            f"GET /v1/users/me, {mode}",
            rates["auth"],
            "req/s",
            baseline=rates["bare"],
            baseline_label="bare Flask route, same gunicorn config",
            target=TARGET_RATIO,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
