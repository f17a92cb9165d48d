"""`dockyard consume <service>`: run a service's event subscriptions until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging

from shared.messaging.consumer import Consumer
from shared.messaging.runtime import start_metrics_server, start_runtime
from shared.registry import ServiceRegistry

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """Arguments of `dockyard consume`."""
    parser = argparse.ArgumentParser(
        prog="dockyard consume", description="Run a service's event subscriptions."
    )
    parser.add_argument("service", help="service whose subscriptions to run, e.g. files")
    parser.add_argument("--prefetch", type=int, default=1000, help="unacked messages per queue")
    parser.add_argument("--batch-size", type=int, default=500, help="events per transaction")
    parser.add_argument(
        "--inbox-retention-days",
        type=float,
        default=7.0,
        help="delete inbox rows older than this (0 keeps them)",
    )
    parser.add_argument("--metrics-port", type=int, default=None, help="serve /metrics here")
    return parser


def main(argv: list[str] | None, *, registry: ServiceRegistry) -> int:
    """`dockyard consume <service>`: run the service's subscriptions until SIGTERM or SIGINT."""
    args = build_parser().parse_args(argv)
    runtime = start_runtime(registry, args.service, "consumer")
    subscriptions = list(runtime.service.subscriptions())
    if not subscriptions:
        # Idle rather than exit: process managers (honcho) stop everything when one exits.
        log.warning("%s subscribes to nothing; nothing to consume, idling", args.service)
        while not runtime.stopper.wait(3600):
            pass
        return 0
    start_metrics_server(args.metrics_port)
    consumer = Consumer(
        subscriptions,
        engine=runtime.engine,
        tables=runtime.service.tables,
        amqp_url=runtime.settings.AMQP_URL,
        namespace=runtime.settings.NAMESPACE,
        prefetch=args.prefetch,
        batch_size=args.batch_size,
        inbox_retention_days=args.inbox_retention_days,
        queue_max_length=runtime.settings.EVENT_QUEUE_MAX_LENGTH,
        stopper=runtime.stopper,
    )
    consumer.run()
    runtime.engine.dispose()
    return 0
