"""REST endpoints of notifications: rules, history and webhooks, each for the token's user."""

from __future__ import annotations

import uuid

from flask import current_app
from flask.views import MethodView
from flask_smorest import abort

from services.tasks.notification_schemas import (
    CreatedWebhookSchema,
    NotificationListArgsSchema,
    NotificationPageSchema,
    RulesSchema,
    WebhookCreateSchema,
    WebhookListSchema,
)
from services.tasks.notifications import history, rules, webhooks
from shared.auth import authenticated, caller_id
from shared.web import ServiceBlueprint

blp = ServiceBlueprint(
    "notifications", __name__, url_prefix="/v1", description="User notifications and webhooks"
)


def _ctx():
    return current_app.extensions["tasks"]


@blp.route("/notification-settings")
class NotificationSettings(MethodView):
    """Which channels tell the caller about each kind of event."""

    decorators = [authenticated]

    @blp.response(200, RulesSchema)
    def get(self):
        """Every kind of event with its channels (LOG where you set nothing)."""
        return {"rules": rules.get_rules(_ctx().uow(), owner_id=caller_id())}

    @blp.arguments(RulesSchema)
    @blp.response(200, RulesSchema)
    def put(self, body):
        """Set the channels of the kinds of event named; the others keep theirs."""
        return {
            "rules": rules.update_rules(_ctx().uow(), owner_id=caller_id(), rules=body["rules"])
        }


@blp.route("/notifications")
class Notifications(MethodView):
    """The caller's notification history."""

    decorators = [authenticated]

    @blp.arguments(NotificationListArgsSchema, location="query")
    @blp.response(200, NotificationPageSchema)
    def get(self, args):
        """List your notifications with their deliveries, newest first, a page at a time."""
        return history.list_notifications(_ctx().uow(), owner_id=caller_id(), **args)


@blp.route("/webhooks")
class Webhooks(MethodView):
    """The caller's webhooks."""

    decorators = [authenticated]

    @blp.response(200, WebhookListSchema)
    def get(self):
        """List your webhooks, newest first (never their secrets)."""
        return {"webhooks": webhooks.list_webhooks(_ctx().uow(), owner_id=caller_id())}

    @blp.arguments(WebhookCreateSchema)
    @blp.response(201, CreatedWebhookSchema)
    @blp.alt_response(409, description="You have as many webhooks as one user may")
    def post(self, body):
        """Add a webhook; the answer carries its signing secret, shown this once."""
        ctx = _ctx()
        try:
            webhook, secret = webhooks.create_webhook(
                ctx.uow(),
                policy=webhooks.WebhookPolicy.from_settings(ctx.settings),
                owner_id=caller_id(),
                **body,
            )
        except webhooks.WebhookUrlRefused as exc:
            abort(400, message=str(exc), messages={"url": [str(exc)]})
        except webhooks.WebhookLimitReached as exc:
            abort(409, message=f"You already have {exc.limit} webhooks, as many as one user may.")
        return {"webhook": webhook, "secret": secret}


@blp.route("/webhooks/<webhook_id>")
class WebhookById(MethodView):
    """One of the caller's webhooks."""

    decorators = [authenticated]

    @blp.response(204)
    @blp.alt_response(404, description="No such webhook, or not yours")
    def delete(self, webhook_id):
        """Delete a webhook; its pending deliveries are skipped."""
        try:
            parsed = uuid.UUID(webhook_id)
        except ValueError:
            abort(404, message="Webhook not found.")
        try:
            webhooks.delete_webhook(_ctx().uow(), owner_id=caller_id(), webhook_id=parsed)
        except webhooks.WebhookNotFound:
            abort(404, message="Webhook not found.")
