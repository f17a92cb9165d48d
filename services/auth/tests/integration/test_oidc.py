"""Sign-in with OpenID Connect over the auth REST API, against a real provider on loopback."""

from __future__ import annotations

import json
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from openapi_spec_validator import validate
from sqlalchemy import func, select, text, update

from services.auth.models import Identity, OidcLogin, User
from services.auth.tests.conftest import bearer, unique_email
from services.auth.tests.oidc_provider import authorize, oidc_provider, provider_settings
from shared.testing import ServerThread

REDIRECT_URI = "https://app.example.com/auth/callback"


@pytest.fixture(scope="module")
def issuer():
    """The provider's issuer URL."""
    with oidc_provider() as url:
        yield url


@pytest.fixture(scope="module")
def oidc_app(test_env, issuer):
    """An auth app that knows the provider as `mock`, and as `other` with linking turned off."""
    from services.auth.app import create_app
    from services.auth.config import AuthSettings
    from services.auth.tests.conftest import GENEROUS_LIMITS

    settings = provider_settings(issuer, redirect_uris=[REDIRECT_URI], names=("mock",))
    other = provider_settings(
        issuer, redirect_uris=[REDIRECT_URI], names=("other",), link_verified_email=False
    )
    for key in settings:
        settings[key].update(other[key])
    return create_app(AuthSettings(**GENEROUS_LIMITS, **settings))


@pytest.fixture
def api(oidc_app):
    """A test client of the app with providers."""
    return oidc_app.test_client()


def start(api, provider="mock", redirect_uri=REDIRECT_URI):
    """POST /start; the response."""
    return api.post(
        "/v1/auth/oidc/start", json={"provider": provider, "redirect_uri": redirect_uri}
    )


def sign_in(api, *, subject, email, email_verified=True, provider="mock"):
    """Start, authorize at the provider, finish; the finish response."""
    started = start(api, provider)
    assert started.status_code == 200, started.json
    answer = authorize(
        started.json["authorization_url"],
        subject=subject,
        email=email,
        email_verified=email_verified,
    )
    assert answer["state"] == started.json["state"]
    return finish(api, provider=provider, code=answer["code"], state=answer["state"])


def finish(api, *, code, state, provider="mock"):
    """POST /finish; the response."""
    return api.post(
        "/v1/auth/oidc/finish", json={"provider": provider, "code": code, "state": state}
    )


def identities_of(app, subject: str) -> int:
    """How many identities the subject has."""
    with app.extensions["auth"].engine.connect() as connection:
        return connection.scalar(
            select(func.count()).select_from(Identity).where(Identity.subject == subject)
        )


def set_login_column(app, state: str, assignment: str, **params) -> None:
    """Change a stored sign-in behind the service's back."""
    with app.extensions["auth"].engine.begin() as connection:
        connection.execute(
            text(f"UPDATE auth.oidc_logins SET {assignment} WHERE state = :state"),
            {"state": state, **params},
        )


def test_the_configured_providers_are_listed(api, client):
    assert api.get("/v1/auth/oidc/providers").json == {"providers": ["mock", "other"]}
    assert client.get("/v1/auth/oidc/providers").json == {"providers": []}


def test_start_builds_a_code_flow_url_with_pkce_s256_state_and_nonce(api, oidc_app, issuer):
    response = start(api)
    assert response.status_code == 200
    url = response.json["authorization_url"]
    assert url.startswith(f"{issuer}/oauth2/authorize?")
    query = {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == "dockyard-test"
    assert query["redirect_uri"] == REDIRECT_URI
    assert set(query["scope"].split()) == {"openid", "email", "profile"}
    assert query["state"] == response.json["state"]
    assert query["code_challenge_method"] == "S256"
    with oidc_app.extensions["auth"].engine.connect() as connection:
        stored = connection.execute(
            select(OidcLogin).where(OidcLogin.state == response.json["state"])
        ).one()
    assert query["code_challenge"] == create_s256_code_challenge(stored.code_verifier)
    assert query["nonce"] == stored.nonce and len(stored.nonce) >= 32


def test_a_first_sign_in_creates_a_passwordless_user_and_the_next_finds_them(api, oidc_app):
    subject, email = f"sub-{uuid.uuid4().hex}", unique_email("oidc")
    first = sign_in(api, subject=subject, email=email)
    assert first.status_code == 200, first.json
    assert first.json["user"]["email"] == email
    me = api.get("/v1/users/me", headers=bearer(first.json["access_token"]))
    assert me.status_code == 200 and me.json["id"] == first.json["user"]["id"]

    again = sign_in(api, subject=subject, email=email)
    assert again.status_code == 200
    assert again.json["user"]["id"] == first.json["user"]["id"]
    assert identities_of(oidc_app, subject) == 1

    for password in ("", "x", "correct horse battery"):
        login = api.post("/v1/auth/login", json={"email": email, "password": password})
        assert login.status_code == 401, password


def test_a_user_is_found_by_subject_not_by_the_email_the_provider_now_gives(api):
    subject = f"sub-{uuid.uuid4().hex}"
    first = sign_in(api, subject=subject, email=unique_email("before"))
    renamed = sign_in(api, subject=subject, email=unique_email("after"))
    assert renamed.json["user"]["id"] == first.json["user"]["id"]
    assert renamed.json["user"]["email"] == first.json["user"]["email"]


def test_a_state_is_single_use(api):
    started = start(api).json
    answer = authorize(
        started["authorization_url"], subject=f"sub-{uuid.uuid4().hex}", email=unique_email()
    )
    assert finish(api, code=answer["code"], state=answer["state"]).status_code == 200
    replay = finish(api, code=answer["code"], state=answer["state"])
    assert replay.status_code == 401
    assert replay.json["code"] == "UNAUTHENTICATED"


def test_a_state_the_service_never_issued_is_refused(api):
    response = finish(api, code="whatever", state="made-up-state")
    assert response.status_code == 401


def test_a_failed_finish_still_spends_the_state(api):
    started = start(api).json
    answer = authorize(
        started["authorization_url"], subject=f"sub-{uuid.uuid4().hex}", email=unique_email()
    )
    assert finish(api, code="not-the-code", state=answer["state"]).status_code == 401
    assert finish(api, code=answer["code"], state=answer["state"]).status_code == 401


def test_an_expired_state_is_refused(api, oidc_app):
    started = start(api).json
    answer = authorize(
        started["authorization_url"], subject=f"sub-{uuid.uuid4().hex}", email=unique_email()
    )
    set_login_column(oidc_app, answer["state"], "expires_at = now() - interval '1 second'")
    assert finish(api, code=answer["code"], state=answer["state"]).status_code == 401


def test_a_state_started_for_one_provider_cannot_finish_at_another(api):
    started = start(api, "mock").json
    answer = authorize(
        started["authorization_url"], subject=f"sub-{uuid.uuid4().hex}", email=unique_email()
    )
    response = finish(api, provider="other", code=answer["code"], state=answer["state"])
    assert response.status_code == 401


def test_the_provider_refuses_a_code_without_the_right_pkce_verifier(api, oidc_app):
    started = start(api).json
    answer = authorize(
        started["authorization_url"], subject=f"sub-{uuid.uuid4().hex}", email=unique_email()
    )
    set_login_column(oidc_app, answer["state"], "code_verifier = :v", v="x" * 64)
    response = finish(api, code=answer["code"], state=answer["state"])
    assert response.status_code == 401
    assert "Traceback" not in response.get_data(as_text=True)


def test_an_id_token_for_another_nonce_is_refused(api, oidc_app):
    started = start(api).json
    answer = authorize(
        started["authorization_url"], subject=f"sub-{uuid.uuid4().hex}", email=unique_email()
    )
    set_login_column(oidc_app, answer["state"], "nonce = :n", n="another-nonce-" + "n" * 30)
    assert finish(api, code=answer["code"], state=answer["state"]).status_code == 401


def test_a_redirect_uri_the_operator_did_not_allow_is_bad_input(api):
    for uri in ("https://evil.example.com/cb", REDIRECT_URI + "/../x", REDIRECT_URI + "?a=1"):
        response = start(api, redirect_uri=uri)
        assert response.status_code == 400
        assert response.json["code"] == "BAD_USER_INPUT"
        assert set(response.json["fields"]) == {"redirect_uri"}


def test_an_unknown_provider_is_bad_input(api):
    response = start(api, provider="nope")
    assert response.status_code == 400 and set(response.json["fields"]) == {"provider"}
    response = finish(api, provider="nope", code="c", state="s")
    assert response.status_code == 400 and set(response.json["fields"]) == {"provider"}


@pytest.mark.parametrize(
    "body",
    [{}, {"provider": "mock"}, {"provider": 1, "redirect_uri": REDIRECT_URI}, ["mock"]],
)
def test_malformed_start_requests_are_clear_400s(api, body):
    response = api.post("/v1/auth/oidc/start", json=body)
    assert response.status_code == 400 and response.json["code"] == "BAD_USER_INPUT"


def mark_email_verified(app, user_id: str) -> None:
    """Record the user's email as verified, as verifyEmail would."""
    with app.extensions["auth"].engine.begin() as connection:
        connection.execute(
            update(User).where(User.id == uuid.UUID(user_id)).values(email_verified=True)
        )


def test_a_verified_email_links_to_the_existing_password_account(api, oidc_app, registered):
    mark_email_verified(oidc_app, registered["user"]["id"])
    subject = f"sub-{uuid.uuid4().hex}"
    response = sign_in(api, subject=subject, email=registered["email"].upper())
    assert response.status_code == 200
    assert response.json["user"]["id"] == registered["user"]["id"]
    login = api.post(
        "/v1/auth/login", json={"email": registered["email"], "password": registered["password"]}
    )
    assert login.status_code == 200


def test_an_account_whose_email_was_never_verified_is_not_linked(api, oidc_app, registered):
    subject = f"sub-{uuid.uuid4().hex}"
    response = sign_in(api, subject=subject, email=registered["email"])
    assert response.status_code == 409
    assert response.json["code"] == "CONFLICT"
    assert identities_of(oidc_app, subject) == 0


def test_a_user_created_by_a_provider_has_a_verified_email(api):
    first = sign_in(api, subject=f"sub-{uuid.uuid4().hex}", email=unique_email("oidc"))
    me = api.get("/v1/users/me", headers=bearer(first.json["access_token"]))
    assert me.status_code == 200 and me.json["email_verified"] is True


def test_an_unverified_email_never_reaches_an_existing_account(api, oidc_app, registered):
    subject = f"sub-{uuid.uuid4().hex}"
    response = sign_in(api, subject=subject, email=registered["email"], email_verified=False)
    assert response.status_code == 403
    assert response.json["code"] == "FORBIDDEN"
    assert identities_of(oidc_app, subject) == 0


def test_an_unverified_email_creates_no_account(api, oidc_app):
    subject = f"sub-{uuid.uuid4().hex}"
    response = sign_in(api, subject=subject, email=unique_email(), email_verified=False)
    assert response.status_code == 403
    assert identities_of(oidc_app, subject) == 0


def test_a_provider_without_linking_refuses_an_email_that_has_an_account(api, registered):
    response = sign_in(
        api, provider="other", subject=f"sub-{uuid.uuid4().hex}", email=registered["email"]
    )
    assert response.status_code == 409
    assert response.json["code"] == "CONFLICT"


def test_an_unreachable_provider_is_service_unavailable(make_app):
    with ServerThread(lambda environ, start_response: []) as server:
        dead = server.url
    app = make_app(**provider_settings(dead, redirect_uris=[REDIRECT_URI]))
    response = app.test_client().post(
        "/v1/auth/oidc/start", json={"provider": "mock", "redirect_uri": REDIRECT_URI}
    )
    assert response.status_code == 503
    assert response.json["code"] == "SERVICE_UNAVAILABLE"


def test_the_endpoints_are_described_in_the_openapi_document(api):
    spec = api.get("/openapi.json").json
    validate(spec)
    for path in ("/v1/auth/oidc/providers", "/v1/auth/oidc/start", "/v1/auth/oidc/finish"):
        assert path in spec["paths"]
    assert spec["paths"]["/v1/auth/oidc/finish"]["post"]["summary"]


def serve(status: str, headers: list[tuple[str, str]], body: bytes = b""):
    """A WSGI app answering every request alike, and the list of paths it was asked for."""
    asked: list[str] = []

    def app(environ, start_response):
        asked.append(environ["PATH_INFO"])
        start_response(status, headers)
        return [body]

    return app, asked


def start_against(make_app, issuer: str):
    """POST /start to an app whose `mock` provider has this issuer."""
    app = make_app(**provider_settings(issuer, redirect_uris=[REDIRECT_URI]))
    return app.test_client().post(
        "/v1/auth/oidc/start", json={"provider": "mock", "redirect_uri": REDIRECT_URI}
    )


def test_a_discovery_document_naming_another_issuer_is_refused(make_app):
    document = {
        "issuer": "http://127.0.0.1:1",
        "authorization_endpoint": "http://127.0.0.1:1/authorize",
        "token_endpoint": "http://127.0.0.1:1/token",
        "jwks_uri": "http://127.0.0.1:1/jwks",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }
    app, asked = serve(
        "200 OK", [("Content-Type", "application/json")], json.dumps(document).encode()
    )
    with ServerThread(app) as server:
        response = start_against(make_app, server.url)
    assert asked == ["/.well-known/openid-configuration"]
    assert response.status_code == 503


def test_a_redirect_from_the_issuer_is_not_followed(make_app):
    elsewhere, elsewhere_asked = serve("200 OK", [("Content-Type", "application/json")], b"{}")
    with ServerThread(elsewhere) as target:
        redirect, asked = serve("302 Found", [("Location", f"{target.url}/doc")])
        with ServerThread(redirect) as server:
            response = start_against(make_app, server.url)
    assert asked == ["/.well-known/openid-configuration"]
    assert elsewhere_asked == []
    assert response.status_code == 503


def test_an_account_without_a_password_is_deleted_without_one_and_cannot_sign_in_again(
    api, oidc_app
):
    subject, email = f"sub-{uuid.uuid4().hex}", unique_email("oidc-deleted")
    signed_in = sign_in(api, subject=subject, email=email)
    token = signed_in.json["access_token"]
    deleted = api.post("/v1/users/me/deletion", json={}, headers=bearer(token))
    assert deleted.status_code == 202, deleted.json
    assert api.get("/v1/users/me", headers=bearer(token)).status_code == 401

    assert sign_in(api, subject=subject, email=email).status_code == 401
