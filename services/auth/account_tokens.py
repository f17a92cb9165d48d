"""Single-use account tokens (password reset, email verification): derived, never stored.

A token is an HMAC of its row's id under a key derived from the signing key; the database keeps
only its SHA-256, and no event, broker message or Celery job carries it: the mail worker derives
it (the row id from the event id) to write it into the mail, the same on every try. Rotating
the signing key voids the links still in flight (the user asks again).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

#: Sets these keys apart from any other use of the signing key.
_KEY_LABEL = b"dockyard account tokens v1\x00"

PASSWORD_RESET = "password_reset"
EMAIL_VERIFICATION = "email_verification"


class AccountTokenKey:
    """Derives the token of an account-token row and hashes presented tokens."""

    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(_KEY_LABEL + secret).digest()

    @classmethod
    def from_private_pem(cls, private_pem: str) -> AccountTokenKey:
        """The key of the service's current signing key."""
        return cls(private_pem.encode())

    def token(self, token_id: uuid.UUID, purpose: str) -> str:
        """The token mailed for row `token_id` (256 bits, URL-safe)."""
        mac = hmac.new(self._key, f"{purpose}:{token_id}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    """What the database stores of a token and looks a presented one up by."""
    return hashlib.sha256(token.encode()).hexdigest()
