"""Executor selection: which ContainerEngine runs a task, by its `executor` (TASKS_EXECUTORS).

Every executor is an entry point of the group `dockyard.executors` (shared.plugins): Dockyard's
own `docker` (DockerEngine, containers.py) and `swarm` (SwarmEngine, swarm.py), and any a third
party installs (docs/plugins.md). TASKS_EXECUTORS names the enabled ones; one that is not
installed, or whose plugin failed to load, fails start-up (config.py). An executor other than
`docker` is built by its entry point's `from_settings(settings, docker)`, `docker` being the
process's one DockerEngine, which it may wrap (swarm does) or leave alone.

With any executor besides `docker` enabled, `RoutedEngine` is the one engine the launcher, the
worker and the monitor hold: it starts each attempt on its task's executor and sends every later
call for an attempt to the executor that owns it.
"""

from __future__ import annotations

import inspect
import logging
import queue
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from services.tasks.containers import (
    ContainerEngine,
    ContainerEvent,
    ContainerInfo,
    ContainerOutput,
    ContainerSpec,
    DockerEngine,
    TaskRejected,
)
from shared import plugins

log = logging.getLogger(__name__)

DOCKER = "docker"
SWARM = "swarm"
#: Names whose executor is remembered (most recent first out once full).
_OWNERS_KEPT = 4096


def build_executor(factory: Any, settings: Any, docker: DockerEngine) -> ContainerEngine:
    """An executor from its entry point: `factory.from_settings(settings, docker)`, or the
    entry point itself called so when it is a plain function."""
    make = getattr(factory, "from_settings", factory)
    return make(settings, docker)


def engine_from_settings(settings: Any) -> ContainerEngine:
    """The engine for the operator's TASKS_EXECUTORS: Docker alone, or a RoutedEngine."""
    factories = {
        name: plugins.require("executor", name, setting="TASKS_EXECUTORS")
        for name in settings.EXECUTORS
    }
    docker = DockerEngine.from_settings(settings)
    if set(factories) == {DOCKER}:
        return docker
    executors: dict[str, ContainerEngine] = {
        name: build_executor(factory, settings, docker)
        for name, factory in factories.items()
        if name != DOCKER
    }
    return RoutedEngine(executors, docker=docker)


def _events_of(engine: ContainerEngine, stop: threading.Event) -> Iterator[ContainerEvent]:
    # An executor that polls (swarm) takes the event that ends it; a stream ends at its next event.
    if "stop" in inspect.signature(engine.events).parameters:
        return engine.events(stop=stop)  # type: ignore[call-arg]
    return engine.events()


class RoutedEngine:
    """ContainerEngine over several executors, routing each call by its attempt's name.

    `docker` is always among them: the default owner of an attempt no other executor claims.
    """

    def __init__(self, executors: Mapping[str, ContainerEngine], *, docker: ContainerEngine):
        #: The executors by name, those besides docker first (they are asked before it).
        self.executors: dict[str, ContainerEngine] = {
            **{name: e for name, e in executors.items() if name != DOCKER},
            DOCKER: docker,
        }
        self.docker = docker
        self._owners: dict[str, ContainerEngine] = {}
        self._lock = threading.Lock()

    def _others(self) -> list[ContainerEngine]:
        return [engine for engine in self.executors.values() if engine is not self.docker]

    def _remember(self, name: str, engine: ContainerEngine) -> ContainerEngine:
        with self._lock:
            if len(self._owners) >= _OWNERS_KEPT:
                self._owners.pop(next(iter(self._owners)))
            self._owners[name] = engine
        return engine

    def _owner(self, name: str) -> ContainerEngine:
        """The executor of the attempt `name`: remembered, else the first that owns it, else
        docker."""
        with self._lock:
            engine = self._owners.get(name)
        if engine is not None:
            return engine
        # Not remembered (another process started it): each executor that can tell is asked.
        for candidate in self._others():
            owns = getattr(candidate, "owns", None)
            if owns is not None and owns(name):
                return self._remember(name, candidate)
        return self._remember(name, self.docker)

    def run(self, spec: ContainerSpec) -> ContainerInfo:
        """Start the attempt on its task's executor."""
        engine = self.executors.get(spec.executor)
        if engine is None:
            raise TaskRejected("START_FAILED", f"No executor named {spec.executor!r}.")
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
        """Every attempt of this deployment on any executor, each once (its owner's view)."""
        found: dict[str, ContainerInfo] = {}
        # Docker last: an executor wrapping it lists (and claims) its own containers first.
        for engine in self._others():
            for info in engine.task_containers():
                if info.name not in found:
                    found[info.name] = info
                    self._remember(info.name, engine)
        for info in self.docker.task_containers():
            found.setdefault(info.name, info)
        return list(found.values())

    def events(self) -> Iterator[ContainerEvent]:
        """Every executor's start and die events, merged as they come (blocks)."""
        merged: queue.Queue[ContainerEvent | BaseException] = queue.Queue()
        stop = threading.Event()

        def pump(engine: ContainerEngine) -> None:
            try:
                for event in _events_of(engine, stop):
                    if stop.is_set():
                        return
                    merged.put(event)
            except BaseException as exc:  # handed to the consumer, which re-raises it
                merged.put(exc)

        for engine in self.executors.values():
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
        """Release every executor's connection (docker's last: others may share its client)."""
        for engine in self._others():
            engine.close()
        self.docker.close()
