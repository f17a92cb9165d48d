"""Errors the gateway reports to clients, and the formatter that keeps internals out of them."""

from __future__ import annotations

import logging
from typing import Any

from ariadne.utils import unwrap_graphql_error
from graphql import GraphQLError

log = logging.getLogger("dockyard.gateway.errors")

#: The codes of the public contract; anything else reaching the formatter is our bug.
CONTRACT_CODES = frozenset(
    {
        "UNAUTHENTICATED",
        "FORBIDDEN",
        "BAD_USER_INPUT",
        "NOT_FOUND",
        "CONFLICT",
        "RATE_LIMITED",
        "PAYLOAD_TOO_LARGE",
        "SERVICE_UNAVAILABLE",
        "INTERNAL_SERVER_ERROR",
    }
)
INTERNAL_MESSAGE = "Internal server error."
#: Codes that mean something is wrong on our side, worth a warning in the log.
_OUR_FAULT = frozenset({"SERVICE_UNAVAILABLE", "INTERNAL_SERVER_ERROR"})


class GatewayError(Exception):
    """An error meant for the client: a contract code, a safe message and extensions."""

    code = "INTERNAL_SERVER_ERROR"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        fields: dict[str, str] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code if code in CONTRACT_CODES else "INTERNAL_SERVER_ERROR"
        self.fields = fields
        self.retry_after = retry_after

    def extensions(self) -> dict[str, Any]:
        """The `extensions` object clients read: code, plus fields or retryAfter when known."""
        extensions: dict[str, Any] = {"code": self.code}
        if self.fields:
            extensions["fields"] = self.fields
        if self.retry_after is not None:
            extensions["retryAfter"] = self.retry_after
        return extensions


class Unauthenticated(GatewayError):
    """No bearer token, or one that is invalid, expired or revoked."""

    code = "UNAUTHENTICATED"


class BadUserInput(GatewayError):
    """The request itself is wrong; `fields` names the offending arguments."""

    code = "BAD_USER_INPUT"


class NotFound(GatewayError):
    """No such object, or not the caller's (deliberately indistinguishable)."""

    code = "NOT_FOUND"


class ServiceUnavailable(GatewayError):
    """A service is down, too slow or failing; the client may retry later."""

    code = "SERVICE_UNAVAILABLE"


def error_entry(message: str, code: str, **extensions: Any) -> dict[str, Any]:
    """One entry of a response's `errors` list, for failures outside GraphQL execution."""
    return {"message": message, "extensions": {"code": code, **extensions}}


def is_request_error(error: GraphQLError) -> bool:
    """Whether the error is about the request (parse, validation, variables), not a resolver.

    graphql-core's messages for those describe the request; a scalar's parser refusing a
    value (ValueError, TypeError) is one of them too.
    """
    original = unwrap_graphql_error(error)
    return error.path is None and (original is None or isinstance(original, ValueError | TypeError))


def format_error(error: GraphQLError, debug: bool = False) -> dict[str, Any]:
    """Ariadne error formatter: contract codes, safe messages, never a stack trace.

    `debug` is accepted for Ariadne's signature and deliberately ignored.
    """
    formatted: dict[str, Any] = {"message": error.message}
    if error.locations:
        formatted["locations"] = [location._asdict() for location in error.locations]
    if error.path is not None:
        formatted["path"] = error.path
    original = unwrap_graphql_error(error)
    if isinstance(original, GatewayError):
        formatted["message"] = original.message
        formatted["extensions"] = original.extensions()
    elif is_request_error(error):
        formatted["extensions"] = {**(error.extensions or {}), "code": "BAD_USER_INPUT"}
    else:
        formatted["message"] = INTERNAL_MESSAGE
        formatted["extensions"] = {"code": "INTERNAL_SERVER_ERROR"}
    return formatted


class ErrorLogger(logging.LoggerAdapter):
    """The logger Ariadne reports errors to: one line each, a traceback only when unexpected."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        super().__init__(logger or log, {})

    def error(self, msg: object, *args: object, exc_info: Any = None, **kwargs: Any) -> None:
        """Log expected client errors quietly and unexpected ones with their traceback."""
        error = exc_info if isinstance(exc_info, GraphQLError) else None
        original = unwrap_graphql_error(error) if error is not None else exc_info
        if error is not None and isinstance(original, GatewayError):
            level = logging.WARNING if original.code in _OUR_FAULT else logging.INFO
            self.log(level, "%s: %s", original.code, original.message, extra=_where(error))
        elif error is not None and is_request_error(error):
            self.info("BAD_USER_INPUT: %s", error.message, extra=_where(error))
        else:
            extra = _where(error) if error is not None else {}
            exc = original if isinstance(original, BaseException) else exc_info
            self.logger.error("unexpected error: %s", msg, *args, exc_info=exc, extra=extra)


def _where(error: GraphQLError) -> dict[str, Any]:
    return {"graphql_path": ".".join(map(str, error.path))} if error.path else {}
