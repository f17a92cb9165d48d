"""The sagas the tasks service orchestrates, kept in `tasks.sagas` (shared/sagas does the work).

Each saga kind tasks runs adds its definition to `tasks_sagas`; the consumer feeds their replies
to it (handlers.py), `dockyard sagas sweep tasks` applies their deadlines, `/metrics` counts them.
"""

from __future__ import annotations

from functools import lru_cache

from services.tasks.config import TasksSettings
from services.tasks.input_files import task_input_file
from services.tasks.models import SCHEMA, saga_table
from shared.sagas.machine import SagaDefinition
from shared.sagas.store import Sagas


def saga_definitions() -> tuple[SagaDefinition, ...]:
    """Every saga kind tasks orchestrates."""
    from services.tasks.output_saga import task_outputs_saga

    return (task_input_file(TasksSettings()), task_outputs_saga())


@lru_cache(maxsize=1)
def tasks_sagas() -> Sagas:
    """The sagas tasks orchestrates (the registry's `sagas` hook, the consumer's, the metric's)."""
    return Sagas(saga_table, saga_definitions(), source=SCHEMA)
