"""REST endpoints of schedules: thin views over schedules.py, each for the token's user."""

from __future__ import annotations

import uuid

from flask import current_app
from flask.views import MethodView
from flask_smorest import abort

from services.tasks import schedules
from services.tasks.schedule_schemas import (
    NextRunsArgsSchema,
    NextRunsSchema,
    ScheduleCreateSchema,
    ScheduleListArgsSchema,
    SchedulePageSchema,
    ScheduleSchema,
)
from services.tasks.schemas import TaskPageSchema
from shared.auth import authenticated, caller_id
from shared.web import ServiceBlueprint, revalidate_json_reads

blp = ServiceBlueprint(
    "schedules", __name__, url_prefix="/v1", description="Recurring schedules of tasks"
)
blp.after_request(revalidate_json_reads)


def _ctx():
    return current_app.extensions["tasks"]


def _policy() -> schedules.SchedulePolicy:
    return schedules.SchedulePolicy.from_settings(_ctx().settings)


def _schedule_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        abort(
            400,
            message="Schedule id is not a valid UUID.",
            messages={"schedule_id": ["Not a UUID."]},
        )


def _not_found() -> None:
    abort(404, message="Schedule not found.")


@blp.route("/schedules")
class Schedules(MethodView):
    """The caller's schedules."""

    decorators = [authenticated]

    @blp.arguments(ScheduleListArgsSchema, location="query")
    @blp.response(200, SchedulePageSchema)
    @blp.alt_response(304, description="Not modified: If-None-Match matched the page's ETag")
    def get(self, args):
        """List your schedules, newest first, a page at a time."""
        return schedules.list_schedules(_ctx().uow(), owner_id=caller_id(), **args)

    @blp.arguments(ScheduleCreateSchema)
    @blp.response(201, ScheduleSchema)
    @blp.alt_response(409, description="You have as many schedules as one user may")
    def post(self, body):
        """Create a schedule: its task is created at each fire time of `cron` or the interval."""
        ctx = _ctx()
        try:
            return schedules.create_schedule(
                ctx.uow(),
                policy=_policy(),
                task_policy=ctx.policy,
                owner_id=caller_id(),
                **body,
            )
        except schedules.InvalidSchedule as exc:
            abort(400, messages=exc.fields)
        except schedules.ScheduleLimitReached as exc:
            abort(
                409,
                message=f"You already have {exc.limit} schedules, as many as one user may; "
                "delete some first.",
            )


@blp.route("/schedules/<schedule_id>")
class ScheduleById(MethodView):
    """One of the caller's schedules."""

    decorators = [authenticated]

    @blp.response(200, ScheduleSchema)
    @blp.alt_response(304, description="Not modified: If-None-Match matched the schedule's ETag")
    @blp.alt_response(404, description="No such schedule, or not yours")
    def get(self, schedule_id):
        """Read a schedule."""
        try:
            return schedules.get_schedule(
                _ctx().uow(), owner_id=caller_id(), schedule_id=_schedule_id(schedule_id)
            )
        except schedules.ScheduleNotFound:
            _not_found()

    @blp.response(204)
    @blp.alt_response(404, description="No such schedule, or not yours")
    def delete(self, schedule_id):
        """Delete a schedule; the tasks it started are kept."""
        try:
            schedules.delete_schedule(
                _ctx().uow(), owner_id=caller_id(), schedule_id=_schedule_id(schedule_id)
            )
        except schedules.ScheduleNotFound:
            _not_found()


@blp.route("/schedules/<schedule_id>/pause")
class SchedulePause(MethodView):
    """Stopping a schedule for a while."""

    decorators = [authenticated]

    @blp.response(200, ScheduleSchema)
    @blp.alt_response(404, description="No such schedule, or not yours")
    def post(self, schedule_id):
        """Pause a schedule: it fires no more until resumed (a paused one is unchanged)."""
        try:
            return schedules.pause_schedule(
                _ctx().uow(), owner_id=caller_id(), schedule_id=_schedule_id(schedule_id)
            )
        except schedules.ScheduleNotFound:
            _not_found()


@blp.route("/schedules/<schedule_id>/resume")
class ScheduleResume(MethodView):
    """Starting a paused schedule again."""

    decorators = [authenticated]

    @blp.response(200, ScheduleSchema)
    @blp.alt_response(404, description="No such schedule, or not yours")
    def post(self, schedule_id):
        """Resume a schedule from its next fire time; what it missed while paused is not run."""
        try:
            return schedules.resume_schedule(
                _ctx().uow(), owner_id=caller_id(), schedule_id=_schedule_id(schedule_id)
            )
        except schedules.ScheduleNotFound:
            _not_found()


@blp.route("/schedules/<schedule_id>/next-runs")
class ScheduleNextRuns(MethodView):
    """A schedule's upcoming fire times."""

    decorators = [authenticated]

    @blp.arguments(NextRunsArgsSchema, location="query")
    @blp.response(200, NextRunsSchema)
    @blp.alt_response(404, description="No such schedule, or not yours")
    def get(self, args, schedule_id):
        """The next `count` fire times, with the schedule's timezone offset; none while paused."""
        try:
            times = schedules.next_runs(
                _ctx().uow(), owner_id=caller_id(), schedule_id=_schedule_id(schedule_id), **args
            )
        except schedules.ScheduleNotFound:
            _not_found()
        return {"next_runs": times}


@blp.route("/schedules/<schedule_id>/runs")
class ScheduleRuns(MethodView):
    """The tasks a schedule started."""

    decorators = [authenticated]

    @blp.arguments(ScheduleListArgsSchema, location="query")
    @blp.response(200, TaskPageSchema)
    @blp.alt_response(304, description="Not modified: If-None-Match matched the page's ETag")
    @blp.alt_response(404, description="No such schedule, or not yours")
    def get(self, args, schedule_id):
        """List the tasks the schedule started, newest first, a page at a time."""
        try:
            return schedules.list_runs(
                _ctx().uow(), owner_id=caller_id(), schedule_id=_schedule_id(schedule_id), **args
            )
        except schedules.ScheduleNotFound:
            _not_found()
