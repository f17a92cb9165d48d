"""`dockyard sagas list|show|retry|sweep`: see and steer the sagas every service orchestrates."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from sqlalchemy.orm import Session

from shared.config import ConfigError
from shared.db import make_engine
from shared.messaging.runtime import service_settings, start_metrics_server, start_runtime
from shared.reconnect import Reconnects
from shared.registry import Service, ServiceRegistry
from shared.sagas.machine import SagaNotRetryable
from shared.sagas.metrics import SagaCollector
from shared.sagas.store import SagaNotFound, Sagas

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """Arguments of `dockyard sagas`."""
    parser = argparse.ArgumentParser(prog="dockyard sagas", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="the newest sagas, FAILED ones with their reason")
    listing.add_argument("--service", help="only this service's sagas")
    listing.add_argument("--state", action="append", default=[], help="only sagas in STATE")
    listing.add_argument("--limit", type=int, default=50)
    show = sub.add_parser("show", help="one saga with its history (JSON)")
    show.add_argument("id")
    show.add_argument("--service")
    retry = sub.add_parser("retry", help="start a FAILED saga's step again")
    retry.add_argument("id")
    retry.add_argument("--service")
    sweep = sub.add_parser("sweep", help="apply step timeouts until stopped")
    sweep.add_argument("service")
    sweep.add_argument("--interval", type=float, default=1.0, help="seconds between passes")
    sweep.add_argument("--once", action="store_true", help="one pass, then exit")
    sweep.add_argument("--metrics-port", type=int, default=None, help="serve /metrics here")
    return parser


def _orchestrators(registry: ServiceRegistry, name: str | None) -> list[tuple[Service, Sagas]]:
    services = registry.with_database([name] if name else [])
    found = [(service, service.sagas()) for service in services]
    found = [(service, sagas) for service, sagas in found if sagas is not None]
    if name and not found:
        raise ConfigError(f"service {name!r} orchestrates no sagas")
    return found


def _engine(service: Service):
    return make_engine(service_settings(service).DATABASE_URL, schema=service.schema, pool_size=1)


def _as_dict(service: Service, record) -> dict:
    return {
        "service": service.name,
        "id": record.id,
        "kind": record.kind,
        "subject": record.subject,
        "state": record.state.value,
        "step": record.step,
        "attempt": record.attempt,
        "deadline": record.deadline.isoformat() if record.deadline else None,
        "reason": record.reason,
        "data": record.data,
        "received": record.received,
        "history": record.history,
    }


def cmd_list(args: argparse.Namespace, registry: ServiceRegistry) -> int:
    """Print one line per saga, newest first."""
    for service, sagas in _orchestrators(registry, args.service):
        engine = _engine(service)
        with Session(engine) as session:
            rows = sagas.list(session, states=[s.upper() for s in args.state], limit=args.limit)
        engine.dispose()
        for record, updated_at in rows:
            reason = f"  {record.reason}" if record.reason else ""
            print(
                f"{record.id}  {service.name}  {record.kind}  {record.state.value:<12} "
                f"{record.step}  {updated_at.isoformat()}{reason}"
            )
    return 0


def _find(args: argparse.Namespace, registry: ServiceRegistry, act) -> int:
    for service, sagas in _orchestrators(registry, args.service):
        engine = _engine(service)
        try:
            with Session(engine) as session, session.begin():
                record = act(sagas, session)
        except SagaNotFound:
            continue
        finally:
            engine.dispose()
        print(json.dumps(_as_dict(service, record), indent=2, default=str))
        return 0
    print(f"dockyard sagas: no saga {args.id}", file=sys.stderr)
    return 1


def cmd_show(args: argparse.Namespace, registry: ServiceRegistry) -> int:
    """Print one saga as JSON."""
    return _find(args, registry, lambda sagas, session: sagas.get(session, args.id))


def cmd_retry(args: argparse.Namespace, registry: ServiceRegistry) -> int:
    """Start a FAILED saga's step again and print it."""
    try:
        return _find(args, registry, lambda sagas, session: sagas.retry(session, args.id))
    except SagaNotRetryable as exc:
        print(f"dockyard sagas: {exc}", file=sys.stderr)
        return 1


def cmd_sweep(args: argparse.Namespace, registry: ServiceRegistry) -> int:
    """Apply passed deadlines every `--interval` seconds until SIGTERM or SIGINT."""
    ((_, sagas),) = _orchestrators(registry, args.service)
    runtime = start_runtime(registry, args.service, "sagas")
    if args.metrics_port:
        from prometheus_client import REGISTRY

        REGISTRY.register(SagaCollector(runtime.engine, sagas))
        start_metrics_server(args.metrics_port)
    log.info("sweeping %s's sagas every %ss", args.service, args.interval)
    reconnects = Reconnects("saga sweep", log)
    while True:
        pause = args.interval
        try:
            swept = sagas.sweep(runtime.engine)
            reconnects.succeeded()
            if swept:
                log.info("applied %d saga deadlines", len(swept))
        except Exception as exc:  # noqa: BLE001 - a lost database must not end the sweeper
            pause = min(pause, reconnects.failed(exc))
        if args.once or runtime.stopper.wait(pause):
            break
    runtime.engine.dispose()
    return 0


COMMANDS = {"list": cmd_list, "show": cmd_show, "retry": cmd_retry, "sweep": cmd_sweep}


def main(argv: list[str] | None, *, registry: ServiceRegistry) -> int:
    """Run `dockyard sagas <command>` for the services of `registry`."""
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args, registry)
