"""docs/events.md names every event the services publish."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

from shared.events import Event

CATALOGUE = (Path(__file__).resolve().parent.parent / "docs" / "events.md").read_text()
#: Bases that are never published themselves.
BASES = {"TaskEvent", "ScheduleEvent", "WorkflowEvent", "FileStatusChanged"}


def _published() -> list[str]:
    names = []
    for service in ("auth", "files", "tasks"):
        module = importlib.import_module(f"services.{service}.events")
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Event) and cls.__module__ == module.__name__ and name not in BASES:
                names.append(f"{service}.{name}")
    return names


@pytest.mark.parametrize("routing_key", _published())
def test_every_published_event_is_in_the_catalogue(routing_key):
    assert f"`{routing_key}`" in CATALOGUE
