"""Which channels tell a user about each kind of event (LOG alone where they set nothing)."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from services.tasks.models import NotificationRule, users
from services.tasks.notifications.kinds import DEFAULT_CHANNELS, Channel, NotificationEvent
from shared.db import UnitOfWork


def recipient_of(
    session: Session, *, owner_id: uuid.UUID, event: str
) -> tuple[bool, list[Channel]]:
    """Whether the user is known deleted, and their channels for `event` (one round trip)."""
    deleted_at, chosen = session.execute(
        select(
            select(users.c.deleted_at).where(users.c.id == owner_id).scalar_subquery(),
            select(NotificationRule.channels)
            .where(NotificationRule.owner_id == owner_id, NotificationRule.event == event)
            .scalar_subquery(),
        )
    ).one()
    channels = [Channel(c) for c in chosen] if chosen is not None else list(DEFAULT_CHANNELS)
    return deleted_at is not None, channels


def _all_rules(session: Session, owner_id: uuid.UUID) -> list[dict]:
    chosen = dict(
        session.execute(
            select(NotificationRule.event, NotificationRule.channels).where(
                NotificationRule.owner_id == owner_id
            )
        ).all()
    )
    return [
        {
            "event": event.value,
            "channels": chosen.get(event.value, [c.value for c in DEFAULT_CHANNELS]),
        }
        for event in NotificationEvent
    ]


def get_rules(uow: UnitOfWork, *, owner_id: uuid.UUID) -> list[dict]:
    """Every event kind with the channels that tell the user about it."""
    with uow:
        return _all_rules(uow.session, owner_id)


def update_rules(uow: UnitOfWork, *, owner_id: uuid.UUID, rules: list[dict]) -> list[dict]:
    """Set the channels of the event kinds named (the others keep theirs); every rule after."""
    with uow:
        for rule in rules:
            channels = sorted({Channel(c).value for c in rule["channels"]})
            statement = insert(NotificationRule).values(
                owner_id=owner_id, event=NotificationEvent(rule["event"]).value, channels=channels
            )
            uow.session.execute(
                statement.on_conflict_do_update(
                    index_elements=[NotificationRule.owner_id, NotificationRule.event],
                    set_={"channels": statement.excluded.channels},
                )
            )
        uow.commit()
        return _all_rules(uow.session, owner_id)


def delete_user_rules(session: Session, *, owner_id: uuid.UUID) -> None:
    """Forget a deleted user's rules."""
    session.execute(delete(NotificationRule).where(NotificationRule.owner_id == owner_id))
