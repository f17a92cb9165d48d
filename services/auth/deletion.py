"""Account deletion: lock the user out at once, then a saga removes them everywhere.

`request_account_deletion` (the web request) checks the password, marks the user deleting (no
login from then on), ends every session and starts the `account_deletion` saga in the same
transaction. The saga's first step raises AccountDeletionRequested and waits for files'
UserFilesDeleted and tasks' UserTasksDeleted; its last step deletes the user's row (their
sessions, identities and tokens go with it) and raises UserDeleted. There is no compensation:
a user's files may already be gone, so a saga that cannot finish leaves the account locked and
FAILED for an operator to retry, never re-opened half empty.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from services.auth.config import AccountDeletionSettings
from services.auth.events import AccountDeletionRequested, UserDeleted
from services.auth.models import SCHEMA, User, saga_table
from services.auth.passwords import PasswordHasher
from services.auth.service import UserNotFound
from services.auth.sessions import end_sessions
from shared.auth import RevocationList
from shared.db import UnitOfWork
from shared.sagas.machine import SagaContext, SagaDefinition, Step
from shared.sagas.store import Sagas

KIND = "account_deletion"
FILES_CONFIRMED = "files.UserFilesDeleted"
TASKS_CONFIRMED = "tasks.UserTasksDeleted"


class PasswordRequired(Exception):
    """The account has a password and none was given."""


class PasswordIncorrect(Exception):
    """The password given is not the account's."""


def _ask_participants(ctx: SagaContext) -> None:
    ctx.emit(AccountDeletionRequested(user_id=ctx.data["user_id"], saga_id=ctx.saga_id))


def _delete_user(ctx: SagaContext) -> None:
    user = ctx.session.get(User, uuid.UUID(ctx.data["user_id"]))
    if user is not None:
        ctx.session.delete(user)
        ctx.session.flush()
    ctx.emit(UserDeleted(user_id=ctx.data["user_id"]))


def account_deletion(settings: AccountDeletionSettings) -> SagaDefinition:
    """The account-deletion saga with the timeouts of `settings`."""
    return SagaDefinition(
        KIND,
        (
            Step(
                "purge_participants",
                _ask_participants,
                timedelta(seconds=settings.STEP_TIMEOUT),
                awaits=frozenset({FILES_CONFIRMED, TASKS_CONFIRMED}),
                attempts=settings.STEP_ATTEMPTS,
            ),
            Step("delete_user", _delete_user, timedelta(seconds=settings.STEP_TIMEOUT)),
        ),
    )


@lru_cache(maxsize=1)
def auth_sagas() -> Sagas:
    """The sagas auth orchestrates (the registry's `sagas` hook and the consumer's)."""
    return Sagas(saga_table, (account_deletion(AccountDeletionSettings()),), source=SCHEMA)


def request_account_deletion(
    uow: UnitOfWork,
    *,
    hasher: PasswordHasher,
    revocations: RevocationList,
    sagas: Sagas,
    user_id: uuid.UUID,
    password: str | None,
) -> str:
    """Lock the user out and start their deletion; returns the saga id.

    Raises UserNotFound, PasswordRequired or PasswordIncorrect. Asking again while a deletion
    runs returns the same saga.
    """
    with uow:
        user = uow.session.get(User, user_id, with_for_update=True)
        if user is None:
            raise UserNotFound(str(user_id))
        if user.password_hash is not None:
            if not password:
                raise PasswordRequired()
            if not hasher.verify(user.password_hash, password):
                raise PasswordIncorrect()
        if user.deleting_at is None:
            user.deleting_at = datetime.now(UTC)
        end_sessions(uow, revocations, user_id=user.id, reason="account_deleted")
        uow.flush()
        saga = sagas.start(
            uow.session, kind=KIND, subject=str(user.id), data={"user_id": str(user.id)}
        )
        uow.commit()
    # Again once committed: a login that read the user before the lock started a session the
    # first pass could not see.
    end_sessions(uow, revocations, user_id=user_id, reason="account_deleted")
    return saga.id
