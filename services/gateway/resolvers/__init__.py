"""Resolvers, one bindable per GraphQL type; `bindables` is what the schema is built with."""

# Imported for their side effect: each attaches its fields' resolvers to the root types.
from services.gateway.resolvers import (  # noqa: F401
    accounts,
    auth,
    files,
    notifications,
    oidc,
    schedules,
    subscriptions,
    tasks,
    users,
    workflows,
)
from services.gateway.resolvers.files import file_type
from services.gateway.resolvers.root import mutation, query, subscription
from services.gateway.resolvers.scalars import bigint_scalar, datetime_scalar, upload_scalar
from services.gateway.resolvers.schedules import schedule_type
from services.gateway.resolvers.tasks import task_type
from services.gateway.resolvers.workflows import workflow_type

bindables = [
    query,
    mutation,
    subscription,
    task_type,
    schedule_type,
    workflow_type,
    file_type,
    datetime_scalar,
    bigint_scalar,
    upload_scalar,
]
