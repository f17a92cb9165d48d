"""A real OpenID provider on loopback for tests: oidc-provider-mock, with PKCE enforced.

The mock issues codes and signed ID tokens (nonce included) but does not check PKCE; the
wrapper below does what a real provider does: it remembers each code's S256 challenge and
refuses a token request whose code_verifier does not match it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import oidc_provider_mock
import requests
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from services.auth.oidc_providers import parse_oidc_providers
from shared.testing import ServerThread


def _refuse(start_response, description: str) -> list[bytes]:
    body = json.dumps({"error": "invalid_grant", "error_description": description}).encode()
    start_response("400 Bad Request", [("Content-Type", "application/json")])
    return [body]


class PkceEnforcing:
    """WSGI middleware: the authorization request must carry an S256 challenge that the
    token request's code_verifier then matches."""

    def __init__(self, app) -> None:
        self.app = app
        self.challenges: dict[str, str] = {}

    def __call__(self, environ, start_response):
        """Check PKCE on the authorization and token endpoints; pass everything on."""
        path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
        if path == "/oauth2/authorize" and method == "POST":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            if query.get("code_challenge_method") != ["S256"] or "code_challenge" not in query:
                return _refuse(start_response, "PKCE S256 challenge required")
            challenge = query["code_challenge"][0]

            def remember_code(status, headers, exc_info=None):
                location = dict(headers).get("Location", "")
                for code in parse_qs(urlsplit(location).query).get("code", []):
                    self.challenges[code] = challenge
                return start_response(status, headers, exc_info)

            return self.app(environ, remember_code)
        if path == "/oauth2/token" and method == "POST":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            form = parse_qs(body.decode())
            challenge = self.challenges.pop(form.get("code", [""])[0], None)
            verifier = form.get("code_verifier", [""])[0]
            if challenge is None or create_s256_code_challenge(verifier) != challenge:
                return _refuse(start_response, "PKCE verification failed")
        return self.app(environ, start_response)


@contextmanager
def oidc_provider() -> Iterator[str]:
    """An OpenID provider on a loopback port (nonce required, PKCE enforced); its issuer URL."""
    app = oidc_provider_mock.app(require_nonce=True)
    with ServerThread(PkceEnforcing(app)) as server:
        yield server.url


def provider_settings(
    issuer: str, *, redirect_uris: list[str], names: tuple[str, ...] = ("mock",), **extra: Any
) -> dict[str, Any]:
    """AuthSettings overrides configuring `issuer` under each of `names`."""
    entry = {"issuer": issuer, "client_id": "dockyard-test", "redirect_uris": redirect_uris}
    return {
        "OIDC_PROVIDERS": parse_oidc_providers(
            json.dumps({name: {**entry, **extra} for name in names})
        ),
        "OIDC_CLIENT_SECRETS": {name: "test-client-secret" for name in names},
    }


def authorize(
    authorization_url: str, *, subject: str, email: str, email_verified: bool = True
) -> dict[str, str]:
    """Sign in at the provider as `subject` (with these claims), as a user's browser would.

    Returns the query the provider redirects back with: `code` and `state`.
    """
    parts = urlsplit(authorization_url)
    base = f"{parts.scheme}://{parts.netloc}"
    claims = {"email": email, "email_verified": email_verified}
    requests.put(f"{base}/users/{subject}", json=claims, timeout=10).raise_for_status()
    response = requests.post(
        authorization_url, data={"sub": subject}, allow_redirects=False, timeout=10
    )
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    redirected = parse_qs(urlsplit(location).query)
    assert "code" in redirected, location
    return {"code": redirected["code"][0], "state": redirected["state"][0], "location": location}
