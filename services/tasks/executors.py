"""Executor selection: which ContainerEngine runs a task, by its `executor` (TASKS_EXECUTORS).

`docker` is DockerEngine (containers.py), `swarm` is SwarmEngine (swarm.py), both declared in the
entry-point group `dockyard.executors` (shared.plugins): an executor TASKS_EXECUTORS names that is
not installed, or whose plugin failed to load, fails start-up. With both enabled,
`RoutedEngine` is the one engine the launcher, the worker and the monitor hold: it starts each
attempt on its task's executor and sends every later call to the executor that owns the name.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

from services.tasks.config import KNOWN_EXECUTORS
from services.tasks.containers import (
    ContainerEngine,
    ContainerEvent,
    ContainerInfo,
    ContainerOutput,
    ContainerSpec,
    DockerEngine,
    TaskRejected,
)
from services.tasks.swarm import SwarmEngine
from shared import plugins

log = logging.getLogger(__name__)

DOCKER = "docker"
SWARM = "swarm"
#: Every executor this build knows.
KNOWN = KNOWN_EXECUTORS
#: Names whose executor is remembered (most recent first out once full).
_OWNERS_KEPT = 4096


def engine_from_settings(settings: Any) -> ContainerEngine:
    """The engine for the operator's TASKS_EXECUTORS: Docker alone, or Docker and Swarm."""
    for name in settings.EXECUTORS:
        plugins.require("executor", name, setting="TASKS_EXECUTORS")
    docker = DockerEngine.from_settings(settings)
    if SWARM not in settings.EXECUTORS:
        return docker
    return RoutedEngine(docker=docker, swarm=SwarmEngine(docker))


class RoutedEngine:
    """ContainerEngine over the Docker and Swarm executors, routing each call by name."""

    def __init__(self, *, docker: DockerEngine, swarm: SwarmEngine) -> None:
        self.docker = docker
        self.swarm = swarm
        self._owners: dict[str, ContainerEngine] = {}
        self._lock = threading.Lock()

    def _remember(self, name: str, engine: ContainerEngine) -> ContainerEngine:
        with self._lock:
            if len(self._owners) >= _OWNERS_KEPT:
                self._owners.pop(next(iter(self._owners)))
            self._owners[name] = engine
        return engine

    def _owner(self, name: str) -> ContainerEngine:
        """The executor of the attempt `name`: remembered, else the swarm's if it has it."""
        with self._lock:
            engine = self._owners.get(name)
        if engine is not None:
            return engine
        # Not remembered (another process started it): a swarm service of that name says swarm.
        return self._remember(name, self.swarm if self.swarm.owns(name) else self.docker)

    def run(self, spec: ContainerSpec) -> ContainerInfo:
        """Start the attempt on its task's executor."""
        if spec.executor not in KNOWN:
            raise TaskRejected("START_FAILED", f"No executor named {spec.executor!r}.")
        engine = self.swarm if spec.executor == SWARM else self.docker
        return self._remember(spec.name, engine).run(spec)

    def inspect(self, name: str) -> ContainerInfo:
        """The attempt's container now; raises ContainerGone."""
        return self._owner(name).inspect(name)

    def kill(self, name: str) -> None:
        """Kill the attempt's process."""
        self._owner(name).kill(name)

    def remove(self, name: str) -> None:
        """Remove the attempt's container (or service)."""
        self._owner(name).remove(name)

    def stats(self, name: str) -> dict[str, Any] | None:
        """One resource sample of the attempt."""
        return self._owner(name).stats(name)

    def follow_output(self, name: str, stream: str) -> Iterator[bytes]:
        """One stream of the attempt's output as it is written."""
        return self._owner(name).follow_output(name, stream)

    def read_output(self, name: str, *, max_bytes: int) -> ContainerOutput:
        """The attempt's output so far."""
        return self._owner(name).read_output(name, max_bytes=max_bytes)

    def task_containers(self) -> list[ContainerInfo]:
        """Every task container and task service of this deployment."""
        containers = self.docker.task_containers()
        services = self.swarm.task_containers()
        for service in services:
            self._remember(service.name, self.swarm)
        return containers + services

    def events(self) -> Iterator[ContainerEvent]:
        """Both executors' start and die events, merged as they come (blocks)."""
        merged: queue.Queue[ContainerEvent | BaseException] = queue.Queue()
        stop = threading.Event()

        def pump(engine: ContainerEngine) -> None:
            try:
                events = self.swarm.events(stop) if engine is self.swarm else engine.events()
                for event in events:
                    if stop.is_set():
                        return
                    merged.put(event)
            except BaseException as exc:  # handed to the consumer, which re-raises it
                merged.put(exc)

        for engine in (self.docker, self.swarm):
            threading.Thread(target=pump, args=(engine,), daemon=True).start()
        try:
            while True:
                item = merged.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            # A pump still blocked on its stream ends at its next event.
            stop.set()

    def close(self) -> None:
        """Release the connection (one client serves both)."""
        self.docker.close()
