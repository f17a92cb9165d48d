"""Schemathesis runs of a service's OpenAPI document against its live WSGI app (tests only)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import hypothesis
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, strategies
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

#: What every answer must satisfy: no 5xx, and status, media type, body and headers documented.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

#: A small, reproducible run: the same examples every time, a few per operation.
SETTINGS = hypothesis.settings(
    max_examples=6,
    derandomize=True,
    database=None,
    deadline=None,
    # Each of these judges the generator, not the service: too_slow fires because every example
    # is a real request to a real database on a shared machine; large_base_example and
    # data_too_large because request bodies with many required fields make big minimal examples;
    # filter_too_much because schemathesis discards negative cases that serialize to a valid
    # request. Left on, they fail the run at random on a busy machine without an API fault.
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


_PATH_PARAMETER = re.compile(r"\{(\w+)\}")

#: The credentials of one generated request to an operation, made fresh for each request.
Credentials = Callable[[schemathesis.APIOperation], Mapping[str, str]]


#: Things that exist and the caller owns, made fresh for one operation: path parameter -> id.
Existing = Callable[[], Mapping[str, str]]


def check_document(
    app: Flask, credentials: Credentials, subtests: Any, existing: Existing | None = None
) -> None:
    """Check every operation of the app's own OpenAPI document, one subtest each.

    `existing` makes things an operation's path can name (e.g. a `file_id`): besides random
    values, some valid requests name them, so the answers about real things (their 200s, 304s
    and conflicts) are checked too, not only 400s and 404s. Each operation gets its own, so a
    DELETE does not leave the operations after it only 404s.
    """
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    for result in schema.get_all_operations():
        operation = result.ok()  # an operation the document cannot describe fails here
        with subtests.test(msg=operation.label):
            names = _PATH_PARAMETER.findall(operation.path)
            made = existing() if existing and names else {}
            check_operation(operation, credentials, {n: made[n] for n in names if n in made})


def check_operation(
    operation: schemathesis.APIOperation,
    credentials: Credentials,
    path_parameters: Mapping[str, str],
) -> None:
    """Send valid and invalid requests; fail on any answer the document does not describe."""
    choices = [
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    if path_parameters:
        named = operation.as_strategy(
            GenerationMode.POSITIVE, path_parameters=dict(path_parameters)
        )
        choices.append(named)

    @SETTINGS
    @hypothesis.given(case=strategies.one_of(choices))
    def answers_as_documented(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=dict(credentials(operation)), checks=CHECKS)

    answers_as_documented()
