"""The files repositories against PostgreSQL: ownership, quota accounting, claims."""

from __future__ import annotations

import uuid

from services.files.tests.conftest import upload


def test_get_owned_finds_the_owners_file_and_hides_it_from_anyone_else(app, client, user):
    file_id = uuid.UUID(upload(client, user).json["id"])
    with app.extensions["files"].uow() as uow:
        mine = uow.files.get_owned(owner_id=uuid.UUID(user.id), file_id=file_id)
        assert mine is not None and mine.id == file_id
        assert uow.files.get_owned(owner_id=uuid.uuid4(), file_id=file_id) is None
        assert uow.files.get_owned(owner_id=uuid.UUID(user.id), file_id=uuid.uuid4()) is None


def test_charges_stop_at_the_quota_and_refunds_give_the_bytes_back(app):
    owner = uuid.uuid4()
    with app.extensions["files"].uow() as uow:
        assert uow.accounts.used_bytes(owner) == 0
        assert uow.accounts.charge(owner_id=owner, size=60, quota=100)
        assert not uow.accounts.charge(owner_id=owner, size=41, quota=100)
        assert uow.accounts.charge(owner_id=owner, size=40, quota=100)
        assert not uow.accounts.charge(owner_id=uuid.uuid4(), size=101, quota=100)
        uow.accounts.refund(owner_id=owner, size=70)
        uow.commit()
    with app.extensions["files"].uow() as uow:
        assert uow.accounts.used_bytes(owner) == 30


def test_a_claim_renews_only_for_the_token_that_holds_it(app, client, user):
    file_id = uuid.UUID(upload(client, user).json["id"])
    token = uuid.uuid4()
    with app.extensions["files"].uow() as uow:
        file = uow.files.get_for_update(file_id)
        file.status, file.processing_token, file.attempts = "PROCESSING", token, 1
        uow.commit()
    with app.extensions["files"].uow() as uow:
        assert uow.files.renew_claim(file_id=file_id, token=token, lease_seconds=30)
        assert not uow.files.renew_claim(file_id=file_id, token=uuid.uuid4(), lease_seconds=30)
        uow.files.release_claim(file_id=file_id, token=token, lease_seconds=30)
        assert not uow.files.renew_claim(file_id=file_id, token=token, lease_seconds=30)
