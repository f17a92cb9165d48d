"""Request and response schemas of the OpenID Connect sign-in endpoints."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class ProvidersSchema(Schema):
    """The providers users may sign in with."""

    providers = fields.List(fields.String())


class OidcStartArgsSchema(Schema):
    """A provider and where it should send the user back."""

    provider = fields.String(required=True, validate=validate.Length(min=1, max=40))
    redirect_uri = fields.String(required=True, validate=validate.Length(min=1, max=2048))


class OidcStartSchema(Schema):
    """Where to send the user, and the state the provider will send back."""

    authorization_url = fields.String()
    state = fields.String()


class OidcFinishArgsSchema(Schema):
    """What the provider sent back to the redirect URI."""

    provider = fields.String(required=True, validate=validate.Length(min=1, max=40))
    code = fields.String(required=True, validate=validate.Length(min=1, max=2048))
    state = fields.String(required=True, validate=validate.Length(min=1, max=128))
