"""Apollo cache hints: the @cacheControl rules, extensions.cacheControl and Cache-Control."""

from __future__ import annotations

import pytest
from ariadne import make_executable_schema
from graphql import parse

from services.gateway.cache_control import CacheHints, query_policy
from services.gateway.tests.conftest import answering, cache_hints, gql

AUTH = {"Authorization": "Bearer t"}

SDL = """
    enum CacheControlScope { PUBLIC PRIVATE }
    directive @cacheControl(maxAge: Int, scope: CacheControlScope, inheritMaxAge: Boolean)
        on FIELD_DEFINITION | OBJECT | INTERFACE | UNION

    type Query {
      long: Long
      short: Long @cacheControl(maxAge: 10)
      unhinted: Plain
      count: Int
      hinted: Int @cacheControl(maxAge: 30, scope: PRIVATE)
      page: Page @cacheControl(maxAge: 40)
    }
    type Long @cacheControl(maxAge: 100) {
      name: String
      plain: Plain
      inherited: Plain @cacheControl(inheritMaxAge: true)
      mine: String @cacheControl(maxAge: 50, scope: PRIVATE)
    }
    type Plain { name: String }
    type Page @cacheControl(inheritMaxAge: true) { items: [Long] }
"""
HINTS = CacheHints(make_executable_schema(SDL))


def policy_of(query: str):
    """The policy of the document's one operation."""
    return query_policy(HINTS, parse(query), None)


@pytest.mark.parametrize(
    ("query", "max_age", "private"),
    [
        ("{ long { name } }", 100, False),  # the type's hint; a scalar field inherits it
        ("{ short { name } }", 10, False),  # the field's own hint overrides its type's
        ("{ long { mine } }", 50, True),  # a field restricts, and PRIVATE wins
        ("{ unhinted { name } }", 0, False),  # an object without a hint is uncacheable
        ("{ count }", 0, False),  # so is a root field without one
        ("{ hinted }", 30, True),
        ("{ long { plain { name } } }", 0, False),
        ("{ long { inherited { name } } }", 100, False),  # inheritMaxAge keeps the parent's
        ("{ page { items { name } } }", 40, False),  # a list of hinted objects: the smallest
        ("{ long { name } short { name } }", 10, False),
        ("{ __typename }", None, False),  # nothing hinted: nothing to keep
        ("{ ...F } fragment F on Query { short { name } long { name } }", 10, False),
        ("{ ... on Query { long { mine } } }", 50, True),
    ],
)
def test_a_documents_policy_follows_apollos_rules(query, max_age, private):
    policy = policy_of(query)
    assert (policy.max_age, policy.private) == (max_age, private)


def test_a_mutation_has_no_policy():
    schema = make_executable_schema(SDL + "type Mutation { go: Int @cacheControl(maxAge: 9) }")
    assert query_policy(CacheHints(schema), parse("mutation { go }"), None) is None


def test_hints_name_each_stated_field_by_its_path_with_aliases_and_list_indices():
    policy = policy_of("{ page { items { name mine } } alias: short { name } count }")
    data = {
        "page": {"items": [{"name": "a", "mine": "x"}, None, {"name": "b", "mine": "y"}]},
        "alias": None,
        "count": 3,
    }
    assert policy.hints(data) == [
        {"path": ["page"], "maxAge": 40},
        {"path": ["page", "items"], "maxAge": 100},  # a list field has one hint
        {"path": ["page", "items", 0, "mine"], "maxAge": 50, "scope": "PRIVATE"},
        {"path": ["page", "items", 2, "mine"], "maxAge": 50, "scope": "PRIVATE"},
        {"path": ["alias"], "maxAge": 10},
    ]


def test_me_is_private_for_a_minute(client):
    response = gql(client, "{ me { id email } }", headers=AUTH)
    assert response.json()["extensions"] == cache_hints((["me"], 60))
    assert response.headers["Cache-Control"] == "private, max-age=60"


def test_a_query_with_an_uncacheable_field_is_no_store_but_keeps_its_hints(client, fake_tasks):
    response = gql(client, '{ me { id } task(id: "x") { status } }', headers=AUTH)
    assert response.json()["extensions"] == cache_hints((["me"], 60))
    assert response.headers["Cache-Control"] == "no-store"


def test_a_mutation_is_no_store_without_hints(client):
    response = gql(client, "mutation { logout }", headers=AUTH)
    assert response.json() == {"data": {"logout": True}}
    assert response.headers["Cache-Control"] == "no-store"


def test_a_response_with_errors_is_no_store(client, fake_files):
    fake_files.get_file = answering(None)
    unauthenticated = gql(client, "{ me { id } }")
    assert unauthenticated.json()["errors"]
    assert unauthenticated.headers["Cache-Control"] == "no-store"
    partial = gql(client, '{ file(id: "x") { id } tasks { totalCount } }')
    assert partial.json()["errors"]
    assert partial.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("query", ["{ __typename }", "{ nope }", "{ me { id "])
def test_a_query_with_nothing_hinted_or_not_executed_is_no_store(client, query):
    response = gql(client, query, headers=AUTH)
    assert "extensions" not in response.json()
    assert response.headers["Cache-Control"] == "no-store"


def test_a_request_refused_before_graphql_is_no_store(client):
    response = client.post(
        "/graphql", content=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["Cache-Control"] == "no-store"


def test_a_named_operation_gets_its_own_policy(client):
    document = "query Mine { me { id } } query Theirs { tasks { totalCount } }"
    for name, expected in (("Mine", "private, max-age=60"), ("Theirs", "no-store")):
        response = client.post(
            "/graphql", json={"query": document, "operationName": name}, headers=AUTH
        )
        assert response.headers["Cache-Control"] == expected
