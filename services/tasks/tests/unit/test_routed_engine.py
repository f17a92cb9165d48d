"""RoutedEngine over any number of executors: each attempt goes to its task's executor, and
every later call to the executor that owns it (remembered, or claimed by `owns`)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from services.tasks.containers import ContainerEvent, ContainerInfo, ContainerSpec, TaskRejected
from services.tasks.executors import RoutedEngine, build_executor


class Recording:
    """A stand-in executor: it records the calls, owns the names it is told it owns."""

    def __init__(self, name: str, *, owned: tuple[str, ...] = (), listed: tuple[str, ...] = ()):
        self.name = name
        self.owned = set(owned)
        self.listed = listed
        self.calls: list[tuple[str, str]] = []
        self.closed = False

    def owns(self, name: str) -> bool:
        """Whether the attempt is one of this executor's."""
        return name in self.owned

    def run(self, spec: ContainerSpec) -> ContainerInfo:
        """Record the start."""
        self.calls.append(("run", spec.name))
        return ContainerInfo(id=self.name, name=spec.name, status="running")

    def inspect(self, name: str) -> ContainerInfo:
        """Record the look."""
        self.calls.append(("inspect", name))
        return ContainerInfo(id=self.name, name=name, status="running")

    def kill(self, name: str) -> None:
        """Record the kill."""
        self.calls.append(("kill", name))

    def task_containers(self) -> list[ContainerInfo]:
        """The containers this executor lists."""
        return [ContainerInfo(id=self.name, name=n, status="running") for n in self.listed]

    def events(self) -> Iterator[ContainerEvent]:
        """One die event of each listed container."""
        for n in self.listed:
            yield ContainerEvent("die", n, uuid.uuid4(), self.name, datetime.now(UTC), 0)
        threading.Event().wait()  # a stream blocks for the next event

    def close(self) -> None:
        """Record the close."""
        self.closed = True


def _spec(name: str, executor: str) -> ContainerSpec:
    return ContainerSpec(
        task_id=uuid.uuid4(),
        owner_id=uuid.uuid4(),
        attempt=1,
        name=name,
        image="busybox",
        command=["true"],
        env={},
        cpu_limit=1,
        memory_limit_mb=64,
        network=False,
        executor=executor,
    )


def _engine() -> tuple[RoutedEngine, Recording, Recording, Recording]:
    docker = Recording("docker", listed=("plain", "wrapped"))
    swarm = Recording("swarm", owned=("job",), listed=("job",))
    plugin = Recording("plugin", owned=("wrapped",), listed=("wrapped",))
    return RoutedEngine({"swarm": swarm, "plugin": plugin}, docker=docker), docker, swarm, plugin


def test_each_attempt_starts_on_its_tasks_executor_and_stays_with_it():
    routed, docker, swarm, plugin = _engine()
    for name, executor in (("a", "docker"), ("b", "swarm"), ("c", "plugin")):
        routed.run(_spec(name, executor))
        routed.kill(name)
    assert docker.calls == [("run", "a"), ("kill", "a")]
    assert swarm.calls == [("run", "b"), ("kill", "b")]
    assert plugin.calls == [("run", "c"), ("kill", "c")]


def test_an_attempt_started_elsewhere_goes_to_the_executor_that_owns_it_else_docker():
    routed, docker, swarm, plugin = _engine()
    routed.inspect("job")
    routed.inspect("wrapped")
    routed.inspect("plain")
    assert (swarm.calls, plugin.calls, docker.calls) == (
        [("inspect", "job")],
        [("inspect", "wrapped")],
        [("inspect", "plain")],
    )


def test_an_executor_not_configured_is_refused_before_any_is_asked():
    routed, docker, swarm, plugin = _engine()
    with pytest.raises(TaskRejected, match="kubernetes"):
        routed.run(_spec("x", "kubernetes"))
    assert docker.calls == swarm.calls == plugin.calls == []


def test_every_attempt_is_listed_once_by_the_executor_that_owns_it():
    routed, docker, _, plugin = _engine()
    listed = {info.name: info.id for info in routed.task_containers()}
    assert listed == {"job": "swarm", "wrapped": "plugin", "plain": "docker"}
    routed.kill("wrapped")  # claimed by the listing: no need to ask again
    assert plugin.calls == [("kill", "wrapped")]


def test_every_executors_events_are_merged_and_all_are_closed():
    routed, docker, swarm, plugin = _engine()
    events = routed.events()
    seen = sorted(next(events).container_id for _ in range(4))
    assert seen == ["docker", "docker", "plugin", "swarm"]
    events.close()
    routed.close()
    assert docker.closed and swarm.closed and plugin.closed


def test_a_plugin_is_built_by_its_from_settings_or_called_when_a_function():
    class WithFactory:
        @classmethod
        def from_settings(cls, settings, docker):
            return ("class", settings, docker)

    def function(settings, docker):
        return ("function", settings, docker)

    assert build_executor(WithFactory, "s", "d") == ("class", "s", "d")
    assert build_executor(function, "s", "d") == ("function", "s", "d")
