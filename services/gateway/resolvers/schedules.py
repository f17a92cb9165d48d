"""Schedules: create, pause, resume, delete, schedule, schedules, their runs, and Task.schedule."""

from __future__ import annotations

from typing import Any

from ariadne import ObjectType
from graphql import GraphQLResolveInfo

from services.gateway.resolvers.root import mutation, query
from services.gateway.resolvers.tasks import task_type

schedule_type = ObjectType("Schedule")


@query.field("schedule")
async def resolve_schedule(
    _obj: Any, info: GraphQLResolveInfo, *, id: str
) -> dict[str, Any] | None:
    """One of the caller's schedules; null when absent, not theirs, or not a schedule id."""
    context = info.context
    context.require_token()
    return await context.clients.tasks.get_schedule(context.caller, schedule_id=id)


@query.field("schedules")
async def resolve_schedules(
    _obj: Any, info: GraphQLResolveInfo, *, first: int | None = None, after: str | None = None
) -> dict[str, Any]:
    """The caller's schedules, newest first; the tasks service's page is already a connection."""
    context = info.context
    context.require_token()
    return await context.clients.tasks.list_schedules(context.caller, first=first, after=after)


@mutation.field("createSchedule")
async def resolve_create_schedule(
    _obj: Any, info: GraphQLResolveInfo, *, input: dict[str, Any]
) -> dict[str, Any]:
    """Create a schedule of a task; the tasks service validates it, naming the field."""
    context = info.context
    context.require_token()
    return await context.clients.tasks.create_schedule(context.caller, spec=input)


@mutation.field("pauseSchedule")
async def resolve_pause_schedule(_obj: Any, info: GraphQLResolveInfo, *, id: str) -> dict[str, Any]:
    """Pause one of the caller's schedules; NOT_FOUND when absent or not theirs."""
    context = info.context
    context.require_token()
    return await context.clients.tasks.pause_schedule(context.caller, schedule_id=id)


@mutation.field("resumeSchedule")
async def resolve_resume_schedule(
    _obj: Any, info: GraphQLResolveInfo, *, id: str
) -> dict[str, Any]:
    """Resume one of the caller's schedules; NOT_FOUND when absent or not theirs."""
    context = info.context
    context.require_token()
    return await context.clients.tasks.resume_schedule(context.caller, schedule_id=id)


@mutation.field("deleteSchedule")
async def resolve_delete_schedule(_obj: Any, info: GraphQLResolveInfo, *, id: str) -> bool:
    """Delete one of the caller's schedules; NOT_FOUND when absent or not theirs."""
    context = info.context
    context.require_token()
    await context.clients.tasks.delete_schedule(context.caller, schedule_id=id)
    return True


@schedule_type.field("nextRuns")
async def resolve_next_runs(
    schedule: dict[str, Any], info: GraphQLResolveInfo, *, count: int = 5
) -> list[str]:
    """Upcoming fire times: fetched only when selected, one call per schedule."""
    if schedule["paused"]:
        return []
    context = info.context
    return await context.clients.tasks.next_runs(
        context.caller, schedule_id=schedule["id"], count=count
    )


@schedule_type.field("runs")
async def resolve_runs(
    schedule: dict[str, Any],
    info: GraphQLResolveInfo,
    *,
    first: int | None = None,
    after: str | None = None,
) -> dict[str, Any]:
    """The tasks the schedule started, newest first: fetched only when selected."""
    context = info.context
    return await context.clients.tasks.list_runs(
        context.caller, schedule_id=schedule["id"], first=first, after=after
    )


@task_type.field("schedule")
async def resolve_task_schedule(
    task: dict[str, Any], info: GraphQLResolveInfo
) -> dict[str, Any] | None:
    """The schedule that started the task: fetched only when selected and there is one."""
    schedule_id = task.get("schedule_id")
    if not schedule_id:
        return None
    context = info.context
    return await context.clients.tasks.get_schedule(context.caller, schedule_id=schedule_id)
