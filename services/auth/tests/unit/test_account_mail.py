"""Account tokens and the mail that carries them: derived, stable, never in a repr."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlparse

from services.auth.account_tokens import (
    EMAIL_VERIFICATION,
    PASSWORD_RESET,
    AccountTokenKey,
    token_hash,
)
from services.auth.mail import SmtpSettings, compose, message_id


def test_a_token_is_derived_from_its_row_and_purpose_and_only_its_hash_is_kept():
    key = AccountTokenKey(b"signing key")
    row = uuid.uuid4()
    token = key.token(row, PASSWORD_RESET)
    assert token == key.token(row, PASSWORD_RESET)
    assert token != key.token(row, EMAIL_VERIFICATION)
    assert token != AccountTokenKey(b"another key").token(row, PASSWORD_RESET)
    assert len(token) == 43 and str(row) not in token
    assert token_hash(token) != token and len(token_hash(token)) == 64


def test_the_message_id_depends_only_on_the_event():
    event_id = str(uuid.uuid4())
    assert message_id(event_id, "dockyard.test") == f"<{event_id}.account-mail@dockyard.test>"


def test_the_mail_links_to_the_app_with_the_token():
    mail = compose(
        purpose=PASSWORD_RESET,
        to="ada@example.com",
        token="a+b/c",
        app_url="https://app.example/",
        minutes=30,
        sender="Dockyard <no-reply@dockyard.test>",
        msg_id="<x@dockyard.test>",
    )
    assert mail["To"] == "ada@example.com" and mail["Message-ID"] == "<x@dockyard.test>"
    (link,) = [word for word in mail.get_content().split() if word.startswith("https://")]
    parsed = urlparse(link)
    assert parsed.path == "/reset-password"
    assert parse_qs(parsed.query)["token"] == ["a+b/c"]


def test_smtp_settings_never_show_the_password():
    smtp = SmtpSettings("mail", 587, "user", "hunter2-secret", True, 10, "a@b.test")
    assert "hunter2" not in repr(smtp) and smtp.domain == "b.test"
