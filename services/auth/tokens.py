"""Token signing and refresh-token reading with flask-jwt-extended (keys looked up by kid)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask_jwt_extended import create_access_token, create_refresh_token, decode_token
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt import PyJWTError

from services.auth.keys import SigningKeys
from services.auth.service import RefreshTokenRejected
from shared.auth import TokenInvalid


class FlaskJwtIssuer:
    """Signs RS256 tokens carrying the key id, the token family and our own token ids."""

    def __init__(self, keys: SigningKeys, *, access_ttl: int, refresh_ttl: int) -> None:
        self.keys = keys
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl

    def configure(self, app) -> None:
        """Set the flask-jwt-extended signing options on the app."""
        # No JWT_PUBLIC_KEY: init_jwt's decode_key_loader picks each token's key by its `kid`
        # from the same key set the JWKS publishes, so tokens signed with a previous or next
        # key read as well as the current key's.
        app.config.update(
            JWT_PRIVATE_KEY=self.keys.private_pem,
            JWT_ACCESS_TOKEN_EXPIRES=timedelta(seconds=self.access_ttl),
            JWT_REFRESH_TOKEN_EXPIRES=timedelta(seconds=self.refresh_ttl),
            JWT_ENCODE_ISSUER=app.config["JWT_DECODE_ISSUER"],
            JWT_ENCODE_AUDIENCE=app.config["JWT_DECODE_AUDIENCE"],
        )

    def issue(self, *, user_id: str, family_id: str, refresh_id: str) -> tuple[str, str]:
        """Sign an access token and a refresh token (jti = the stored refresh row's id)."""
        headers = {"kid": self.keys.kid}
        access = create_access_token(
            identity=user_id, additional_claims={"fam": family_id}, additional_headers=headers
        )
        refresh = create_refresh_token(
            identity=user_id,
            additional_claims={"fam": family_id, "jti": refresh_id},
            additional_headers=headers,
        )
        return access, refresh

    def read_refresh(self, token: str) -> dict[str, Any]:
        """Verify a refresh token's signature, expiry and type (not its use; the DB knows)."""
        try:
            claims = decode_token(token, allow_expired=False)
        # TokenInvalid: the key lookup refuses a `kid` that is missing or not one of ours.
        except (PyJWTError, JWTExtendedException, TokenInvalid, ValueError, KeyError):
            raise RefreshTokenRejected("refresh token is invalid") from None
        if claims.get("type") != "refresh":
            raise RefreshTokenRejected("not a refresh token")
        return claims
