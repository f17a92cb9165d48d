"""The outbox collector reports at scrape time how much waits to be published, and how long."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from services.auth.models import messaging_tables
from shared.outbox.metrics import OutboxCollector
from shared.tests.messaging_support import (
    RelayProbed,
    commit_events,
    make_relay,
    running,
    scalar,
    wait_until,
)


def test_pending_and_lag_follow_the_outbox(test_env, auth_engine):
    registry = CollectorRegistry()
    registry.register(OutboxCollector(auth_engine, messaging_tables.outbox, source="auth"))

    def sample(name: str) -> float:
        return registry.get_sample_value(name, {"source": "auth"})

    before = scalar(auth_engine, "SELECT count(*) FROM outbox")
    commit_events(auth_engine, [RelayProbed(probe_id="m1", n=n) for n in range(3)])
    assert sample("dockyard_outbox_pending") == before + 3
    assert sample("dockyard_outbox_lag_seconds") > 0
    assert sample("dockyard_outbox_collector_up") == 1
    assert b'dockyard_outbox_lag_seconds{source="auth"}' in generate_latest(registry)

    with running(make_relay(test_env, auth_engine, poll_interval=0.1)):
        wait_until(lambda: sample("dockyard_outbox_pending") == 0, timeout=30, what="a drain")
    assert sample("dockyard_outbox_lag_seconds") == 0


def test_a_failing_query_reports_the_collector_down_instead_of_zeros(test_env):
    from sqlalchemy import create_engine

    broken = create_engine("postgresql+psycopg2://nobody@127.0.0.1:1/nowhere")
    registry = CollectorRegistry()
    registry.register(OutboxCollector(broken, messaging_tables.outbox, source="auth"))
    assert registry.get_sample_value("dockyard_outbox_collector_up", {"source": "auth"}) == 0
    assert registry.get_sample_value("dockyard_outbox_pending", {"source": "auth"}) is None
