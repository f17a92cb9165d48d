"""Custom scalars: DateTime (ISO-8601 with timezone), BigInt (JSON number) and Upload."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ariadne import ScalarType

from services.gateway.uploads import FileUpload

datetime_scalar = ScalarType("DateTime")
bigint_scalar = ScalarType("BigInt")
upload_scalar = ScalarType("Upload")


def _aware(value: datetime) -> datetime:
    # The services store UTC; a naive value from one of them means UTC, never local time.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@datetime_scalar.serializer
def serialize_datetime(value: Any) -> str:
    """A datetime or an ISO-8601 string from a service, as ISO-8601 with a timezone."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"DateTime cannot represent {type(value).__name__}")
    return _aware(value).isoformat()


@datetime_scalar.value_parser
def parse_datetime(value: Any) -> datetime:
    """An ISO-8601 string with a timezone from a client."""
    if not isinstance(value, str):
        raise ValueError("DateTime must be an ISO-8601 string")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("DateTime must include a timezone")
    return parsed


@bigint_scalar.serializer
def serialize_bigint(value: Any) -> int:
    """An integer of any size, as a JSON number."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"BigInt cannot represent {type(value).__name__}")
    return int(value)


@bigint_scalar.value_parser
def parse_bigint(value: Any) -> int:
    """An integer from a client (a JSON number)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("BigInt must be an integer")
    return value


@upload_scalar.value_parser
def parse_upload(value: Any) -> FileUpload:
    """A file part of a multipart request, put into the variables by the map."""
    if not isinstance(value, FileUpload):
        raise ValueError("Upload must be a file part of a multipart request")
    return value


@upload_scalar.literal_parser
def parse_upload_literal(*_args: Any) -> FileUpload:
    """Refuse: a file cannot be written into the query text."""
    raise ValueError("Upload must be a variable filled by a multipart request's file part")


@upload_scalar.serializer
def serialize_upload(_value: Any) -> Any:
    """Refuse: no field returns an Upload."""
    raise TypeError("Upload cannot be serialized")
