"""Erasing a deleted account's files (auth's deletion saga), on each storage backend."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.orm import Session

from services.files.erasure import erase_user_files
from services.files.tests.conftest import file_rows, stored_keys, upload, used_bytes


def _erase(app, user_id: str, saga_id: str) -> int:
    files = app.extensions["files"]
    with Session(files.engine) as session, session.begin():
        return erase_user_files(session, storage=files.storage, user_id=user_id, saga_id=saga_id)


def _replies(app, saga_id: str) -> list[dict]:
    with app.extensions["files"].engine.connect() as conn:
        return list(
            conn.scalars(
                text(
                    "SELECT payload FROM outbox WHERE event_type = 'UserFilesDeleted'"
                    " AND payload->>'saga_id' = :s ORDER BY id"
                ),
                {"s": saga_id},
            )
        )


def test_every_file_and_object_of_the_user_goes_and_the_saga_is_answered(app, client, make_user):
    leaving, staying = make_user(), make_user()
    for user in (leaving, leaving, staying):
        assert upload(client, user).status_code == 201
    kept = set(stored_keys(app))
    saga_id = str(uuid.uuid4())

    assert _erase(app, leaving.id, saga_id) == 2

    assert file_rows(app, leaving.id) == 0 and used_bytes(app, leaving.id) == 0
    assert file_rows(app, staying.id) == 1
    assert len(stored_keys(app)) == len(kept) - 2
    (reply,) = _replies(app, saga_id)
    assert reply == {"user_id": leaving.id, "saga_id": saga_id, "files_deleted": 2}


def test_a_redelivered_request_finds_nothing_left_and_answers_again(app, client, make_user):
    user = make_user()
    assert upload(client, user).status_code == 201
    saga_id = str(uuid.uuid4())
    assert _erase(app, user.id, saga_id) == 1
    assert _erase(app, user.id, saga_id) == 0
    assert [reply["files_deleted"] for reply in _replies(app, saga_id)] == [1, 0]


def test_the_erased_user_is_marked_deleted_first_so_no_task_output_lands_after(
    app, client, make_user
):
    user = make_user()
    assert upload(client, user).status_code == 201
    _erase(app, user.id, str(uuid.uuid4()))
    with app.extensions["files"].engine.connect() as conn:
        deleted_at = conn.scalar(text("SELECT deleted_at FROM users WHERE id = :u"), {"u": user.id})
    assert deleted_at is not None
