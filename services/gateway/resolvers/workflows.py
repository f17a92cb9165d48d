"""Workflows: create, cancel, workflow, workflows, workflowUpdated, and Task.workflow."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

from ariadne import ObjectType
from graphql import GraphQLResolveInfo

from services.gateway.context import GatewayContext
from services.gateway.errors import NotFound
from services.gateway.feed import Watch
from services.gateway.resolvers.root import mutation, query, subscription
from services.gateway.resolvers.tasks import task_type

workflow_type = ObjectType("Workflow")


@query.field("workflow")
async def resolve_workflow(
    _obj: Any, info: GraphQLResolveInfo, *, id: str
) -> dict[str, Any] | None:
    """One of the caller's workflows; null when absent, not theirs, or not a workflow id."""
    context = info.context
    context.require_token()
    return await context.clients.tasks.get_workflow(context.caller, workflow_id=id)


@query.field("workflows")
async def resolve_workflows(
    _obj: Any, info: GraphQLResolveInfo, *, first: int | None = None, after: str | None = None
) -> dict[str, Any]:
    """The caller's workflows, newest first; the tasks service's page is already a connection."""
    context = info.context
    context.require_token()
    return await context.clients.tasks.list_workflows(context.caller, first=first, after=after)


@mutation.field("createWorkflow")
async def resolve_create_workflow(
    _obj: Any, info: GraphQLResolveInfo, *, input: dict[str, Any]
) -> dict[str, Any]:
    """Create a whole DAG of steps; the tasks service validates it before creating anything."""
    context = info.context
    context.require_token()
    return await context.clients.tasks.create_workflow(context.caller, spec=input)


@mutation.field("cancelWorkflow")
async def resolve_cancel_workflow(
    _obj: Any, info: GraphQLResolveInfo, *, id: str
) -> dict[str, Any]:
    """Cancel one of the caller's workflows; NOT_FOUND when absent or not theirs."""
    context = info.context
    context.require_token()
    return await context.clients.tasks.cancel_workflow(context.caller, workflow_id=id)


@task_type.field("workflow")
async def resolve_task_workflow(
    task: dict[str, Any], info: GraphQLResolveInfo
) -> dict[str, Any] | None:
    """The workflow the task is a step of; null for a task of its own."""
    workflow_id = task.get("workflow_id")
    if not workflow_id:
        return None
    context = info.context
    return await context.clients.tasks.get_workflow(context.caller, workflow_id=workflow_id)


def _signature(workflow: dict[str, Any]) -> tuple:
    """What a subscriber is told about: the workflow's status and each step's."""
    return (
        workflow["status"],
        workflow.get("finished_at"),
        tuple((step["name"], step["task"]["status"]) for step in workflow["steps"]),
    )


async def _any_changed(watches: list[Watch]) -> None:
    waits = [asyncio.ensure_future(watch.changed()) for watch in watches]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def workflow_updates(
    context: GatewayContext, *, workflow_id: str
) -> AsyncIterator[dict[str, Any]]:
    """The workflow now, then at each change of it or of a step's status, until it finished."""
    try:
        key = str(uuid.UUID(workflow_id))
    except ValueError:
        raise NotFound("Workflow not found.") from None
    context.require_token()
    assert context.feed is not None, "subscriptions run with the process's event feed"

    def fetch():
        return context.clients.tasks.get_workflow(context.caller, workflow_id=key)

    # Watch before reading: the workflow's own events, then each step's (known after a read).
    watches = [context.feed.watch("workflow", key)]
    try:
        current = await fetch()
        if current is None:
            raise NotFound("Workflow not found.")
        watches += [
            context.feed.watch("task", step["task"]["id"], ignore=frozenset({"TaskOutputAppended"}))
            for step in current["steps"]
        ]
        current = await fetch()
        if current is None:
            return
        yield current
        seen = _signature(current)
        while current.get("finished_at") is None:
            await _any_changed(watches)
            current = await fetch()
            if current is None:
                return
            if _signature(current) != seen:
                seen = _signature(current)
                yield current
    finally:
        for watch in watches:
            watch.close()


@subscription.source("workflowUpdated")
def subscribe_workflow_updated(
    _obj: Any, info: GraphQLResolveInfo, *, id: str
) -> AsyncIterator[dict[str, Any]]:
    """The workflow now, then at each change; NOT_FOUND when absent or not the caller's."""
    return workflow_updates(info.context, workflow_id=id)


@subscription.field("workflowUpdated")
def resolve_workflow_updated(
    workflow: dict[str, Any], _info: GraphQLResolveInfo, **_kwargs: Any
) -> dict[str, Any]:
    """Each workflow the source yields."""
    return workflow
