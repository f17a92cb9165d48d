"""Request and response schemas of the notifications API."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from services.tasks.notifications.kinds import Channel, NotificationEvent
from services.tasks.notifications.webhooks import MAX_URL_LENGTH
from services.tasks.schemas import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from shared.pagination import CursorField, page_schema


class RuleSchema(Schema):
    """The channels that tell the user about one kind of event."""

    event = fields.String(
        required=True, validate=validate.OneOf([e.value for e in NotificationEvent])
    )
    channels = fields.List(
        fields.String(validate=validate.OneOf([c.value for c in Channel])), required=True
    )


class RulesSchema(Schema):
    """Every kind of event with its channels (in a request: the kinds to change)."""

    rules = fields.List(fields.Nested(RuleSchema), required=True)


class NotificationListArgsSchema(Schema):
    """Query arguments of the notification history."""

    first = fields.Integer(
        load_default=DEFAULT_PAGE_SIZE, validate=validate.Range(min=1, max=MAX_PAGE_SIZE)
    )
    after = CursorField()


class DeliverySchema(Schema):
    """One channel's delivery of a notification."""

    channel = fields.String()
    webhook_id = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "PENDING, DELIVERED, FAILED or SKIPPED"})
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    response_status = fields.Integer(allow_none=True)
    idempotency_key = fields.String()
    delivered_at = fields.DateTime(allow_none=True)


class NotificationSchema(Schema):
    """A notification with its deliveries."""

    id = fields.String()
    event = fields.String()
    subject = fields.String()
    subject_id = fields.String()
    created_at = fields.DateTime()
    deliveries = fields.List(fields.Nested(DeliverySchema))


#: One page of the caller's notifications, newest first.
NotificationPageSchema = page_schema(NotificationSchema, "Notification")


class WebhookCreateSchema(Schema):
    """A URL to POST notifications to, and the kinds of event it wants (none: every kind)."""

    url = fields.String(required=True, validate=validate.Length(min=1, max=MAX_URL_LENGTH))
    events = fields.List(
        fields.String(validate=validate.OneOf([e.value for e in NotificationEvent])),
        load_default=list,
    )


class WebhookSchema(Schema):
    """A webhook (never its secret)."""

    id = fields.String()
    url = fields.String()
    events = fields.List(fields.String())
    enabled = fields.Boolean()
    disabled_reason = fields.String(allow_none=True)
    created_at = fields.DateTime()


class WebhookListSchema(Schema):
    """The caller's webhooks, newest first."""

    webhooks = fields.List(fields.Nested(WebhookSchema))


class CreatedWebhookSchema(Schema):
    """A new webhook and its signing secret, shown this once."""

    webhook = fields.Nested(WebhookSchema)
    secret = fields.String()
