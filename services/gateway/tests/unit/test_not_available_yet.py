"""Fields of later issues answer SERVICE_UNAVAILABLE "<field> is not available yet"."""

from __future__ import annotations

import asyncio

import pytest
from ariadne import subscribe

from services.gateway.tests.conftest import gql

FIELDS = [
    ("file", '{ file(id: "1") { id } }'),
    ("files", "{ files { totalCount } }"),
    ("uploadFile", "mutation ($f: Upload!) { uploadFile(file: $f) { id } }"),
    ("deleteFile", 'mutation { deleteFile(id: "1") }'),
]


@pytest.mark.parametrize(("field", "query"), FIELDS)
def test_a_field_of_a_later_issue_is_service_unavailable(client, field, query):
    # JSON cannot carry a file; any non-null value stands in for the multipart one here.
    response = gql(client, query, {"f": "upload"} if "$f" in query else None)
    assert response.status_code == 200
    (error,) = response.json["errors"]
    assert error["message"] == f"{field} is not available yet"
    assert error["extensions"] == {"code": "SERVICE_UNAVAILABLE"}
    assert error["path"] == [field]


@pytest.mark.parametrize(
    ("field", "query"),
    [
        ("taskUpdated", 'subscription { taskUpdated(id: "1") { id } }'),
        ("taskLogs", 'subscription { taskLogs(id: "1") { text } }'),
        ("fileUpdated", 'subscription { fileUpdated(id: "1") { id } }'),
    ],
)
def test_a_subscription_is_service_unavailable(make_app, field, query):
    gateway = make_app().extensions["gateway"]
    success, errors = asyncio.run(
        subscribe(gateway.schema, {"query": query}, context_value=None, **gateway.options)
    )
    assert success is False
    assert errors[0]["message"] == f"{field} is not available yet"
    assert errors[0]["extensions"] == {"code": "SERVICE_UNAVAILABLE"}
