"""The error codes of the REST services' `{status, code, message, fields}` answers."""

from __future__ import annotations

from shared.service_identity import CALLER_NOT_ALLOWED, CREDENTIAL_INVALID, CREDENTIAL_REQUIRED

#: HTTP status -> the error code clients switch on (the gateway passes these through).
ERROR_CODES = {
    400: "BAD_USER_INPUT",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    410: "GONE",
    413: "PAYLOAD_TOO_LARGE",
    415: "BAD_USER_INPUT",
    422: "BAD_USER_INPUT",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}
#: The code of any other status (a 500, or a status without a code of its own).
FALLBACK_CODE = "INTERNAL_SERVER_ERROR"
#: Codes more specific than their status's, with the answers that carry them.
SPECIFIC_CODES = {
    CREDENTIAL_REQUIRED: "401: a call without the gateway's or a peer's service credential",
    CREDENTIAL_INVALID: "401: a service credential that does not verify",
    CALLER_NOT_ALLOWED: "403: a valid service credential of a caller the endpoint does not serve",
    "RANGE_NOT_SATISFIABLE": "416: files, a Range outside the content",
    "QUOTA_EXCEEDED": "413: files, an upload beyond the user's storage quota",
    "FILE_LEASED": "409: files, deleting a file a running task reads",
    "NOT_LEASED": "409: files, a task reading a file not leased to it",
}
#: Every code an error answer may carry: what the documented error schema allows.
ALL_CODES = tuple(sorted({*ERROR_CODES.values(), FALLBACK_CODE, *SPECIFIC_CODES}))
