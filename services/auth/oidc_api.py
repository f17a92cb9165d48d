"""REST endpoints of sign-in with OpenID Connect: thin views over oidc.py."""

from __future__ import annotations

import logging

from flask import current_app
from flask.views import MethodView
from flask_limiter.util import get_remote_address
from flask_smorest import abort

from services.auth import oidc
from services.auth.api import limiter
from services.auth.oidc_providers import ProviderLoginRejected, ProviderUnavailable
from services.auth.oidc_schemas import (
    OidcFinishArgsSchema,
    OidcStartArgsSchema,
    OidcStartSchema,
    ProvidersSchema,
)
from services.auth.schemas import TokensSchema
from services.auth.service import EmailAlreadyRegistered
from shared.web import ServiceBlueprint

log = logging.getLogger("dockyard.auth.oidc")

oidc_blp = ServiceBlueprint(
    "oidc", __name__, url_prefix="/v1/auth/oidc", description="Sign in with OpenID Connect"
)


def _ctx():
    return current_app.extensions["auth"]


def _login_limit_per_ip() -> str:
    return _ctx().settings.LOGIN_LIMIT_PER_IP


_PER_IP = limiter.limit(_login_limit_per_ip, key_func=get_remote_address)


def _unknown_provider():
    abort(400, message="Unknown sign-in provider.", messages={"provider": ["not configured"]})


def _provider_unavailable(exc: ProviderUnavailable):
    log.warning("oidc provider unavailable: %s", exc)
    abort(503, message="The sign-in provider is unavailable. Try again later.")


@oidc_blp.route("/providers")
class Providers(MethodView):
    """The configured providers."""

    @oidc_blp.response(200, ProvidersSchema)
    def get(self):
        """List the providers users may sign in with."""
        return {"providers": _ctx().oidc.names()}


@oidc_blp.route("/start")
class OidcStart(MethodView):
    """Begin a sign-in at a provider."""

    decorators = [_PER_IP]

    @oidc_blp.arguments(OidcStartArgsSchema)
    @oidc_blp.response(200, OidcStartSchema)
    @oidc_blp.alt_response(400, description="Unknown provider or redirect URI not allowed")
    @oidc_blp.alt_response(503, description="The provider cannot be reached")
    def post(self, body):
        """Store a state, nonce and PKCE verifier; return the provider's authorization URL."""
        ctx = _ctx()
        try:
            return oidc.start_oidc_login(
                ctx.uow(),
                providers=ctx.oidc,
                ttl_seconds=ctx.settings.OIDC_LOGIN_TTL,
                **body,
            )
        except oidc.ProviderNotConfigured:
            _unknown_provider()
        except oidc.RedirectUriNotAllowed:
            abort(
                400,
                message="This redirect URI is not allowed for the provider.",
                messages={"redirect_uri": ["not allowed"]},
            )
        except ProviderUnavailable as exc:
            _provider_unavailable(exc)


@oidc_blp.route("/finish")
class OidcFinish(MethodView):
    """Complete a sign-in with what the provider sent back."""

    decorators = [_PER_IP]

    @oidc_blp.arguments(OidcFinishArgsSchema)
    @oidc_blp.response(200, TokensSchema)
    @oidc_blp.alt_response(401, description="State unknown, expired or used; code or ID token bad")
    @oidc_blp.alt_response(403, description="The provider vouches for no email")
    @oidc_blp.alt_response(409, description="The email belongs to an account not linked")
    @oidc_blp.alt_response(503, description="The provider cannot be reached")
    def post(self, body):
        """Check state, PKCE and nonce; sign the user in, creating them on a first sign-in."""
        ctx = _ctx()
        try:
            return oidc.finish_oidc_login(ctx.uow(), providers=ctx.oidc, issuer=ctx.issuer, **body)
        except oidc.ProviderNotConfigured:
            _unknown_provider()
        except oidc.LoginStateRejected:
            abort(401, message="This sign-in is unknown, expired or already used. Start again.")
        except ProviderLoginRejected as exc:
            log.warning("oidc sign-in refused: %s", exc)
            abort(401, message="The provider's answer was refused. Start again.")
        except oidc.EmailNotVerified:
            abort(403, message="The provider did not confirm an email address for this account.")
        except EmailAlreadyRegistered:
            abort(
                409,
                message="An account with this email exists. Sign in with its password instead.",
            )
        except ProviderUnavailable as exc:
            _provider_unavailable(exc)
