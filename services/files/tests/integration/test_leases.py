"""Input leases: a file lent to a task (tasks' input-file saga), its content, release and expiry."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.files import leases, service
from services.files.tests.conftest import upload
from shared.service_identity import HEADER, ServiceCredentials


def _file(app, client, user, *, status: str = "PROCESSED", content: bytes = b"one\ntwo\n") -> str:
    file_id = upload(client, user, content, filename="input.txt").json["id"]
    with app.extensions["files"].engine.begin() as conn:
        conn.execute(
            text("UPDATE files SET status = :s WHERE id = :f"), {"s": status, "f": file_id}
        )
    return file_id


def _lease(app, *, file_id: str, owner_id: str, task_id: str, saga_id: str = "saga") -> bool:
    files = app.extensions["files"]
    with Session(files.engine) as session, session.begin():
        return leases.lease_input_file(
            session,
            saga_id=saga_id,
            task_id=task_id,
            owner_id=owner_id,
            file_id=file_id,
            lease_seconds=files.settings.INPUT_LEASE_SECONDS,
        )


def _replies(app, task_id: str) -> list[tuple[str, dict]]:
    with app.extensions["files"].engine.connect() as conn:
        return [
            (row.event_type, row.payload)
            for row in conn.execute(
                text(
                    "SELECT event_type, payload FROM outbox WHERE payload->>'task_id' = :t"
                    " ORDER BY id"
                ),
                {"t": task_id},
            )
        ]


def _in_session(app, work):
    with Session(app.extensions["files"].engine) as session, session.begin():
        return work(session)


def _content(client, app, file_id: str, task_id: str, *, credential: bool = True):
    headers = {}
    if credential:
        secret = app.extensions["files"].settings.TASKS_TO_FILES_SECRET
        peer = ServiceCredentials({"files": secret}, caller="tasks")
        headers[HEADER] = peer.token_for("files", None)
    return client.get(f"/internal/v1/files/{file_id}/content?task={task_id}", headers=headers)


def test_a_processed_file_of_the_owner_is_leased_and_the_saga_told_its_name_and_size(
    app, client, user
):
    file_id, task_id = _file(app, client, user), str(uuid.uuid4())
    assert _lease(app, file_id=file_id, owner_id=user.id, task_id=task_id)
    assert _lease(app, file_id=file_id, owner_id=user.id, task_id=task_id)  # redelivered
    replies = _replies(app, task_id)
    assert [kind for kind, _ in replies] == ["InputFileLeased", "InputFileLeased"]
    assert replies[0][1] == {
        "saga_id": "saga",
        "task_id": task_id,
        "file_id": file_id,
        "filename": "input.txt",
        "size": 8,
    }
    assert _in_session(app, lambda s: leases.live_lease(s, file_id=uuid.UUID(file_id))) == (
        uuid.UUID(task_id)
    )


def test_a_missing_file_someone_elses_or_an_unprocessed_one_is_refused_with_the_reason(
    app, client, user, make_user
):
    mine_uploaded = _file(app, client, user, status="UPLOADED")
    someone_elses = _file(app, client, make_user())
    cases = {
        str(uuid.uuid4()): "file not found",
        someone_elses: "file not found",
        mine_uploaded: "file is UPLOADED, not PROCESSED",
        "not-a-uuid": "file not found",
    }
    for file_id, reason in cases.items():
        task_id = str(uuid.uuid4())
        assert not _lease(app, file_id=file_id, owner_id=user.id, task_id=task_id)
        [(kind, payload)] = _replies(app, task_id)
        assert (kind, payload["reason"]) == ("InputFileLeaseRefused", reason)


def test_a_leased_file_cannot_be_deleted_until_its_task_ends(app, client, user):
    file_id, task_id = _file(app, client, user), str(uuid.uuid4())
    assert _lease(app, file_id=file_id, owner_id=user.id, task_id=task_id)
    refused = client.delete(f"/v1/files/{file_id}", headers=user.headers)
    assert refused.status_code == 409
    assert refused.json["code"] == "FILE_LEASED"
    assert task_id in refused.json["message"]
    assert _in_session(app, lambda s: leases.release_task_leases(s, task_id=task_id)) == 1
    assert client.delete(f"/v1/files/{file_id}", headers=user.headers).status_code == 204


def test_a_release_that_overtakes_its_lease_request_makes_it_refused(app, client, user):
    file_id, task_id = _file(app, client, user), str(uuid.uuid4())
    _in_session(app, lambda s: leases.release_lease(s, file_id=file_id, task_id=task_id))
    assert not _lease(app, file_id=file_id, owner_id=user.id, task_id=task_id)
    assert client.delete(f"/v1/files/{file_id}", headers=user.headers).status_code == 204


def test_the_leased_content_is_served_only_to_its_task_and_only_with_a_service_credential(
    app, client, user
):
    file_id, task_id = _file(app, client, user), str(uuid.uuid4())
    assert _content(client, app, file_id, task_id).status_code == 409
    assert _lease(app, file_id=file_id, owner_id=user.id, task_id=task_id)
    served = _content(client, app, file_id, task_id)
    assert (served.status_code, served.data) == (200, b"one\ntwo\n")
    assert _content(client, app, file_id, task_id, credential=False).status_code == 401
    assert _content(client, app, file_id, str(uuid.uuid4())).json["code"] == "NOT_LEASED"
    assert _content(client, app, str(uuid.uuid4()), task_id).status_code == 404
    bad = _content(client, app, file_id, "nope")
    assert (bad.status_code, set(bad.json["fields"])) == (400, {"task"})
    _in_session(app, lambda s: leases.release_owner_leases(s, owner_id=user.id))
    assert _content(client, app, file_id, task_id).status_code == 409


def test_a_lease_whose_task_vanished_expires_and_the_file_can_be_deleted(app, client, user):
    file_id, task_id = _file(app, client, user), str(uuid.uuid4())
    assert _lease(app, file_id=file_id, owner_id=user.id, task_id=task_id)
    with app.extensions["files"].engine.begin() as conn:
        conn.execute(
            text("UPDATE input_leases SET expires_at = now() WHERE task_id = :t"), {"t": task_id}
        )
    assert service.sweep_input_leases(app.extensions["files"].uow()) >= 1
    with app.extensions["files"].engine.connect() as conn:
        left = conn.scalar(
            text("SELECT count(*) FROM input_leases WHERE task_id = :t"), {"t": task_id}
        )
    assert left == 0
    assert client.delete(f"/v1/files/{file_id}", headers=user.headers).status_code == 204


def test_the_internal_endpoint_is_in_the_openapi_document(client):
    spec = client.get("/openapi.json").json
    operation = spec["paths"]["/internal/v1/files/{file_id}/content"]["get"]
    assert set(operation["responses"]) >= {"200", "401", "404", "409", "410", "503"}
    assert "409" in spec["paths"]["/v1/files/{file_id}"]["delete"]["responses"]
