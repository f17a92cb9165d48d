"""POST /graphql over HTTP: status codes, media types, body checks, forwarded headers."""

from __future__ import annotations

import json

import pytest

from services.gateway.errors import GatewayError
from services.gateway.tests.conftest import cache_hints, client_of, gql

GRAPHQL_RESPONSE = "application/graphql-response+json"


def test_an_executed_operation_with_errors_answers_200(client, fake_auth):
    fake_auth.error = GatewayError("Invalid email or password.", code="UNAUTHENTICATED")
    response = gql(
        client, 'mutation { login(email: "a@example.com", password: "x") { accessToken } }'
    )
    assert response.status_code == 200
    assert response.json()["data"] is None
    assert response.json()["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}


@pytest.mark.parametrize(
    "query", ["{ nope }", "{ me { id ", "query ($x: Int!) { files(first: $x) { totalCount } }"]
)
def test_parse_and_validation_failures_answer_200_for_application_json(client, query):
    response = gql(client, query, headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize(
    "query", ["{ nope }", "{ me { id ", "query ($x: Int!) { files(first: $x) { totalCount } }"]
)
def test_parse_and_validation_failures_answer_400_for_graphql_response_json(client, query):
    response = gql(client, query, headers={"Accept": f"{GRAPHQL_RESPONSE}, application/json;q=0.9"})
    assert response.status_code == 400
    assert response.headers["content-type"] == GRAPHQL_RESPONSE
    assert "data" not in response.json()
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_graphql_response_json_still_answers_200_once_executed(client):
    response = gql(client, "{ files { totalCount } }", headers={"Accept": GRAPHQL_RESPONSE})
    assert response.status_code == 200
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_data_follows_the_order_of_the_query(client):
    response = gql(
        client,
        'mutation { login(email: "a@example.com", password: "rusty anchor at dawn") '
        "{ user { email id createdAt } expiresIn accessToken } }",
    )
    assert response.status_code == 200
    payload = json.loads(response.text)["data"]["login"]
    assert list(payload) == ["user", "expiresIn", "accessToken"]
    assert list(payload["user"]) == ["email", "id", "createdAt"]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ('{"query": "{ me { id } }"', "application/json", "not valid JSON"),
        (b"\xff\xfe", "application/json", "not valid JSON"),
        ('"{ me { id } }"', "application/json", "JSON object"),
        ('[{"query": "{ me { id } }"}]', "application/json", "Batched"),
        ('{"variables": {}}', "application/json", "query must be a string"),
        ('{"query": "{ me { id } }", "variables": [1]}', "application/json", "variables"),
        ('{"query": "{ me { id } }", "operationName": 5}', "application/json", "operation name"),
        ("query { me { id } }", "text/plain", "application/json"),
        ("query=%7Bme%7Bid%7D%7D", "application/x-www-form-urlencoded", "application/json"),
    ],
)
def test_a_body_that_is_not_a_graphql_request_is_a_400_with_a_json_error(
    client, body, content_type, message
):
    response = client.post("/graphql", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert message in error["message"]


def test_a_body_over_the_limit_is_payload_too_large(make_app):
    client = client_of(make_app(MAX_REQUEST_BYTES=1024))
    response = gql(client, "{ me { id } }" + " " * 2000)
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


def test_the_request_id_client_address_and_token_are_forwarded(make_app, fake_auth):
    response = gql(
        client_of(make_app(), address="198.51.100.23"),
        "{ me { id } }",
        headers={
            "Authorization": "Bearer the-token",
            "X-Request-ID": "req-123",
            "X-Forwarded-For": "6.6.6.6",
        },
    )
    assert response.json() == {"data": {"me": {"id": "7"}}, "extensions": cache_hints((["me"], 60))}
    assert response.headers["X-Request-ID"] == "req-123"
    ((_name, caller, _kwargs),) = fake_auth.calls
    assert caller.request_id == "req-123"
    # The client's own X-Forwarded-For is not trusted: auth learns the address we saw.
    assert caller.client_address == "198.51.100.23"
    assert caller.token == "the-token"
    assert caller.headers(with_token=True) == {
        "X-Request-ID": "req-123",
        "X-Forwarded-For": "198.51.100.23",
        "Authorization": "Bearer the-token",
    }
    assert "Authorization" not in caller.headers(with_token=False)


@pytest.mark.parametrize("header", [None, "Basic abc", "Bearer ", "bearer"])
def test_me_and_logout_without_a_bearer_token_are_unauthenticated_without_calling_auth(
    client, fake_auth, header
):
    headers = {"Authorization": header} if header else {}
    for query in ("{ me { id } }", "mutation { logout }"):
        response = gql(client, query, headers=headers)
        assert response.status_code == 200
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert fake_auth.calls == []


def test_arguments_reach_auth_in_snake_case(client, fake_auth):
    gql(client, 'mutation { refreshToken(refreshToken: "r-1") { accessToken } }')
    assert fake_auth.calls[0][0] == "refresh"
    assert fake_auth.calls[0][2] == {"refresh_token": "r-1"}


def test_graphiql_is_served_on_get_while_introspection_is_on(client):
    response = client.get("/graphql")
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


def test_health_is_public_and_readiness_and_metrics_are_served_on_the_internal_app(make_app):
    app = make_app()
    public, internal = client_of(app), client_of(app.operations)
    assert public.get("/healthz").json() == {"status": "ok"}
    for path in ("/metrics", "/readyz", "/docs", "/openapi.json"):
        assert public.get(path).status_code == 404, path
    assert internal.get("/healthz").json() == {"status": "ok"}
    assert internal.get("/metrics").status_code == 200
    assert internal.get("/graphql").status_code == 404


def test_readiness_lists_its_checks(make_app):
    internal = client_of(make_app().operations)
    assert internal.get("/readyz").json() == {"status": "ready", "checks": ["auth", "redis"]}


def test_an_unknown_path_is_a_404_in_the_services_error_shape(client):
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json() == {"status": 404, "code": "NOT_FOUND", "message": "Not found."}
    assert response.headers["X-Request-ID"]


def test_another_method_on_graphql_is_a_405_naming_the_allowed_ones(client):
    response = client.put("/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 405
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"
    assert response.headers["Allow"] == "GET, POST, OPTIONS"
    options = client.options("/graphql")
    assert (options.status_code, options.headers["Allow"]) == (200, "GET, POST, OPTIONS")


def test_requests_are_counted_by_endpoint_in_the_metrics(make_app):
    app = make_app()
    client = client_of(app)
    gql(client, "{ __typename }")
    client.get("/nope")
    metrics = client_of(app.operations).get("/metrics").text
    assert 'http_requests_total{endpoint="/graphql",method="POST",status="200"} 1.0' in metrics
    assert 'http_requests_total{endpoint="unmatched",method="GET",status="404"} 1.0' in metrics
