"""The document cache: each text parsed and validated once, bounded, variables still honoured."""

from __future__ import annotations

import pytest
from graphql import GraphQLError

from services.gateway.documents import MAX_CACHED_QUERY_CHARS, DocumentCache
from services.gateway.tests.conftest import client_of, gql


def test_the_same_text_is_parsed_once():
    cache = DocumentCache(max_entries=4, max_tokens=1000)
    assert cache.parse("{ me { id } }") is cache.parse("{ me { id } }")
    assert cache.parse("{ me { id } }") is not cache.parse("{ me { email } }")


def test_errors_are_computed_once_per_document_and_rule_set():
    cache = DocumentCache(max_entries=4, max_tokens=1000)
    document = cache.parse("{ me { id } }")
    calls = []

    def compute():
        calls.append(1)
        return []

    for _ in range(3):
        assert cache.errors(document, (), compute) == []
    assert len(calls) == 1
    cache.errors(document, (object,), compute)
    assert len(calls) == 2


def test_the_cache_keeps_only_the_most_recently_used_entries():
    cache = DocumentCache(max_entries=2, max_tokens=1000)
    first = cache.parse("{ a }")
    cache.parse("{ b }")
    cache.parse("{ a }")
    cache.parse("{ c }")
    assert len(cache) == 2
    assert cache.parse("{ a }") is first
    assert cache.errors(cache.parse("{ b }"), (), lambda: []) == []


def test_long_texts_and_a_disabled_cache_are_parsed_every_time():
    long_query = "{ me { id } }" + " " * MAX_CACHED_QUERY_CHARS
    cache = DocumentCache(max_entries=4, max_tokens=1000)
    assert cache.parse(long_query) is not cache.parse(long_query)
    off = DocumentCache(max_entries=0, max_tokens=1000)
    assert off.parse("{ a }") is not off.parse("{ a }")
    assert len(off) == 0


def test_a_syntax_error_is_raised_and_not_cached():
    cache = DocumentCache(max_entries=4, max_tokens=1000)
    for _ in range(2):
        with pytest.raises(GraphQLError, match="Syntax Error"):
            cache.parse("{ me { id ")
    assert len(cache) == 0


def test_a_cached_invalid_document_keeps_failing(client):
    for _ in range(3):
        response = gql(client, "{ nope }")
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_a_cached_document_still_costs_by_its_variables(make_app):
    client = client_of(make_app(GRAPHQL_MAX_COST=500))
    query = "query ($n: Int) { files(first: $n) { edges { node { id } } } }"
    for n, refused in [(10, False), (1000, True), (10, False), (1000, True)]:
        messages = " ".join(e["message"] for e in gql(client, query, {"n": n}).json()["errors"])
        assert ("maximum cost" in messages) is refused
