"""Resolvers for contract fields whose service is not wired into the gateway yet."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from services.gateway.errors import NotAvailableYet


def not_available_yet(field: str) -> Callable[..., Any]:
    """A resolver answering SERVICE_UNAVAILABLE "<field> is not available yet"."""

    def resolve(*_args: Any, **_kwargs: Any) -> Any:
        """Refuse: the field's service is not wired in yet."""
        raise NotAvailableYet(field)

    return resolve


def not_available_yet_source(field: str) -> Callable[..., Awaitable[AsyncIterator[Any]]]:
    """A subscription source answering SERVICE_UNAVAILABLE "<field> is not available yet"."""

    async def source(*_args: Any, **_kwargs: Any) -> AsyncIterator[Any]:
        """Refuse: the field's event stream is not wired in yet."""
        raise NotAvailableYet(field)

    return source
