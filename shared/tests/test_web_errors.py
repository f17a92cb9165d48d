"""Every service answers errors in one shape: status, code, message, fields."""

from __future__ import annotations

from flask_smorest import abort

from shared.config import CommonSettings
from shared.error_codes import ALL_CODES, ERROR_CODES
from shared.openapi import ErrorSchema
from shared.web import create_service_app, error_body, flatten_field_errors


def test_marshmallow_messages_flatten_to_field_names():
    nested = {"json": {"email": ["Not a valid email."], "env": {"0": {"name": ["Bad."]}}}}
    assert flatten_field_errors(nested) == {"email": "Not a valid email.", "env.0.name": "Bad."}


def test_unexpected_errors_are_a_generic_500_without_a_trace():
    app, _api = create_service_app("example", CommonSettings({}), title="x")

    @app.route("/boom")
    def boom():
        raise RuntimeError("secret internal detail")

    @app.route("/gone")
    def gone():
        abort(404, message="No such thing.")

    client = app.test_client()
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.json == {
        "status": 500,
        "code": "INTERNAL_SERVER_ERROR",
        "message": "Internal server error.",
    }
    assert "secret internal detail" not in response.get_data(as_text=True)
    assert client.get("/gone").json == {
        "status": 404,
        "code": "NOT_FOUND",
        "message": "No such thing.",
    }


def test_readiness_names_the_failing_dependency():
    def broken():
        raise ConnectionError("down")

    app, _api = create_service_app(
        "example", CommonSettings({}), title="x", readiness_checks={"database": broken}
    )
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["fields"] == {"database": "ConnectionError"}


def test_the_documented_error_schema_is_the_shape_errors_are_answered_in():
    app, _api = create_service_app("example", CommonSettings({}), title="x")
    document = app.test_client().get("/openapi.json").json
    error = document["components"]["schemas"]["Error"]
    assert error["properties"]["status"]["type"] == "integer"
    assert error["properties"]["code"]["type"] == "string"
    assert set(error["properties"]["code"]["enum"]) == set(ALL_CODES)
    assert error["additionalProperties"] is False
    assert set(error["required"]) == {"status", "code", "message"}
    for status in (*ERROR_CODES, 500):
        assert ErrorSchema().validate(error_body(status, "Why.", fields={"name": "Bad."})) == {}
    assert ErrorSchema().validate({**error_body(400, "Why."), "errors": {}}) != {}
