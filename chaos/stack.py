"""The whole Dockyard stack as `make up` runs it, on throwaway PostgreSQL, RabbitMQ and Redis.

Every process of the Procfile runs as a ManagedProcess (its own process group, so a SIGKILL
takes a gunicorn master's or a Celery worker's children with it), its command expanded by the
shell as honcho would, on free loopback ports. The infrastructure is the run's own
(shared.throwaway), so a drill may restart it without touching the machine's shared services;
the database is provisioned like any test run's (shared.testing.TestEnvironment).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from honcho.environ import parse_procfile

from services.registry import REGISTRY
from shared.processes import ManagedProcess, stop_all
from shared.testing import TestEnvironment
from shared.throwaway import PostgresNode, RabbitNode, RedisNode, free_ports

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
#: Procfile entries the drill leaves out: `ready` only announces, and idles forever.
SKIPPED = {"ready"}
#: Limits far above what the drill's traffic (one loopback address) needs.
GENEROUS_LIMITS = {
    "AUTH_LOGIN_LIMIT_PER_IP": "100000/minute",
    "AUTH_LOGIN_FREE_FAILURES": "100000",
    "AUTH_REGISTER_LIMIT_PER_IP": "100000/minute",
    "TASKS_CREATE_LIMIT_PER_USER": "100000/minute",
    "TASKS_MAX_ACTIVE_TASKS_PER_USER": "1000",
}
#: Processes that serve Prometheus metrics on a port of their own (R6 reads the relays' tally).
METRICS = re.compile(r"^relay-")


@dataclass
class Stack:
    """The run's infrastructure, environment and every Dockyard process, by Procfile name."""

    root: Path
    postgres: PostgresNode
    rabbit: RabbitNode
    redis: RedisNode
    environment: TestEnvironment
    env: dict[str, str]
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        """The gateway's public GraphQL endpoint."""
        return f"http://127.0.0.1:{self.env['GATEWAY_PORT']}/graphql"

    def names(self, prefix: str) -> list[str]:
        """The processes whose Procfile name starts with `prefix`."""
        return sorted(name for name in self.processes if name.startswith(prefix))

    def metrics(self, name: str) -> str | None:
        """The /metrics text of a relay, None when it does not answer."""
        port = self.metrics_ports.get(name)
        if port is None:
            return None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
                return answer.read().decode()
        except OSError:
            return None

    def dead(self) -> list[str]:
        """Processes that exited by themselves (none may: each must ride out every fault)."""
        return [name for name, process in self.processes.items() if not process.running]

    def restart(self, name: str) -> None:
        """Start an exited process again (after a SIGKILL the drill sent)."""
        self.processes[name].start()


def start_stack() -> Stack:
    """Start the infrastructure, provision the database, then every Procfile process."""
    root = Path(tempfile.mkdtemp(prefix="dockyard-chaos-"))
    # The postgres user must reach its data directory below this one.
    os.chmod(root, 0o755)
    for part in ("pg", "rabbit", "redis", "logs", "files", "inputs", "outputs"):
        (root / part).mkdir()
    postgres = PostgresNode.configure(root / "pg")
    rabbit = RabbitNode.configure(root / "rabbit")
    redis = RedisNode.configure(root / "redis")
    postgres.start()
    redis.start()
    rabbit.start(timeout=180)
    environment = TestEnvironment(
        services=REGISTRY,
        admin_url=postgres.admin_url,
        pg_host=postgres.host,
        amqp_url=rabbit.url,
        redis_url=redis.url,
    )
    environment.set_up()
    gateway, internal, auth, files, tasks = free_ports(5)
    env = {
        **os.environ,
        **environment.env(),
        **GENEROUS_LIMITS,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "LOG_LEVEL": "INFO",
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(gateway),
        "GATEWAY_INTERNAL_HOST": "127.0.0.1",
        "GATEWAY_INTERNAL_PORT": str(internal),
        "SERVICES_HOST": "127.0.0.1",
        "AUTH_PORT": str(auth),
        "FILES_PORT": str(files),
        "TASKS_PORT": str(tasks),
        "AUTH_SERVICE_URL": f"http://127.0.0.1:{auth}",
        "AUTH_JWKS_URL": f"http://127.0.0.1:{auth}/v1/.well-known/jwks.json",
        "FILES_SERVICE_URL": f"http://127.0.0.1:{files}",
        "TASKS_SERVICE_URL": f"http://127.0.0.1:{tasks}",
        "FILES_STORAGE_DIR": str(root / "files"),
        "TASKS_INPUT_DIR": str(root / "inputs"),
        "TASKS_OUTPUT_DIR": str(root / "outputs"),
        "TASKS_WEBHOOK_ALLOW_PRIVATE": "true",
    }
    stack = Stack(root, postgres, rabbit, redis, environment, env)
    procfile = parse_procfile((ROOT / "Procfile").read_text())
    for name, command in procfile.processes.items():
        if name in SKIPPED:
            continue
        if METRICS.match(name):
            (port,) = free_ports(1)
            stack.metrics_ports[name] = port
            command = f"{command} --metrics-port {port}"
        stack.processes[name] = ManagedProcess(
            name, ["sh", "-c", f"exec {command}"], env=env, log=root / "logs" / f"{name}.log",
            cwd=ROOT,
        )  # fmt: skip
    for process in stack.processes.values():
        process.start()
    base = "http://127.0.0.1:{}/readyz"
    stack.processes["auth"].wait_ready(url=base.format(auth), timeout=120)
    stack.processes["files"].wait_ready(url=base.format(files), timeout=120)
    stack.processes["tasks"].wait_ready(url=base.format(tasks), timeout=120)
    stack.processes["gateway"].wait_ready(url=f"http://127.0.0.1:{internal}/healthz", timeout=120)
    for name in stack.names("consume-"):
        stack.processes[name].wait_ready(log_line="consumer started", timeout=120)
    time.sleep(1)
    if dead := stack.dead():
        raise RuntimeError(f"processes exited at start-up: {dead}; logs in {root / 'logs'}")
    return stack


def stop_stack(stack: Stack, *, keep_logs: bool = False) -> None:
    """Stop every process and the infrastructure; remove the run's directory unless kept."""
    stop_all(list(stack.processes.values()), timeout=20)
    stack.rabbit.stop()
    stack.redis.stop()
    stack.postgres.stop()
    if not keep_logs:
        shutil.rmtree(stack.root, ignore_errors=True)
