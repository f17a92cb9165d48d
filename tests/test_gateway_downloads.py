"""File.downloadUrl: signed links served by uvicorn's gateway from the real files service."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
from sqlalchemy.orm import Session

from services.files.models import users as files_users
from services.gateway.downloads import DownloadLinks
from services.gateway.security_headers import API_POLICY
from shared.user_replica import record_user_deleted
from tests.conftest import gateway_env, gateway_process, uvicorn_gateway
from tests.gateway_clients import Account, Gateway, upload

GET_URL = "query ($id: ID!) { file(id: $id) { id downloadUrl } }"
LIST_URLS = "{ files(first: 5) { edges { node { id downloadUrl } } } }"
CONTENT = b"0123456789abcdefghij\n" * 500
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def gateway(served_gateway) -> Gateway:
    """The session's gateway, served by uvicorn in front of the real services."""
    return Gateway(served_gateway)


@pytest.fixture
def alice(gateway) -> Account:
    """A fresh user."""
    return gateway.sign_up()


@pytest.fixture
def bob(gateway) -> Account:
    """Another fresh user."""
    return gateway.sign_up()


def download_url(gateway: Gateway, user: Account, file_id: str) -> str | None:
    """The file's downloadUrl as `user` reads it through the gateway."""
    body = gateway(GET_URL, {"id": file_id}, token=user.token)
    assert "errors" not in body, body
    return body["data"]["file"] and body["data"]["file"]["downloadUrl"]


def absolute(gateway: Gateway, url: str) -> str:
    """A link made absolute against the gateway it came from (links are paths by default)."""
    return url if url.startswith("http") else gateway.url.removesuffix("/graphql") + url


def with_query(url: str, **changes: str) -> str:
    """`url` with some query parameters replaced."""
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    return parts._replace(query=urlencode({**query, **changes})).geturl()


def test_a_download_url_serves_the_content_without_a_token(gateway, alice):
    file_id = upload(gateway, alice, CONTENT, filename="report <1>.txt")["id"]
    url = download_url(gateway, alice, file_id)
    assert url is not None and "/files/" in url
    response = requests.get(absolute(gateway, url), timeout=10)
    assert response.status_code == 200, response.text
    assert response.content == CONTENT
    assert response.headers["ETag"] == f'"{hashlib.sha256(CONTENT).hexdigest()}"'
    assert response.headers["Content-Length"] == str(len(CONTENT))
    assert response.headers["Accept-Ranges"] == "bytes"
    # The files service's download headers reach the browser, alongside the gateway's own.
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    policies = response.raw.headers.getlist("Content-Security-Policy")
    assert "default-src 'none'; sandbox" in policies
    assert API_POLICY in policies
    assert "X-Request-ID" in response.headers


def test_a_range_request_gets_206_with_just_those_bytes(gateway, alice):
    file_id = upload(gateway, alice, CONTENT)["id"]
    url = absolute(gateway, download_url(gateway, alice, file_id))
    response = requests.get(url, headers={"Range": "bytes=100-149"}, timeout=10)
    assert response.status_code == 206
    assert response.content == CONTENT[100:150]
    assert response.headers["Content-Range"] == f"bytes 100-149/{len(CONTENT)}"
    suffix = requests.get(url, headers={"Range": "bytes=-5"}, timeout=10)
    assert (suffix.status_code, suffix.content) == (206, CONTENT[-5:])
    beyond = requests.get(url, headers={"Range": f"bytes={len(CONTENT)}-"}, timeout=10)
    assert beyond.status_code == 416
    assert beyond.json()["code"] == "RANGE_NOT_SATISFIABLE"


def test_if_none_match_with_the_etag_gets_304(gateway, alice):
    file_id = upload(gateway, alice, CONTENT)["id"]
    url = absolute(gateway, download_url(gateway, alice, file_id))
    etag = requests.get(url, timeout=10).headers["ETag"]
    response = requests.get(url, headers={"If-None-Match": etag}, timeout=10)
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["ETag"] == etag
    changed = requests.get(url, headers={"If-None-Match": '"something-else"'}, timeout=10)
    assert (changed.status_code, changed.content) == (200, CONTENT)


def test_a_tampered_link_is_forbidden(gateway, alice, bob):
    alices = upload(gateway, alice, b"alice's secret\n")["id"]
    bobs = upload(gateway, bob, b"bob's secret\n")["id"]
    url = absolute(gateway, download_url(gateway, alice, alices))
    signature = parse_qs(urlsplit(url).query)["sig"][0]
    tampered = [
        with_query(url, sig=signature[:-1] + ("A" if signature[-1] != "A" else "B")),
        with_query(url, sig=""),
        with_query(url, expires=str(int(time.time()) + 86_400)),
        with_query(url, user=bob.id),
        url.replace(alices, bobs),
        url.replace(alices, str(uuid.uuid4())),
        url.split("?")[0],
    ]
    for link in tampered:
        response = requests.get(link, timeout=10)
        assert response.status_code == 403, (link, response.text)
        assert response.json()["code"] == "FORBIDDEN"
        assert b"secret" not in response.content
        assert "Traceback" not in response.text


def test_another_users_file_cannot_be_signed_through_the_api(gateway, alice, bob):
    file_id = upload(gateway, alice)["id"]
    assert download_url(gateway, bob, file_id) is None
    body = gateway(LIST_URLS, token=bob.token)
    assert body["data"]["files"]["edges"] == []
    mine = gateway(LIST_URLS, token=alice.token)["data"]["files"]["edges"]
    assert [edge["node"]["id"] for edge in mine] == [file_id]
    assert mine[0]["node"]["downloadUrl"]


def test_a_link_for_a_deleted_file_is_not_found(gateway, alice):
    file_id = upload(gateway, alice)["id"]
    url = absolute(gateway, download_url(gateway, alice, file_id))
    gateway("mutation ($id: ID!) { deleteFile(id: $id) }", {"id": file_id}, token=alice.token)
    response = requests.get(url, timeout=10)
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


def test_only_get_and_head_are_served(gateway, alice):
    file_id = upload(gateway, alice, CONTENT)["id"]
    url = absolute(gateway, download_url(gateway, alice, file_id))
    head = requests.head(url, timeout=10)
    assert (head.status_code, head.headers["Content-Length"]) == (200, str(len(CONTENT)))
    assert requests.post(url, timeout=10).status_code == 405


@pytest.fixture(scope="module")
def short_lived_gateway(auth_server, tasks_server, files_server) -> Gateway:
    """A gateway whose links live one second, at a public URL of its own."""
    env = gateway_env(
        auth_server.url,
        tasks_url=tasks_server.url,
        files_url=files_server.url,
        GATEWAY_DOWNLOAD_URL_TTL_SECONDS="1",
    )
    with uvicorn_gateway(env) as url:
        yield Gateway(url)


def test_an_expired_link_is_gone(short_lived_gateway):
    gateway = short_lived_gateway
    user = gateway.sign_up()
    file_id = upload(gateway, user)["id"]
    url = absolute(gateway, download_url(gateway, user, file_id))
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])
    assert expires <= time.time() + 1
    time.sleep(max(expires - time.time(), 0) + 1.1)
    response = requests.get(url, timeout=10)
    assert response.status_code == 410
    assert response.json()["code"] == "LINK_EXPIRED"


def test_links_expire_after_the_configured_seconds_by_default_five_minutes():
    links = DownloadLinks("s" * 32, ttl=300)
    file_id, owner_id = str(uuid.uuid4()), str(uuid.uuid4())
    url = links.url_for(file_id=file_id, owner_id=owner_id, now=1000.0)
    assert url.startswith(f"/files/{file_id}/content?")
    query = url.split("?", 1)[1].encode()
    assert parse_qs(query.decode())["expires"] == ["1300"]
    assert links.verify(file_id=file_id, query_string=query, now=1300.0) == owner_id
    with pytest.raises(Exception, match="expired"):
        links.verify(file_id=file_id, query_string=query, now=1301.0)
    other_secret = DownloadLinks("t" * 32, ttl=300)
    with pytest.raises(Exception, match="not valid"):
        other_secret.verify(file_id=file_id, query_string=query, now=1000.0)


def test_the_files_service_takes_a_delegated_user_only_on_the_download(
    files_app, files_server, gateway, alice
):
    file_id = upload(gateway, alice, b"delegated\n")["id"]
    secret = files_app.extensions["files"].settings.SERVICE_SECRET
    now = int(time.time())
    claims = {"iss": "dockyard-gateway", "aud": "files", "iat": now, "exp": now + 60}
    credential = jwt.encode({**claims, "obo": alice.id}, secret, algorithm="HS256")
    forged = jwt.encode({**claims, "obo": alice.id}, "x" * 48, algorithm="HS256")
    headers = {"X-Service-Token": credential}
    content = requests.get(
        f"{files_server.url}/v1/files/{file_id}/content", headers=headers, timeout=10
    )
    assert (content.status_code, content.content) == (200, b"delegated\n")
    # Every other endpoint still wants the user's own token.
    listing = requests.get(f"{files_server.url}/v1/files", headers=headers, timeout=10)
    assert listing.status_code == 401
    refused = requests.get(
        f"{files_server.url}/v1/files/{file_id}/content",
        headers={"X-Service-Token": forged},
        timeout=10,
    )
    assert refused.status_code == 401


def test_a_delegated_download_for_a_deleted_user_is_refused(files_app, files_server):
    deleted = uuid.uuid4()
    with Session(files_app.extensions["files"].engine) as session, session.begin():
        record_user_deleted(session, files_users, user_id=deleted, deleted_at=datetime.now(UTC))
    secret = files_app.extensions["files"].settings.SERVICE_SECRET
    now = int(time.time())
    claims = {"iss": "dockyard-gateway", "aud": "files", "iat": now, "exp": now + 60}
    credential = jwt.encode({**claims, "obo": str(deleted)}, secret, algorithm="HS256")
    response = requests.get(
        f"{files_server.url}/v1/files/{uuid.uuid4()}/content",
        headers={"X-Service-Token": credential},
        timeout=10,
    )
    assert response.status_code == 401, response.text


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.M).group(1))


def test_a_large_download_streams_through_the_gateway_without_buffering_it(
    auth_server, tasks_server, files_server
):
    size, piece = 96 * MIB, bytes(range(256)) * 4096
    env = gateway_env(auth_server.url, tasks_url=tasks_server.url, files_url=files_server.url)
    with gateway_process(env) as served:
        gateway = Gateway(served.url)
        user = gateway.sign_up()
        answer = gateway.upload(
            (piece for _ in range(size // len(piece))), token=user.token, filename="big.bin"
        )
        assert answer.status_code == 200, answer.text
        file_id = answer.json()["data"]["uploadFile"]["id"]
        url = absolute(gateway, download_url(gateway, user, file_id))
        pid = served.process.pid
        with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        before = _status_kib(pid, "VmRSS") * 1024
        digest, received = hashlib.sha256(), 0
        with requests.get(url, stream=True, timeout=60) as response:
            assert response.status_code == 200
            for chunk in response.iter_content(MIB):
                digest.update(chunk)
                received += len(chunk)
        growth = _status_kib(pid, "VmHWM") * 1024 - before
    assert received == size
    assert digest.hexdigest() == hashlib.sha256(piece * (size // len(piece))).hexdigest()
    assert growth < 32 * MIB, f"the download grew the gateway's peak RSS by {growth / MIB:.0f} MiB"
