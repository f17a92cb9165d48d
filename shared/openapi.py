"""What every service's OpenAPI document says of the answers all its operations may give."""

from __future__ import annotations

from typing import Any

from apispec import BasePlugin
from flask_smorest import Api
from marshmallow import RAISE, Schema, fields, validate

from shared.error_codes import ALL_CODES
from shared.service_identity import EXEMPT_PATHS, EXEMPT_PREFIXES

#: Documented Retry-After header: seconds to wait before trying again.
RETRY_AFTER = {
    "description": "Seconds to wait before trying again.",
    "schema": {"type": "integer", "minimum": 0},
}


class ErrorSchema(Schema):
    """The one error shape of every service (shared.web.error_body)."""

    class Meta:
        unknown = RAISE

    status = fields.Integer(required=True, metadata={"description": "The HTTP status."})
    code = fields.String(
        required=True,
        validate=validate.OneOf(ALL_CODES),
        metadata={"description": "What clients switch on (shared.error_codes)."},
    )
    message = fields.String(required=True, metadata={"description": "For people."})
    field_errors = fields.Dict(
        data_key="fields",
        keys=fields.String(),
        values=fields.String(),
        metadata={"description": "The invalid input fields (or failed checks), each with why."},
    )


class LivenessSchema(Schema):
    """The answer of /healthz."""

    status = fields.String(required=True, validate=validate.Equal("ok"))


class ReadinessSchema(Schema):
    """The answer of /readyz when every check passed."""

    status = fields.String(required=True, validate=validate.Equal("ready"))
    checks = fields.List(
        fields.String(), required=True, metadata={"description": "The checks that passed."}
    )


#: Answers any operation behind the service credential may give, by status (component names).
COMMON_RESPONSES = {
    "401": (
        "CREDENTIAL_OR_TOKEN_REFUSED",
        {
            "description": "No valid service credential (SERVICE_CREDENTIAL_REQUIRED or "
            "SERVICE_CREDENTIAL_INVALID), or, where a user is needed, no valid access token "
            "(UNAUTHENTICATED).",
        },
    ),
    "403": (
        "CALLER_NOT_ALLOWED",
        {
            "description": "A valid service credential of a caller this endpoint does not "
            "serve (SERVICE_CALLER_NOT_ALLOWED), or the caller may not do this (FORBIDDEN).",
        },
    ),
    "503": (
        "TEMPORARILY_UNAVAILABLE",
        {
            "description": "A dependency (database, revocation list, another service) is "
            "unreachable for now; try again after Retry-After when it is sent.",
            "headers": {"Retry-After": RETRY_AFTER},
        },
    ),
}
#: Answer of an operation that reads a request body.
TOO_LARGE = ("BODY_TOO_LARGE", {"description": "The request body is larger than allowed."})
#: Statuses whose documented answers carry Retry-After wherever an operation declares them.
RETRYABLE = ("429", "503")


def is_exempt(path: str) -> bool:
    """Whether the path is served without a service credential (probes, metrics, docs, JWKS)."""
    return path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES)


class CommonResponsesPlugin(BasePlugin):
    """apispec plugin: every operation documents the error answers it shares with all others."""

    def operation_helper(self, path: str | None = None, operations: dict | None = None, **_: Any):
        """Add the shared error answers an operation does not declare itself."""
        for method, operation in (operations or {}).items():
            responses = operation.setdefault("responses", {})
            declared = {str(status) for status in responses}
            common = [] if is_exempt(path or "") else list(COMMON_RESPONSES.items())
            if method in {"post", "put", "patch"} and "requestBody" in operation:
                common.append(("413", TOO_LARGE))
            for status, (name, _response) in common:
                if status not in declared:
                    responses[status] = name
            for status, response in responses.items():
                if isinstance(response, dict) and str(status)[0] in "45":
                    _complete_error(str(status), response)


def _complete_error(status: str, response: dict) -> None:
    # An error an operation declares by its description alone still has the one shape.
    response.setdefault("content", {"application/json": {"schema": "Error"}})
    if status in RETRYABLE:
        response.setdefault("headers", {}).setdefault("Retry-After", RETRY_AFTER)


class ServiceApi(Api):
    """flask-smorest Api whose documents describe the shared error shape and answers."""

    ERROR_SCHEMA = ErrorSchema

    def __init__(self, app: Any = None, **kwargs: Any) -> None:
        spec_kwargs = {"extra_plugins": [CommonResponsesPlugin()], **kwargs.pop("spec_kwargs", {})}
        super().__init__(app, spec_kwargs=spec_kwargs, **kwargs)

    def _register_responses(self) -> None:
        super()._register_responses()
        error_content = {"application/json": {"schema": self.ERROR_SCHEMA}}
        for name, response in [*COMMON_RESPONSES.values(), TOO_LARGE]:
            self.spec.components.response(name, {**response, "content": error_content}, lazy=True)
