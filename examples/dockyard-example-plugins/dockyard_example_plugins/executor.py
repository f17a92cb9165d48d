"""The `labelled-docker` executor: the Docker executor, with every container it starts labelled.

A thin wrapper, to show how a third-party executor plugs in: Dockyard builds it with
`LabelledDockerEngine.from_settings(settings, docker)` (`docker` is the process's DockerEngine)
and routes to it every attempt of a task created with `executor: "labelled-docker"`, once the
operator lists it in TASKS_EXECUTORS. Its containers carry `dockyard.example.executor=
labelled-docker`, which is how it knows its own (`owns`, `task_containers`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

NAME = "labelled-docker"
#: The label (and its value) on every container this executor starts.
LABEL = "dockyard.example.executor"


class LabelledDockerEngine:
    """A ContainerEngine over the Docker executor whose containers carry LABEL=NAME."""

    def __init__(self, docker: Any) -> None:
        self.docker = docker.labelled({LABEL: NAME})

    @classmethod
    def from_settings(cls, settings: Any, docker: Any) -> LabelledDockerEngine:
        """The executor over the process's Docker executor (settings are not needed here)."""
        return cls(docker)

    def owns(self, name: str) -> bool:
        """Whether the attempt `name` is a container this executor started."""
        from services.tasks.containers import ContainerGone

        try:
            return self.docker.inspect(name).labels.get(LABEL) == NAME
        except ContainerGone:
            return False

    def run(self, spec: Any) -> Any:
        """Start the attempt as the Docker executor does, labelled."""
        return self.docker.run(spec)

    def inspect(self, name: str) -> Any:
        """The attempt's container now."""
        return self.docker.inspect(name)

    def kill(self, name: str) -> None:
        """Kill the attempt's process."""
        self.docker.kill(name)

    def remove(self, name: str) -> None:
        """Remove the attempt's container."""
        self.docker.remove(name)

    def stats(self, name: str) -> dict[str, Any] | None:
        """One resource sample of the attempt."""
        return self.docker.stats(name)

    def follow_output(self, name: str, stream: str) -> Iterator[bytes]:
        """One stream of the attempt's output as it is written."""
        return self.docker.follow_output(name, stream)

    def read_output(self, name: str, *, max_bytes: int) -> Any:
        """The attempt's output so far."""
        return self.docker.read_output(name, max_bytes=max_bytes)

    def task_containers(self) -> list[Any]:
        """This deployment's containers that this executor started."""
        return [info for info in self.docker.task_containers() if info.labels.get(LABEL) == NAME]

    def events(self) -> Iterator[Any]:
        """Nothing of its own: its containers are on the Docker engine, whose events Dockyard's
        `docker` executor already reports (they carry the task's name and id)."""
        return iter(())

    def close(self) -> None:
        """Nothing to release: the client is the Docker executor's."""
