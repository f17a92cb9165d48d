"""Which passwords are too guessable: zxcvbn's estimate, with the account's email as a hint."""

from __future__ import annotations

from zxcvbn import zxcvbn

#: zxcvbn's score 3 is "safely unguessable: moderate protection from offline slow-hash attacks".
MIN_SCORE = 3
#: zxcvbn refuses longer input (its matching grows fast with length): a longer password is judged
#: by its start (a strong start makes a strong password; the whole one is still hashed).
_SCORED_LENGTH = 72


class WeakPassword(ValueError):
    """The password is too easy to guess; the message says why and how to do better."""


def email_hints(email: str | None) -> list[str]:
    """The parts of an email a guesser would try: the whole address, its name and domain words."""
    if not email:
        return []
    local, _, domain = email.lower().partition("@")
    return [
        email.lower(),
        local,
        *local.replace("_", ".").replace("-", ".").split("."),
        *domain.split("."),
    ]


def check_password(password: str, *, email: str | None = None) -> None:
    """Raise WeakPassword unless zxcvbn scores the password at least MIN_SCORE."""
    result = zxcvbn(password[:_SCORED_LENGTH], user_inputs=email_hints(email))
    if result["score"] >= MIN_SCORE:
        return
    feedback = result.get("feedback") or {}
    parts = [feedback.get("warning") or "This password is too easy to guess."]
    parts += feedback.get("suggestions") or ["Add another word or two."]
    raise WeakPassword(" ".join(part.rstrip(".") + "." for part in parts if part))
