"""A consumer process for the crash tests: `python -m shared.tests.probe_consumer <name> <key>`.

It runs one subscription on the auth schema of the test run named by the environment, whose
handler writes what it saw to probe_log and then dawdles a little, so a test can kill it while
a batch is in flight.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

from services.auth.models import messaging_tables
from shared.db import make_engine
from shared.messaging.consumer import Consumer, Subscription
from shared.messaging.runtime import Stopper
from shared.tests.messaging_support import log_probe

#: Logged once the subscription's queue is declared and consumed.
READY = "probe consumer ready"
log = logging.getLogger(__name__)


def main(name: str, routing_key: str) -> int:
    """Consume `routing_key` as subscription `name` until SIGTERM."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    engine = make_engine(os.environ["AUTH_DATABASE_URL"], schema="auth", pool_size=2)
    stopper = Stopper()
    stopper.install_signal_handlers()

    def handle(envelope, session) -> None:
        log_probe(name, envelope, session)
        time.sleep(0.002)

    consumer = Consumer(
        [Subscription(name, [routing_key], handle)],
        engine=engine,
        tables=messaging_tables,
        amqp_url=os.environ["AMQP_URL"],
        namespace=os.environ["DOCKYARD_NAMESPACE"],
        stopper=stopper,
    )
    threading.Thread(target=lambda: consumer.ready.wait() and log.info(READY), daemon=True).start()
    consumer.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
