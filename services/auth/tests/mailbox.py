"""A real SMTP server on loopback (aiosmtpd) and the processes that send auth's mail.

Fixtures for the tests that read account mail: `smtp` (the server and its mailbox), `mail_env`
(the processes' environment) and `pipeline` (`dockyard relay auth`, `dockyard consume auth` and
the auth mail worker, running).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
import time
import uuid
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text

from shared.processes import ManagedProcess, stop_all

BIN = Path(sys.executable).parent
APP_URL = "https://app.dockyard.test"
MESSAGE_ID = re.compile(r"^<([0-9a-f-]{36})\.account-mail@dockyard\.test>$")


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mailbox:
    """aiosmtpd handler keeping accepted messages; it can hold one in DATA to stage a crash."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.holding = False
        self.held = 0

    async def handle_DATA(self, _server, _session, envelope) -> str:
        """Accept (and keep) the message, or hold it while `holding`, then defer it."""
        if self.holding:
            self.held += 1
            while self.holding:
                await asyncio.sleep(0.05)
            return "451 4.3.0 Try again later"
        self.messages.append(message_from_bytes(envelope.content, policy=default_policy))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        """The messages received for `address`."""
        return [m for m in self.messages if m["To"].addresses[0].addr_spec == address]

    def wait_for(self, address: str, count: int = 1, timeout: float = 60) -> list[EmailMessage]:
        """Block until `count` messages for `address` arrived; return them."""
        deadline = time.monotonic() + timeout
        while len(self.to(address)) < count:
            assert time.monotonic() < deadline, f"no mail for {address} after {timeout} s"
            time.sleep(0.1)
        return self.to(address)


class SmtpServer:
    """The aiosmtpd server on a fixed loopback port, which can go down and come back."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox
        self.port = free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        """Listen (again) on the same port."""
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        """Stop listening: connections are refused until start()."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture(scope="module")
def smtp(test_env):
    """A real SMTP server on loopback and the mailbox it delivers to."""
    server = SmtpServer(Mailbox())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mail_env(smtp) -> dict[str, str]:
    """The environment of the relay, consumer and worker: this run's resources, our SMTP."""
    return {
        **os.environ,
        "AUTH_SMTP_HOST": "127.0.0.1",
        "AUTH_SMTP_PORT": str(smtp.port),
        "AUTH_SMTP_FROM": "Dockyard <no-reply@dockyard.test>",
        "AUTH_PUBLIC_APP_URL": APP_URL,
        "AUTH_MAIL_RETRY_BACKOFF_SECONDS": "1",
        "AUTH_MAIL_RETRY_BACKOFF_MAX_SECONDS": "2",
        "AUTH_SMTP_TIMEOUT_SECONDS": "10",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="module")
def pipeline(mail_env, tmp_path_factory):
    """`dockyard relay auth`, `dockyard consume auth` and the auth mail worker, running."""
    # Imported here: that test module imports the conftest that imports these fixtures.
    from services.auth.tests.integration.test_events import wait_for_consumer

    logs = tmp_path_factory.mktemp("mail-logs")
    worker_argv = [
        BIN / "celery",
        "-A",
        "services.auth.worker:celery_app",
        "worker",
        "--concurrency",
        "1",
        "--hostname",
        f"auth-test-{uuid.uuid4().hex[:6]}@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    processes = {
        "consumer": ManagedProcess(
            "consumer", [BIN / "dockyard", "consume", "auth"], env=mail_env, log=logs / "consumer"
        ),
        "worker": ManagedProcess("worker", worker_argv, env=mail_env, log=logs / "worker"),
        "relay": ManagedProcess(
            "relay",
            [BIN / "dockyard", "relay", "auth", "--poll-interval", "0.2"],
            env=mail_env,
            log=logs / "relay",
        ),
    }
    try:
        processes["consumer"].start()
        for queue in ("reset-mail", "verification-mail"):
            wait_for_consumer(
                f"{os.environ['DOCKYARD_NAMESPACE']}.consumer.auth.{queue}", timeout=60
            )
        processes["worker"].start().wait_ready(log_line="ready.", timeout=90)
        processes["relay"].start()
        yield processes
    finally:
        stop_all(list(processes.values()), timeout=20)


def restart(worker: ManagedProcess) -> None:
    """Start the worker again and wait until it consumes."""
    starts = worker.logs().count("ready.")
    worker.start()
    deadline = time.monotonic() + 90
    while worker.logs().count("ready.") == starts:
        assert worker.running and time.monotonic() < deadline, worker.logs()[-3000:]
        time.sleep(0.1)


def link_token(message: EmailMessage, path: str) -> str:
    """The token of the link to `APP_URL/path` in the mail's body."""
    body = message.get_content()
    (link,) = re.findall(r"https://\S+", body)
    parsed = urlparse(link)
    assert f"{parsed.scheme}://{parsed.netloc}{parsed.path}" == f"{APP_URL}/{path}"
    return parse_qs(parsed.query)["token"][0]


def event_id_of(message: EmailMessage) -> str:
    """The event id the mail's Message-ID is derived from."""
    match = MESSAGE_ID.match(message["Message-ID"])
    assert match, message["Message-ID"]
    return match.group(1)


def sent_rows(auth_app, event_id: str) -> int:
    """How many sent_emails rows record the event."""
    with auth_app.extensions["auth"].engine.connect() as connection:
        return connection.execute(
            text("SELECT count(*) FROM sent_emails WHERE event_id = :e"), {"e": event_id}
        ).scalar_one()
