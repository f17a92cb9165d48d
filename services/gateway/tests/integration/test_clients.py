"""The REST clients against a stub service over real HTTP: errors, retries, timeouts, headers."""

from __future__ import annotations

import asyncio
import collections
import socket
import time
from collections.abc import AsyncIterator

import pytest
from flask import Flask, jsonify, request

from services.gateway.clients import AuthClient, Caller, FilesClient, TasksClient
from services.gateway.errors import GatewayError, NotFound, ServiceUnavailable
from services.gateway.tests.apollo import apollo_upload
from services.gateway.uploads import MultipartLimits, MultipartReader
from shared.testing import ServerThread

hits: collections.Counter = collections.Counter()


def _stub() -> Flask:
    app = Flask("stub")

    @app.route("/status/<int:status>", methods=["GET", "POST"])
    def status(status: int):
        hits[(request.method, status)] += 1
        body = {"status": status, "code": request.args.get("code", "NOT_FOUND"), "message": "m"}
        headers = {"Retry-After": "17"} if status == 429 else {}
        return jsonify(body), status, headers

    @app.post("/busy")
    def busy():
        body = {"status": 503, "code": "SERVICE_UNAVAILABLE", "message": "Slow down."}
        return jsonify(body), 503, {"Retry-After": "7"}

    @app.post("/fields")
    def fields():
        body = {
            "status": 400,
            "code": "BAD_USER_INPUT",
            "message": "Invalid input.",
            "fields": {"refresh_token": "Missing data.", "email": "Not a valid email."},
        }
        return jsonify(body), 400

    @app.post("/summary")
    def summary():
        fields = {"timeout_seconds": "Must be at most 60 seconds.", "env.0.name": "Invalid."}
        message = (
            "Invalid input: env.0.name: Invalid.; timeout_seconds: Must be at most 60 seconds."
        )
        body = {"status": 400, "code": "BAD_USER_INPUT", "message": message, "fields": fields}
        return jsonify(body), 400

    @app.post("/whole-body")
    def whole_body():
        body = {"status": 400, "code": "BAD_USER_INPUT", "message": "Unknown field."}
        return jsonify({**body, "fields": {"_schema": "Unknown field."}}), 400

    @app.get("/v1/tasks/<task_id>")
    def task(task_id: str):
        hits[("GET", task_id)] += 1
        return jsonify({"status": 404, "code": "NOT_FOUND", "message": "Task not found."}), 404

    @app.get("/v1/tasks/<task_id>/logs")
    def logs(task_id: str):
        return jsonify({"task_id": task_id, "text": request.query_string.decode()})

    @app.get("/html")
    def html():
        return "<h1>Bad Request</h1>", 400, {"Content-Type": "text/html"}

    @app.route("/slow", methods=["GET", "POST"])
    def slow():
        time.sleep(1.0)
        return jsonify({"ok": True})

    @app.get("/echo")
    def echo():
        response = jsonify({"headers": dict(request.headers), "cookies": dict(request.cookies)})
        response.set_cookie("session", "someone-elses")
        return response

    return app


@pytest.fixture(scope="module")
def stub():
    """The stub service on a loopback port."""
    with ServerThread(_stub()) as server:
        yield server


@pytest.fixture
def run():
    """Run a coroutine to its end on the test's one event loop (where the clients pool)."""
    with asyncio.Runner() as runner:
        yield runner.run


@pytest.fixture
def tasks(stub, run):
    """A tasks client of the stub."""
    client = TasksClient(stub.url, connect_timeout=0.5, read_timeout=0.3, retries=2, pool_size=4)
    yield client
    run(client.close())


@pytest.fixture
def auth(stub, run):
    """A client of the stub with short timeouts and two retries."""
    client = AuthClient(stub.url, connect_timeout=0.5, read_timeout=0.3, retries=2, pool_size=4)
    yield client
    run(client.close())


def _fails(run, call) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        run(call())
    return info.value


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_5xx_answer_is_service_unavailable(auth, status, run):
    error = _fails(run, lambda: auth.request("POST", f"/status/{status}", Caller()))
    assert isinstance(error, ServiceUnavailable)
    assert error.message == "The auth service is unavailable. Try again later."


def test_a_503_with_retry_after_is_service_unavailable_carrying_it(auth, run):
    error = _fails(run, lambda: auth.request("POST", "/busy", Caller()))
    assert isinstance(error, ServiceUnavailable)
    assert error.extensions() == {"code": "SERVICE_UNAVAILABLE", "retryAfter": 7}


def test_a_call_that_gets_no_connection_in_time_is_told_to_slow_down(stub, run):
    client = AuthClient(stub.url, connect_timeout=0.2, read_timeout=5, retries=0, pool_size=1)

    async def two_at_once():
        # The only pooled connection is busy for a second; the second call waits for it.
        return await asyncio.gather(
            client.request("POST", "/slow", Caller()),
            client.request("POST", "/slow", Caller()),
            return_exceptions=True,
        )

    try:
        answers = run(two_at_once())
    finally:
        run(client.close())
    refused = [a for a in answers if isinstance(a, GatewayError)]
    assert len(refused) == 1
    assert refused[0].extensions() == {"code": "SERVICE_UNAVAILABLE", "retryAfter": 1}


def test_gets_are_retried_on_503_and_posts_never(auth, run):
    hits.clear()
    _fails(run, lambda: auth.request("GET", "/status/503", Caller()))
    _fails(run, lambda: auth.request("POST", "/status/503", Caller()))
    assert hits[("GET", 503)] == 3
    assert hits[("POST", 503)] == 1


def test_a_service_too_slow_to_answer_is_service_unavailable_quickly(auth, run):
    started = time.monotonic()
    error = _fails(run, lambda: auth.request("POST", "/slow", Caller()))
    assert isinstance(error, ServiceUnavailable)
    assert time.monotonic() - started < 0.9


def test_a_closed_port_is_service_unavailable_without_the_address(run):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = AuthClient(
        f"http://127.0.0.1:{port}", connect_timeout=0.5, read_timeout=0.5, retries=1, pool_size=1
    )
    error = _fails(run, lambda: client.current_user(Caller(token="t")))
    run(client.close())
    assert isinstance(error, ServiceUnavailable)
    assert str(port) not in error.message and "127.0.0.1" not in error.message


@pytest.mark.parametrize(
    "code", ["UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "CONFLICT", "PAYLOAD_TOO_LARGE"]
)
def test_the_shared_error_code_passes_through(auth, code, run):
    error = _fails(run, lambda: auth.request("POST", f"/status/409?code={code}", Caller()))
    assert (error.code, error.message) == (code, "m")


def test_rate_limited_carries_retry_after_in_seconds(auth, run):
    error = _fails(run, lambda: auth.request("POST", "/status/429?code=RATE_LIMITED", Caller()))
    assert error.extensions() == {"code": "RATE_LIMITED", "retryAfter": 17}


def test_field_errors_are_renamed_to_graphql_argument_names(auth, run):
    error = _fails(run, lambda: auth.request("POST", "/fields", Caller()))
    assert error.extensions() == {
        "code": "BAD_USER_INPUT",
        "fields": {"refreshToken": "Missing data.", "email": "Not a valid email."},
    }


@pytest.mark.parametrize(
    ("path", "method"), [("/status/405?code=METHOD_NOT_ALLOWED", "POST"), ("/html", "GET")]
)
def test_an_answer_outside_the_shared_shape_is_a_generic_internal_error(auth, path, method, run):
    error = _fails(run, lambda: auth.request(method, path, Caller()))
    assert (error.code, error.message, error.fields) == (
        "INTERNAL_SERVER_ERROR",
        "Internal server error.",
        None,
    )


def test_headers_are_forwarded_and_cookies_never_kept(auth, run):
    caller = Caller(client_address="203.0.113.9", request_id="rid-1", token="tok")
    first = run(auth.request("GET", "/echo", caller, with_token=True))
    assert first["headers"]["X-Forwarded-For"] == "203.0.113.9"
    assert first["headers"]["X-Request-Id"] == "rid-1"
    assert first["headers"]["Authorization"] == "Bearer tok"
    second = run(auth.request("GET", "/echo", Caller()))
    assert second["cookies"] == {}
    assert "Authorization" not in second["headers"]


def test_the_default_field_summary_is_reworded_with_graphql_names(auth, run):
    error = _fails(run, lambda: auth.request("POST", "/summary", Caller()))
    assert error.fields == {
        "timeoutSeconds": "Must be at most 60 seconds.",
        "env.0.name": "Invalid.",
    }
    assert error.message == (
        "Invalid input: env.0.name: Invalid.; timeoutSeconds: Must be at most 60 seconds."
    )


def test_an_error_of_the_whole_body_keeps_its_name(auth, run):
    error = _fails(run, lambda: auth.request("POST", "/whole-body", Caller()))
    assert (error.message, error.fields) == ("Unknown field.", {"_schema": "Unknown field."})


def test_a_missing_task_is_none(tasks, run):
    task_id = "3f2c1a4e-8d1b-4c55-9f0e-2b7d7c9e6a01"
    hits.clear()
    assert run(tasks.get_task(Caller(token="t"), task_id=task_id)) is None
    assert hits[("GET", task_id)] == 1  # a 404 is an answer, not retried


@pytest.mark.parametrize("task_id", ["1", "../../healthz", "x?first=1", ""])
def test_an_id_that_is_no_uuid_never_reaches_the_service(tasks, task_id, run):
    hits.clear()
    assert run(tasks.get_task(Caller(token="t"), task_id=task_id)) is None
    with pytest.raises(NotFound):
        run(tasks.cancel_task(Caller(token="t"), task_id=task_id))
    with pytest.raises(NotFound):
        run(tasks.read_logs(Caller(token="t"), task_id=task_id))
    assert sum(hits.values()) == 0


def test_a_task_id_is_sent_in_canonical_form_with_the_tail(tasks, run):
    answer = run(
        tasks.read_logs(Caller(token="t"), task_id="{3F2C1A4E-8D1B-4C55-9F0E-2B7D7C9E6A01}", tail=5)
    )
    assert answer == {"task_id": "3f2c1a4e-8d1b-4c55-9f0e-2b7d7c9e6a01", "text": "tail=5"}


@pytest.fixture
def deaf_service():
    """A loopback port that accepts connections and never reads from them."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_an_upload_the_files_service_stops_taking_is_service_unavailable(deaf_service, run):
    files = FilesClient(
        deaf_service,
        connect_timeout=0.5,
        read_timeout=0.5,
        retries=0,
        pool_size=1,
        upload_timeout=0.5,
    )
    request = apollo_upload("big.bin")
    content = b"x" * (64 * 1024 * 1024)  # far more than the loopback socket buffers hold

    async def body() -> AsyncIterator[bytes]:
        data = request.body(content)
        for start in range(0, len(data), 64 * 1024):
            yield data[start : start + 64 * 1024]

    async def upload() -> dict:
        limits = MultipartLimits(max_file_bytes=len(content), max_form_bytes=10_000)
        reader = MultipartReader(body(), content_type=request.content_type, limits=limits)
        operation = await reader.read_operation()
        return await files.upload_file(Caller(token="t"), upload=operation["variables"]["file"])

    started = time.monotonic()
    error = _fails(run, upload)
    run(files.close())
    assert isinstance(error, ServiceUnavailable)
    assert error.message == "The files service is unavailable. Try again later."
    assert time.monotonic() - started < 10
