"""Poll each process's health URL until all answer or a deadline passes, and say which did not.

The Procfile's `ready` process (with `--exit`: a one-shot check, exit status 0 when all answered,
as `make up`'s supervisord runs it; also for scripts and container healthchecks). Without
`--exit` it stays idle after reporting, for runners that stop everything when one process exits.
`--docker` also checks that the Docker engine the tasks worker and monitor use (DOCKER_HOST)
answers, and warns if not: everything else still runs, so this only tells. Standard library
only, except the Docker SDK that `--docker` imports.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import sys
import time
import urllib.error
import urllib.request

# Loopback health URLs must never go through a proxy configured in the environment; https://
# ones are checked against TLS_CA_FILE when set (services serving a self-signed certificate).
_OPENER = urllib.request.build_opener(
    urllib.request.ProxyHandler({}),
    urllib.request.HTTPSHandler(
        context=ssl.create_default_context(cafile=os.environ.get("TLS_CA_FILE") or None)
    ),
)


def probe(url: str, timeout: float) -> str | None:
    """None when `url` answers 2xx, otherwise a short reason."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return None if 200 <= response.status < 300 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}{_failed_checks(exc)}"
    except urllib.error.URLError as exc:
        return str(exc.reason)
    except OSError as exc:
        return str(exc) or type(exc).__name__


def _failed_checks(exc: urllib.error.HTTPError) -> str:
    # /readyz answers 503 with {"fields": {"database": "OperationalError", ...}}: name them.
    try:
        fields = json.loads(exc.read(4096) or b"{}").get("fields") or {}
    except (ValueError, AttributeError, OSError):
        return ""
    if not fields:
        return ""
    return " (" + ", ".join(f"{name}: {why}" for name, why in sorted(fields.items())) + ")"


def wait_until_ready(
    targets: dict[str, str], *, deadline: float, interval: float = 1.0, timeout: float = 2.0
) -> dict[str, str]:
    """Poll every target until all answer or `deadline` seconds pass; the failures by name."""
    pending = dict(targets)
    failures: dict[str, str] = {}
    end = time.monotonic() + deadline
    while True:
        for name, url in list(pending.items()):
            reason = probe(url, timeout)
            if reason is None:
                del pending[name]
                failures.pop(name, None)
            else:
                failures[name] = reason
        if not pending or time.monotonic() >= end:
            return failures
        time.sleep(interval)


def docker_engine_warning(docker_host: str, *, timeout: float = 5.0) -> str | None:
    """None when a Docker engine answers at `docker_host` (empty: the default socket), else why."""
    try:
        # Imported here: the healthchecks run this script without --docker.
        import docker

        # Connected as the worker does (services/tasks/containers.py DockerEngine), so a pass
        # here means the worker gets through too.
        client = docker.DockerClient(base_url=docker_host or None, version="auto", timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    # Whatever went wrong, the developer needs the same advice, and this process must not die:
    # it is one process of `make up` and only reports.
    except Exception as exc:
        where = (
            f"DOCKER_HOST={docker_host}"
            if docker_host
            else "the default socket unix:///var/run/docker.sock (DOCKER_HOST is unset)"
        )
        return "\n  ".join(
            [
                f"WARNING: no Docker engine answers at {where}: {exc}",
                "Nothing was stopped, but tasks end FAILED with ENGINE_UNREACHABLE until one does.",
                "Start one: `sudo systemctl start docker`, or without systemd or a registry",
                "`sudo bash .ci/docker-engine.sh`; the worker and monitor connect once it answers.",
                "Or set DOCKER_HOST in .env to an engine you can reach (rootless Docker:",
                "unix:///run/user/<uid>/docker.sock) and restart `make up`.",
            ]
        )
    return None


def parse_target(text: str) -> tuple[str, str]:
    """`name=url` -> (name, url)."""
    name, sep, url = text.partition("=")
    if not sep or not name or not url.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"expected name=http://host:port/path, got {text!r}")
    return name, url


def main(argv: list[str] | None = None) -> int:
    """Wait, report once, then idle (or exit with --exit)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="+", type=parse_target, metavar="name=url")
    parser.add_argument("--deadline", type=float, default=60.0, help="seconds to wait in all")
    parser.add_argument("--announce", help="URL to print once everything answers")
    parser.add_argument("--exit", action="store_true", help="exit 0/1 instead of staying idle")
    parser.add_argument(
        "--docker",
        action="store_true",
        help="then warn when no Docker engine answers at DOCKER_HOST (does not change the status)",
    )
    args = parser.parse_args(argv)

    # supervisord ends a process with SIGTERM; leave quietly rather than with a traceback.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    targets = dict(args.targets)
    failures = wait_until_ready(targets, deadline=args.deadline)
    if failures:
        detail = "; ".join(f"{name} ({targets[name]}: {why})" for name, why in failures.items())
        print(f"Dockyard did not come up within {args.deadline:g}s: {detail}", flush=True)
    elif args.announce:
        print(f"Dockyard is up: {args.announce}", flush=True)
    else:
        print("ready: " + ", ".join(targets), flush=True)
    if args.docker:
        warning = docker_engine_warning(os.environ.get("DOCKER_HOST", ""))
        if warning:
            print(warning, flush=True)
    if args.exit:
        return 1 if failures else 0
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())
