"""Fields of later issues answer SERVICE_UNAVAILABLE "<field> is not available yet"."""

from __future__ import annotations

import asyncio

from ariadne import subscribe


def test_task_logs_is_service_unavailable(make_app):
    gateway = make_app().extensions["gateway"]
    query = 'subscription { taskLogs(id: "1") { text } }'
    success, errors = asyncio.run(
        subscribe(gateway.schema, {"query": query}, context_value=None, **gateway.options)
    )
    assert success is False
    assert errors[0]["message"] == "taskLogs is not available yet"
    assert errors[0]["extensions"] == {"code": "SERVICE_UNAVAILABLE"}
