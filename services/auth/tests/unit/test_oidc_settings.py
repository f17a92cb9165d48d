"""AUTH_OIDC_PROVIDERS and AUTH_OIDC_CLIENT_SECRETS: parsed strictly, secrets never shown."""

from __future__ import annotations

import json

import pytest

from services.auth.config import AuthSettings
from shared.config import ConfigError
from shared.testing import production_environ

SECRET = "s3cret-value-never-logged"
GOOGLE = {
    "issuer": "https://accounts.google.com",
    "client_id": "123.apps.googleusercontent.com",
    "redirect_uris": ["https://app.example.com/auth/callback"],
}


def settings(providers, secrets=None, **environ) -> AuthSettings:
    """AuthSettings read from an environment holding the two variables."""
    env = {"AUTH_JWT_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\nx\n", **environ}
    env["AUTH_OIDC_PROVIDERS"] = json.dumps(providers)
    if secrets is not None:
        env["AUTH_OIDC_CLIENT_SECRETS"] = json.dumps(secrets)
    return AuthSettings(env)


def test_a_provider_is_read_with_its_defaults():
    read = settings({"google": GOOGLE}, {"google": SECRET})
    google = read.OIDC_PROVIDERS["google"]
    assert google.issuer == "https://accounts.google.com"
    assert google.redirect_uris == frozenset(GOOGLE["redirect_uris"])
    assert google.scopes == ("openid", "email", "profile")
    assert google.link_verified_email is True
    assert read.OIDC_CLIENT_SECRETS == {"google": SECRET}


def test_no_provider_is_configured_by_default():
    read = AuthSettings({"AUTH_JWT_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\nx\n"})
    assert read.OIDC_PROVIDERS == {} and read.OIDC_CLIENT_SECRETS == {}


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({**GOOGLE, "issuer": "http://accounts.google.com"}, "issuer"),
        ({**GOOGLE, "issuer": "https://accounts.google.com?x=1"}, "issuer"),
        ({**GOOGLE, "issuer": None}, "issuer"),
        ({**GOOGLE, "client_id": ""}, "client_id"),
        ({**GOOGLE, "redirect_uris": []}, "redirect_uris"),
        ({**GOOGLE, "redirect_uris": ["https://app.example.com/cb#frag"]}, "redirect URI"),
        ({**GOOGLE, "redirect_uris": ["/relative"]}, "redirect URI"),
        ({**GOOGLE, "scopes": ["email"]}, "openid"),
        ({**GOOGLE, "link_verified_email": "yes"}, "link_verified_email"),
        ({**GOOGLE, "clientid": "typo"}, "unknown keys"),
    ],
)
def test_a_bad_provider_entry_fails_at_start_up_naming_the_problem(entry, problem):
    with pytest.raises(ConfigError, match="AUTH_OIDC_PROVIDERS") as raised:
        settings({"google": entry}, {"google": SECRET})
    assert problem in str(raised.value)


@pytest.mark.parametrize("name", ["Google", "", "a b", "x" * 41])
def test_a_provider_name_must_be_a_short_lowercase_word(name):
    with pytest.raises(ConfigError, match="provider name"):
        settings({name: GOOGLE}, {name: SECRET})


def test_each_provider_needs_a_client_secret_and_each_secret_a_provider():
    with pytest.raises(ConfigError, match="missing \\['google'\\]"):
        settings({"google": GOOGLE})
    with pytest.raises(ConfigError, match="unknown \\['gitlab'\\]"):
        settings({"google": GOOGLE}, {"google": SECRET, "gitlab": SECRET})


def test_a_malformed_secrets_variable_is_reported_without_its_value():
    env = {
        "AUTH_JWT_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\nx\n",
        "AUTH_OIDC_PROVIDERS": json.dumps({"google": GOOGLE}),
        "AUTH_OIDC_CLIENT_SECRETS": '{"google": "' + SECRET,
    }
    with pytest.raises(ConfigError) as raised:
        AuthSettings(env)
    assert "AUTH_OIDC_CLIENT_SECRETS" in str(raised.value)
    assert SECRET not in str(raised.value)


def test_the_secrets_never_show_in_the_settings_repr():
    assert SECRET not in repr(settings({"google": GOOGLE}, {"google": SECRET}))


def test_a_loopback_issuer_is_allowed_in_development_only():
    local = {**GOOGLE, "issuer": "http://127.0.0.1:9000"}
    assert settings({"dev": local}, {"dev": SECRET}).OIDC_PROVIDERS["dev"].issuer == local["issuer"]
    # Every variable production refuses a placeholder for is set, to test only the issuer.
    production = production_environ()
    with pytest.raises(ConfigError, match="public host"):
        settings({"dev": local}, {"dev": SECRET}, **production)
    with pytest.raises(ConfigError, match="public host"):
        settings({"dev": {**GOOGLE, "issuer": "https://10.0.0.5"}}, {"dev": SECRET}, **production)
    assert settings({"google": GOOGLE}, {"google": SECRET}, **production).OIDC_PROVIDERS
