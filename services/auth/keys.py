"""The signing key, its key id and the JWKS document the other services verify with."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from jwt.algorithms import RSAAlgorithm


def _thumbprint(public_key) -> str:
    """RFC 7638 JWK thumbprint: a stable key id derived from the key itself."""
    jwk = json.loads(RSAAlgorithm.to_jwk(public_key))
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKeys:
    """The current private key plus every public key accepted (next, current, previous), by id.

    Next keys are published and accepted before auth signs with one, so that every verifier
    already holds the key when the first token signed with it arrives; only `kid` ever signs.
    """

    private_pem: str
    kid: str
    public_keys: dict[str, Any]

    @classmethod
    def load(
        cls,
        private_pem: str,
        previous_public_pems: Sequence[str],
        next_public_pems: Sequence[str] = (),
    ) -> SigningKeys:
        """Parse the PEMs; raises ValueError when one is not a usable RSA key."""
        private = serialization.load_pem_private_key(private_pem.encode(), password=None)
        current_public = private.public_key()
        kid = _thumbprint(current_public)
        public = {kid: current_public}
        for pem in [*next_public_pems, *previous_public_pems]:
            key = serialization.load_pem_public_key(pem.encode())
            public[_thumbprint(key)] = key
        return cls(private_pem=private_pem, kid=kid, public_keys=public)

    @property
    def public_pem(self) -> str:
        """The current public key in PEM."""
        return (
            self.public_keys[self.kid]
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set of every accepted public key."""
        keys = []
        for kid, key in self.public_keys.items():
            jwk = json.loads(RSAAlgorithm.to_jwk(key))
            jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
            keys.append(jwk)
        return {"keys": keys}
