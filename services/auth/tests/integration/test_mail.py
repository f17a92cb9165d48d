"""Account mail end to end: outbox → relay → RabbitMQ → consumer → Celery worker → SMTP.

A real SMTP server (aiosmtpd) listens on loopback; the relay, the consumer and the mail worker
are real processes (services/auth/tests/mailbox.py). The tests read the mail the server received
and follow its link.
"""

from __future__ import annotations

import time

import pytest
from aiosmtpd.controller import Controller

from services.auth import jobs
from services.auth.mail import MailRefused, MailUnavailable, SmtpSettings, compose, deliver
from services.auth.tests.conftest import bearer, unique_email
from services.auth.tests.mailbox import (
    APP_URL,
    event_id_of,
    free_port,
    link_token,
    restart,
    sent_rows,
)
from shared.config import CommonSettings

STRONG = "rusty anchor at dawn"
NEWER = "violet harbour lantern"


def register(client, email: str | None = None) -> dict:
    """Register a user over the REST API."""
    email = email or unique_email("mail")
    response = client.post("/v1/auth/register", json={"email": email, "password": STRONG})
    assert response.status_code == 201, response.json
    return {"email": email, **response.json}


def test_a_reset_mail_arrives_once_and_its_link_resets_the_password(
    client, auth_app, smtp, pipeline
):
    user = register(client)
    assert (
        client.post("/v1/auth/password-reset/request", json={"email": user["email"]}).status_code
        == 204
    )
    (mail,) = smtp.mailbox.wait_for(user["email"])
    assert mail["Subject"] == "Reset your Dockyard password"
    assert mail["From"] == "Dockyard <no-reply@dockyard.test>"
    assert "30 minutes" in mail.get_content()
    token = link_token(mail, "reset-password")
    assert sent_rows(auth_app, event_id_of(mail)) == 1

    answer = client.post("/v1/auth/password-reset", json={"token": token, "new_password": NEWER})
    assert answer.status_code == 204, answer.json
    login = client.post("/v1/auth/login", json={"email": user["email"], "password": NEWER})
    assert login.status_code == 200
    assert client.get("/v1/users/me", headers=bearer(user["access_token"])).status_code == 401

    # No process wrote the token into its log.
    for process in pipeline.values():
        assert token not in process.logs()


def test_a_verification_mail_confirms_the_address(client, smtp, pipeline):
    user = register(client)
    response = client.post("/v1/users/me/email-verification", headers=bearer(user["access_token"]))
    assert response.status_code == 204
    (mail,) = smtp.mailbox.wait_for(user["email"])
    token = link_token(mail, "verify-email")
    verified = client.post("/v1/auth/email-verification", json={"token": token})
    assert verified.status_code == 200 and verified.json["email_verified"] is True


def test_a_job_sent_again_for_the_same_event_sends_no_second_mail(client, auth_app, smtp, pipeline):
    user = register(client)
    client.post("/v1/auth/password-reset/request", json={"email": user["email"]})
    (mail,) = smtp.mailbox.wait_for(user["email"])
    event_id = event_id_of(mail)
    worker = pipeline["worker"]
    before = worker.logs().count("'already-sent'")
    jobs.send_account_email(
        event_id, "password_reset", email=user["email"], settings=CommonSettings()
    )
    deadline = time.monotonic() + 30
    while worker.logs().count("'already-sent'") == before:
        assert time.monotonic() < deadline, worker.logs()[-3000:]
        time.sleep(0.1)
    assert len(smtp.mailbox.to(user["email"])) == 1


def test_mail_waits_out_an_smtp_outage_with_backoff(client, smtp, pipeline):
    user = register(client)
    worker = pipeline["worker"]
    retries_before = worker.logs().count("MailUnavailable")
    smtp.stop()
    try:
        client.post("/v1/auth/password-reset/request", json={"email": user["email"]})
        deadline = time.monotonic() + 30
        while worker.logs().count("MailUnavailable") < retries_before + 2:
            assert time.monotonic() < deadline, worker.logs()[-3000:]
            time.sleep(0.1)
    finally:
        smtp.start()
    (mail,) = smtp.mailbox.wait_for(user["email"], timeout=30)
    assert link_token(mail, "reset-password")


def test_a_worker_killed_mid_send_loses_no_mail_and_sends_it_once(client, auth_app, smtp, pipeline):
    user = register(client)
    worker = pipeline["worker"]
    smtp.mailbox.holding = True
    try:
        held_before = smtp.mailbox.held
        client.post("/v1/auth/password-reset/request", json={"email": user["email"]})
        deadline = time.monotonic() + 30
        while smtp.mailbox.held == held_before:
            assert time.monotonic() < deadline, worker.logs()[-3000:]
            time.sleep(0.05)
        # The worker is inside the SMTP transaction, its job unacknowledged: it dies.
        worker.kill()
    finally:
        smtp.mailbox.holding = False
    assert smtp.mailbox.to(user["email"]) == []
    restart(worker)

    (mail,) = smtp.mailbox.wait_for(user["email"], timeout=60)
    assert sent_rows(auth_app, event_id_of(mail)) == 1
    time.sleep(2)
    assert len(smtp.mailbox.to(user["email"])) == 1
    token = link_token(mail, "reset-password")
    answer = client.post("/v1/auth/password-reset", json={"token": token, "new_password": NEWER})
    assert answer.status_code == 204


class Answering:
    """An SMTP handler that answers every message with one fixed reply."""

    def __init__(self, reply: str) -> None:
        self.reply = reply

    async def handle_DATA(self, _server, _session, _envelope) -> str:
        """Answer with the fixed reply."""
        return self.reply


@pytest.mark.parametrize(
    ("reply", "error"),
    [("451 4.3.0 Try again later", MailUnavailable), ("550 5.1.1 No such user", MailRefused)],
)
def test_a_deferral_is_retried_and_a_refusal_is_not(reply, error):
    controller = Controller(Answering(reply), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        smtp = SmtpSettings("127.0.0.1", controller.port, "", "", False, 10, "a@dockyard.test")
        mail = compose(
            purpose="password_reset",
            to="ada@example.com",
            token="t",
            app_url=APP_URL,
            minutes=30,
            sender=smtp.sender,
            msg_id="<x@dockyard.test>",
        )
        with pytest.raises(error):
            deliver(smtp, mail)
    finally:
        controller.stop()
    with pytest.raises(MailUnavailable):
        deliver(smtp, mail)
