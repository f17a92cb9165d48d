"""Tasks: create, cancel, delete, task, tasks, and the Task fields that need their own call."""

from __future__ import annotations

import asyncio
from typing import Any

from ariadne import ObjectType
from graphql import GraphQLResolveInfo

from services.gateway.resolvers.root import mutation, query

task_type = ObjectType("Task")


@query.field("task")
async def resolve_task(_obj: Any, info: GraphQLResolveInfo, *, id: str) -> dict[str, Any] | None:
    """One of the caller's tasks; null when absent, not theirs, or not a task id at all."""
    context = info.context
    context.require_token()
    return await context.clients.tasks.get_task(context.caller, task_id=id)


@query.field("tasks")
async def resolve_tasks(
    _obj: Any,
    info: GraphQLResolveInfo,
    *,
    first: int | None = None,
    after: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """The caller's tasks, newest first; the tasks service's page is already a connection."""
    context = info.context
    context.require_token()
    return await context.clients.tasks.list_tasks(
        context.caller, first=first, after=after, status=status
    )


@mutation.field("createTask")
async def resolve_create_task(
    _obj: Any, info: GraphQLResolveInfo, *, input: dict[str, Any]
) -> dict[str, Any]:
    """Submit a task; the tasks service validates it (dependsOn: ids of the caller's tasks).

    With inputFileId the task stays PENDING until files has leased it the file; a file that is
    missing, not the caller's or not PROCESSED ends it FAILED with the reason.
    """
    context = info.context
    context.require_token()
    return await context.clients.tasks.create_task(context.caller, spec=input)


@mutation.field("cancelTask")
async def resolve_cancel_task(_obj: Any, info: GraphQLResolveInfo, *, id: str) -> dict[str, Any]:
    """Cancel one of the caller's tasks; NOT_FOUND when absent or not theirs."""
    context = info.context
    context.require_token()
    return await context.clients.tasks.cancel_task(context.caller, task_id=id)


@mutation.field("deleteTask")
async def resolve_delete_task(_obj: Any, info: GraphQLResolveInfo, *, id: str) -> bool:
    """Delete one of the caller's ended tasks; CONFLICT unless ended, NOT_FOUND if not theirs."""
    context = info.context
    context.require_token()
    await context.clients.tasks.delete_task(context.caller, task_id=id)
    return True


@task_type.field("logs")
async def resolve_logs(
    task: dict[str, Any], info: GraphQLResolveInfo, *, tail: int | None = None
) -> str:
    """The task's stored output: fetched only when selected, one call per task."""
    context = info.context
    logs = await context.clients.tasks.read_logs(context.caller, task_id=task["id"], tail=tail)
    return logs["text"]


@task_type.field("dependsOn")
async def resolve_depends_on(
    task: dict[str, Any], info: GraphQLResolveInfo
) -> list[dict[str, Any]]:
    """The tasks this one waits on, read when selected; one deleted since is left out."""
    ids = task.get("depends_on") or []
    if not ids:
        return []
    context = info.context
    found = await asyncio.gather(
        *(context.clients.tasks.get_task(context.caller, task_id=task_id) for task_id in ids)
    )
    return [dependency for dependency in found if dependency is not None]


@task_type.field("triggerRule")
def resolve_trigger_rule(task: dict[str, Any], _info: GraphQLResolveInfo) -> str:
    """The task's trigger rule (ALL_SUCCEEDED for one read before rules existed)."""
    return task.get("trigger_rule") or "ALL_SUCCEEDED"


@task_type.field("inputFile")
async def resolve_input_file(
    task: dict[str, Any], info: GraphQLResolveInfo
) -> dict[str, Any] | None:
    """The file mounted at /input; null without one, or once the file is gone."""
    file_id = task.get("input_file_id")
    if not file_id:
        return None
    context = info.context
    return await context.clients.files.get_file(context.caller, file_id=file_id)


#: Files asked for per call while listing a task's outputs (the files API's largest page).
_OUTPUT_PAGE = 100


@task_type.field("outputFiles")
async def resolve_output_files(
    task: dict[str, Any], info: GraphQLResolveInfo
) -> list[dict[str, Any]]:
    """The caller's files this task produced, by path; asked of files when selected."""
    context = info.context
    files: list[dict[str, Any]] = []
    after = None
    while True:
        page = await context.clients.files.list_files(
            context.caller, first=_OUTPUT_PAGE, after=after, produced_by_task=str(task["id"])
        )
        files.extend(edge["node"] for edge in page["edges"])
        if not page["page_info"]["has_next_page"]:
            break
        after = page["page_info"]["end_cursor"]
    return sorted(files, key=lambda file: file.get("output_path") or "")
