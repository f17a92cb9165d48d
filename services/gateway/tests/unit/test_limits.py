"""Abuse limits: depth, cost, top-level fields (aliases), tokens and introspection."""

from __future__ import annotations

import pytest

from services.gateway.config import GatewaySettings
from services.gateway.tests.conftest import cache_hints, client_of, gql
from shared.testing import production_environ

DEEP_TASKS = "{ tasks { edges { node { dependsOn { dependsOn { id } } } } } }"  # 6 levels


def _codes(response) -> list[str]:
    return [error["extensions"]["code"] for error in response.json()["errors"]]


def _messages(response) -> str:
    return " ".join(error["message"] for error in response.json()["errors"])


def test_an_operation_deeper_than_the_limit_is_refused_before_execution(make_app, fake_auth):
    client = client_of(make_app(GRAPHQL_MAX_DEPTH=5))
    response = gql(client, DEEP_TASKS)
    assert response.status_code == 200
    assert _codes(response) == ["BAD_USER_INPUT"]
    assert "nested 6 levels deep; the limit is 5" in _messages(response)
    assert "data" not in response.json()


def test_an_operation_at_the_depth_limit_is_executed(make_app, fake_tasks):
    client = client_of(make_app(GRAPHQL_MAX_DEPTH=6))
    response = gql(client, DEEP_TASKS, headers={"Authorization": "Bearer t"})
    assert response.json() == {"data": {"tasks": {"edges": [{"node": {"dependsOn": []}}]}}}
    assert [call[0] for call in fake_tasks.calls] == ["list_tasks"]


def test_fragments_do_not_hide_depth(make_app):
    client = client_of(make_app(GRAPHQL_MAX_DEPTH=5))
    query = """
        query { tasks { edges { ...Edge } } }
        fragment Edge on TaskEdge { node { ...Deps } }
        fragment Deps on Task { dependsOn { ... on Task { dependsOn { id } } } }
    """
    response = gql(client, query)
    assert "nested 6 levels deep" in _messages(response)


def test_introspection_is_not_counted_as_depth(make_app):
    client = client_of(make_app(GRAPHQL_MAX_DEPTH=3))
    query = "{ __schema { types { fields { type { ofType { ofType { ofType { name } } } } } } } }"
    response = gql(client, query)
    assert "errors" not in response.json()


def test_a_fragment_cycle_is_reported_not_looped_on(client):
    query = """
        query { me { ...A } }
        fragment A on User { id ...B }
        fragment B on User { email ...A }
    """
    response = gql(client, query)
    assert _codes(response) == ["BAD_USER_INPUT"] * len(response.json()["errors"])
    assert "Cannot spread fragment" in _messages(response)


def test_an_operation_over_the_cost_limit_is_refused_with_its_cost(make_app):
    client = client_of(make_app(GRAPHQL_MAX_COST=500))
    response = gql(client, "{ files(first: 1000) { edges { node { id filename } } } }")
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["cost"] == {"requestedQueryCost": 3002, "maximumAvailable": 500}


def test_the_cost_of_a_list_follows_the_first_variable(make_app):
    client = client_of(make_app(GRAPHQL_MAX_COST=500))
    query = "query ($n: Int) { files(first: $n) { edges { node { id } } } }"
    assert "cost" in _messages(gql(client, query, {"n": 1000}))
    headers = {"Authorization": "Bearer t"}
    assert "errors" not in gql(client, query, {"n": 50}, headers=headers).json()


def test_a_list_without_first_costs_its_default_page_size(make_app):
    client = client_of(make_app(GRAPHQL_MAX_COST=50))
    response = gql(client, "{ files { edges { node { id } } } }")
    assert response.json()["errors"][0]["extensions"]["cost"]["requestedQueryCost"] == 61


def test_a_page_of_twenty_tasks_with_their_logs_passes_and_forty_do_not(client):
    query = "query ($n: Int) { tasks(first: $n) { edges { node { id status logs } } } }"
    headers = {"Authorization": "Bearer t"}
    assert "errors" not in gql(client, query, {"n": 20}, headers=headers).json()
    (error,) = gql(client, query, {"n": 40}, headers=headers).json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["cost"]["requestedQueryCost"] > 1000


def test_logs_cost_more_than_plain_task_fields(make_app):
    client = client_of(make_app(GRAPHQL_MAX_COST=20))
    headers = {"Authorization": "Bearer t"}
    assert "errors" not in gql(client, '{ task(id: "x") { id status } }', headers=headers).json()
    response = gql(client, '{ task(id: "x") { id logs } }', headers=headers)
    assert response.json()["errors"][0]["extensions"]["cost"]["requestedQueryCost"] == 27


def test_an_invalid_argument_is_reported_once(client):
    response = gql(client, '{ files(first: "x") { totalCount } }')
    assert len(response.json()["errors"]) == 1


def test_password_mutations_are_expensive(make_app, fake_auth):
    client = client_of(make_app(GRAPHQL_MAX_COST=100, GRAPHQL_MAX_ROOT_FIELDS=10))
    logins = " ".join(
        f'l{i}: login(email: "a@example.com", password: "p{i}") {{ expiresIn }}' for i in range(5)
    )
    response = gql(client, f"mutation {{ {logins} }}")
    assert "maximum cost of 100" in _messages(response)
    assert fake_auth.calls == []


def test_aliases_count_towards_the_top_level_field_limit(make_app, fake_auth):
    client = client_of(make_app(GRAPHQL_MAX_ROOT_FIELDS=10))
    ten = " ".join(f"m{i}: me {{ id }}" for i in range(10))
    eleven = ten + " m10: me { id }"
    headers = {"Authorization": "Bearer t"}
    assert "errors" not in gql(client, f"{{ {ten} }}", headers=headers).json()
    response = gql(client, f"{{ {eleven} }}", headers=headers)
    assert _codes(response) == ["BAD_USER_INPUT"]
    assert "selects 11 top-level fields (each alias counts); the limit is 10" in _messages(response)


def test_fifty_aliased_logins_never_reach_auth(client, fake_auth):
    logins = " ".join(
        f'a{i}: login(email: "victim@example.com", password: "guess{i}") {{ accessToken }}'
        for i in range(50)
    )
    response = gql(client, f"mutation {{ {logins} }}")
    assert "selects 50 top-level fields" in _messages(response)
    assert fake_auth.calls == []


def test_fragments_do_not_hide_top_level_fields(make_app):
    client = client_of(make_app(GRAPHQL_MAX_ROOT_FIELDS=3))
    query = """
        query { ...Two ... on Query { c: me { id } d: me { id } } }
        fragment Two on Query { a: me { id } b: me { id } }
    """
    assert "selects 4 top-level fields" in _messages(gql(client, query))


def test_a_document_over_the_token_limit_is_refused(make_app):
    client = client_of(make_app(GRAPHQL_MAX_TOKENS=50))
    response = gql(client, "{ me { " + "id " * 60 + "} }")
    assert _codes(response) == ["BAD_USER_INPUT"]
    assert "tokens" in _messages(response)


def test_absurd_nesting_is_a_clean_bad_user_input(make_app):
    client = client_of(make_app(GRAPHQL_MAX_TOKENS=100_000))
    response = gql(client, "{ me " * 3000 + "}" * 3000)
    assert response.status_code == 200
    assert _codes(response) == ["BAD_USER_INPUT"]


@pytest.mark.parametrize(
    "query",
    [
        "{ __schema { types { name } } }",
        '{ __type(name: "User") { fields { name } } }',
        "{ me { id } __schema { queryType { name } } }",
    ],
)
def test_introspection_can_be_switched_off(make_app, fake_auth, query):
    client = client_of(make_app(GRAPHQL_INTROSPECTION=False))
    response = gql(client, query, headers={"Authorization": "Bearer t"})
    assert "BAD_USER_INPUT" in _codes(response)
    assert "introspection is disabled" in _messages(response)
    assert fake_auth.calls == []


def test_typename_still_works_without_introspection(make_app):
    client = client_of(make_app(GRAPHQL_INTROSPECTION=False))
    response = gql(
        client, "{ __typename me { __typename id } }", headers={"Authorization": "Bearer t"}
    )
    assert response.json() == {
        "data": {"__typename": "Query", "me": {"__typename": "User", "id": "7"}},
        "extensions": cache_hints((["me"], 60)),
    }


def test_without_introspection_there_is_no_graphiql_and_no_field_suggestions(make_app):
    closed = client_of(make_app(GRAPHQL_INTROSPECTION=False))
    assert closed.get("/graphql").status_code == 404
    assert "Did you mean" not in _messages(gql(closed, "{ mee { id } }"))
    open_ = client_of(make_app(GRAPHQL_INTROSPECTION=True))
    assert "Did you mean 'me'?" in _messages(gql(open_, "{ mee { id } }"))


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, True),
        ({"DOCKYARD_ENV": "test"}, True),
        ({"DOCKYARD_ENV": "production"}, False),
        ({"DOCKYARD_ENV": "production", "GRAPHQL_INTROSPECTION": "on"}, True),
        ({"DOCKYARD_ENV": "development", "GRAPHQL_INTROSPECTION": "false"}, False),
    ],
)
def test_introspection_defaults_to_off_only_in_production(environ, expected):
    if environ.get("DOCKYARD_ENV") == "production":
        environ = production_environ(**environ)
    assert GatewaySettings(environ).GRAPHQL_INTROSPECTION is expected
