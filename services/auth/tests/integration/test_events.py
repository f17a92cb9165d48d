"""Auth's events travel outbox → relay → RabbitMQ → its own consumer, which heals the deny list."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import jwt
import pytest
from amqp.exceptions import NotFound
from kombu import Connection
from sqlalchemy import text

from services.auth.tests.conftest import bearer
from shared.processes import ManagedProcess, stop_all

DOCKYARD = str(Path(sys.executable).with_name("dockyard"))


@pytest.fixture
def relay_and_consumer(tmp_path):
    """`dockyard relay auth` and `dockyard consume auth` as real processes."""
    processes = [
        ManagedProcess(
            command, [DOCKYARD, command, "auth"], env=os.environ.copy(), log=tmp_path / command
        ).start()
        for command in ("relay", "consume")
    ]
    wait_for_consumer(f"{os.environ['DOCKYARD_NAMESPACE']}.consumer.auth.revocation-list")
    # A relay still importing on a loaded machine would eat into a test's own deadline.
    processes[0].wait_ready(log_line="relay started", timeout=60)
    yield processes
    stop_all(processes, timeout=20)
    for process in processes:
        assert process.process.returncode == 0, process.logs()[-2000:]


def wait_for_consumer(queue: str, timeout: float = 30) -> None:
    """Block until `queue` exists with a consumer (events before that would be unroutable)."""
    deadline = time.monotonic() + timeout
    with Connection(os.environ["AMQP_URL"]) as connection:
        while True:
            channel = connection.channel()
            try:
                _name, _messages, consumers = channel.queue_declare(queue, passive=True)
                if consumers:
                    return
            except NotFound:
                pass
            finally:
                if channel.is_open:
                    channel.close()
            assert time.monotonic() < deadline, f"no consumer on {queue}"
            time.sleep(0.2)


def test_logout_commits_a_tokens_revoked_event_with_the_family(auth_app, client, registered):
    client.post("/v1/auth/logout", headers=bearer(registered["access_token"]))
    family = jwt.decode(registered["access_token"], options={"verify_signature": False})["fam"]
    engine = auth_app.extensions["auth"].engine
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT payload FROM outbox WHERE event_type = 'TokensRevoked' "
                "AND payload->>'family_id' = :family"
            ),
            {"family": family},
        ).all()
    # The relay of another test may already have published (and deleted) it; if still here,
    # it must say what was revoked and for how long.
    for (payload,) in rows:
        assert payload["reason"] == "logout"
        assert payload["ttl_seconds"] == 900


def test_the_consumer_restores_a_revocation_the_direct_write_lost(
    auth_app, client, registered, relay_and_consumer
):
    family = jwt.decode(registered["access_token"], options={"verify_signature": False})["fam"]
    revocations = auth_app.extensions["auth"].revocations
    key = f"{revocations.prefix}:fam:{family}"
    # Simulate the direct write getting lost: only the event can bring the key back. The relay
    # is held meanwhile, or a quick consumer would restore the key before it is deleted.
    relay = relay_and_consumer[0]
    os.kill(relay.pid, signal.SIGSTOP)
    try:
        logout = client.post("/v1/auth/logout", headers=bearer(registered["access_token"]))
        assert logout.status_code
        revocations.client.delete(key)
    finally:
        os.kill(relay.pid, signal.SIGCONT)
    deadline = time.monotonic() + 20
    while not revocations.client.exists(key):
        assert time.monotonic() < deadline, "TokensRevoked never reached the consumer"
        time.sleep(0.1)
    assert 0 < revocations.client.ttl(key) <= 900
    assert client.get("/v1/users/me", headers=bearer(registered["access_token"])).status_code == 401
