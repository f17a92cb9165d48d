"""A Celery app on shared.celery's settings for the reconnect tests: a task that notes each run.

`celery -A shared.tests.probe_celery:app worker|beat` with AMQP_URL, DOCKYARD_NAMESPACE,
PROBE_FILE (where `probe.record` appends "<tag> <unix time>" lines) and PROBE_BEAT_SECONDS (how
often beat sends `probe.record("beat")`, through shared.celery.beat_entry).
"""

from __future__ import annotations

import os
import time

from celery import Celery

from shared.celery import beat_entry, celery_config
from shared.config import CommonSettings

RECORD = "probe.record"

app = Celery("dockyard-probe")
app.config_from_object(
    {
        **celery_config(CommonSettings()),
        "beat_schedule": {
            "probe.beat": beat_entry(
                RECORD, float(os.environ.get("PROBE_BEAT_SECONDS", "3600")), args=("beat",)
            )
        },
    }
)


@app.task(name=RECORD)
def record(tag: str) -> None:
    """Append `tag` and the time to PROBE_FILE."""
    with open(os.environ["PROBE_FILE"], "a") as probe:
        probe.write(f"{tag} {time.time()}\n")


def runs(path: str) -> list[tuple[str, float]]:
    """The (tag, unix time) of each run noted in `path` so far."""
    try:
        with open(path) as probe:
            lines = probe.read().splitlines()
    except FileNotFoundError:
        return []
    return [(tag, float(at)) for tag, at in (line.split() for line in lines)]
