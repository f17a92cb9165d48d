"""The Docker adapter: what the tasks service asks of a Docker engine, behind a Protocol.

"Engine" in this package means the Docker engine (the daemon) and nothing else. Everything that
talks to it goes through `ContainerEngine`; `DockerEngine` is the implementation over the Docker
SDK. No database here: transitions.py records what these calls did.
"""

from __future__ import annotations

import copy
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from services.tasks.images import (
    InvalidImageReference,
    RegistryPolicy,
    RegistryRefused,
    parse_image_reference,
)

log = logging.getLogger(__name__)

LABEL_TASK = "dockyard.task-id"
LABEL_OWNER = "dockyard.owner-id"
LABEL_ATTEMPT = "dockyard.attempt"
#: The deployment (DOCKYARD_NAMESPACE) that owns the container: a reconciler touches only its own,
#: so two deployments, or `make up` and `make test`, can share one engine.
LABEL_NAMESPACE = "dockyard.namespace"
#: Files of a container's engine-side log (json-file rotation): the current one and one older.
ENGINE_LOG_FILES = 2
#: What a task learns of a failed pull: the engine's message can carry what a registry host
#: answered, or tell a closed port from an open one, so it goes to the log only.
PULL_FAILED = "The image could not be pulled: it does not exist or its registry refused or failed."


class EngineUnavailable(Exception):
    """The Docker engine could not be reached or failed on its side; worth retrying."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class TaskRejected(Exception):
    """The engine refused the task for a reason retrying will not fix (e.g. no such image)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ContainerGone(Exception):
    """The container is not (or no longer) on the engine."""


def namespace_filter(namespace: str) -> dict[str, list[str]]:
    """The engine's label filter matching the task containers of one deployment."""
    return {"label": [LABEL_TASK, f"{LABEL_NAMESPACE}={namespace}"]}


@dataclass(frozen=True)
class ContainerSpec:
    """What one attempt's container needs (read under the task's row lock)."""

    task_id: uuid.UUID
    owner_id: uuid.UUID
    attempt: int
    name: str
    image: str
    command: list[str]
    env: dict[str, str]
    cpu_limit: float
    memory_limit_mb: int
    network: bool
    #: The leased input file (its name, mounted at /input/<name>); None for a task without one.
    input_file_id: uuid.UUID | None = None
    input_filename: str | None = None
    #: The attempt's host directory mounted read-write at /output (outputs.py), if any.
    output_dir: str | None = None
    #: Which executor runs it (executors.py): "docker", "swarm" or a plugin's name.
    executor: str = "docker"
    #: A workflow step's dependencies' kept outputs: (step name, host directory), each mounted
    #: read-only at /input/<step name>/ (step_inputs.py).
    step_inputs: tuple[tuple[str, str], ...] = ()


#: Where a task's input file directory is mounted in its container.
INPUT_MOUNT = "/input"
#: The variable that tells a task the path of its input file.
INPUT_FILE_VARIABLE = "DOCKYARD_INPUT_FILE"


def input_host_dir(root: str, task_id: uuid.UUID | str) -> str:
    """The host directory holding one task's input file (input_staging.py writes it)."""
    return os.path.join(os.path.abspath(root), str(task_id))


@dataclass(frozen=True)
class ContainerLimits:
    """The operator's settings every task container gets."""

    pids_limit: int
    tmpfs_size_mb: int
    user: str
    namespace: str = "dockyard"
    #: Bytes of output kept per stream (TASKS_LOG_MAX_BYTES): the engine's log is sized from it.
    log_max_bytes: int = 1024 * 1024
    #: TASKS_INPUT_DIR: the host directory of the tasks' input file directories.
    input_root: str = ""
    #: Labels every container also carries (an executor wrapping Docker marks its own).
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def engine_log_file_bytes(self) -> int:
        """Size of one file of the engine's log of a container (both streams, JSON-framed)."""
        # Both streams share the file and json-file adds some 70 bytes a line: eight times the
        # cap keeps more than the cap of each stream's newest output unless its lines are under
        # ten bytes. Output lost to rotation is not counted as dropped (the engine does not say).
        return 8 * self.log_max_bytes

    @classmethod
    def from_settings(cls, settings: Any) -> ContainerLimits:
        """The container part of TasksSettings."""
        return cls(
            pids_limit=settings.DEFAULT_PIDS_LIMIT,
            tmpfs_size_mb=settings.TMPFS_SIZE_MB,
            user=settings.CONTAINER_USER,
            namespace=settings.NAMESPACE,
            log_max_bytes=settings.LOG_MAX_BYTES,
            input_root=settings.INPUT_DIR,
        )


@dataclass(frozen=True)
class ContainerInfo:
    """A container as the engine described it at one moment."""

    id: str
    name: str
    status: str
    labels: dict[str, str] = field(default_factory=dict)
    #: The engine's State object (ExitCode, OOMKilled, Error, StartedAt, ...).
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def task_id(self) -> uuid.UUID | None:
        """The task the container runs, from its label."""
        raw = self.labels.get(LABEL_TASK)
        return uuid.UUID(raw) if raw else None

    @property
    def exited(self) -> bool:
        """Whether the container's process has ended."""
        return self.status in ("exited", "dead")

    def started_at(self, default: datetime) -> datetime:
        """When the engine started the container (`default` if it does not say)."""
        raw = self.state.get("StartedAt") or ""
        try:
            # Docker gives nanoseconds; Python parses microseconds.
            head, _, rest = raw.partition(".")
            fraction = "".join(c for c in rest if c.isdigit())[:6]
            parsed = datetime.fromisoformat(f"{head}.{fraction or '0'}+00:00")
        except ValueError:
            return default
        return parsed if parsed.year > 1 else default


@dataclass(frozen=True)
class ContainerEvent:
    """A task container started, ran out of memory or ended, as the engine's events said."""

    action: str  # "start", "oom" or "die"
    name: str
    task_id: uuid.UUID
    container_id: str
    at: datetime
    #: A die event's exit code.
    exit_code: int | None = None


class ContainerEngine(Protocol):
    """The container operations the tasks service needs from a Docker engine.

    Every method raises EngineUnavailable when the engine is away or fails on its side.
    """

    def run(self, spec: ContainerSpec) -> ContainerInfo:
        """Pull the image if needed, create (or adopt) the attempt's container and start it.

        Raises TaskRejected for what retrying will not fix.
        """

    def inspect(self, name: str) -> ContainerInfo:
        """The container now; raises ContainerGone."""

    def kill(self, name: str) -> None:
        """Kill the container's process (nothing if it already stopped or is gone)."""

    def remove(self, name: str) -> None:
        """Remove the container, running or not (nothing if it is gone)."""

    def stats(self, name: str) -> dict[str, Any] | None:
        """One resource sample of a running container, None if the engine gave none."""

    def follow_output(self, name: str, stream: str) -> Iterator[bytes]:
        """One stream ("stdout"/"stderr") of the container's output, from its start, as written."""

    def read_output(self, name: str, *, max_bytes: int) -> ContainerOutput:
        """The container's output so far, by stream: its last `max_bytes` and its total size."""

    def task_containers(self) -> list[ContainerInfo]:
        """Every task container of this deployment, running or not."""

    def events(self) -> Iterator[ContainerEvent]:
        """This deployment's task containers starting and dying, as they happen (blocks)."""

    def close(self) -> None:
        """Release the connection."""


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout) or (
        isinstance(exc, DockerException) and not isinstance(exc, APIError)
    )


def _classify(exc: BaseException) -> Exception:
    """Turn a Docker SDK error into EngineUnavailable or TaskRejected."""
    if _is_connection_error(exc):
        return EngineUnavailable("ENGINE_UNREACHABLE", f"Docker engine unreachable: {exc}")
    if isinstance(exc, APIError) and exc.is_server_error():
        return EngineUnavailable("ENGINE_ERROR", f"Docker engine error: {exc.explanation or exc}")
    return TaskRejected("START_FAILED", f"The engine refused to start the task: {exc}")


def _unavailable(exc: BaseException) -> EngineUnavailable:
    return EngineUnavailable("ENGINE_UNREACHABLE", f"Docker engine unreachable: {exc}")


def container_options(
    spec: ContainerSpec, limits: ContainerLimits
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Arguments of the engine's container create: the container's, and its host config's.

    Safe by default, labelled, limited.
    """
    memory = spec.memory_limit_mb * 1024 * 1024
    container: dict[str, Any] = {
        "image": spec.image,
        "command": spec.command,
        "name": spec.name,
        "environment": spec.env,
        "labels": {
            **limits.labels,
            LABEL_TASK: str(spec.task_id),
            LABEL_OWNER: str(spec.owner_id),
            LABEL_ATTEMPT: str(spec.attempt),
            LABEL_NAMESPACE: limits.namespace,
        },
        "detach": True,
    }
    if limits.user:
        container["user"] = limits.user
    host = {
        # Network only when the task asked; the API refused it unless the operator allows it.
        "network_mode": "bridge" if spec.network else "none",
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,noexec,nosuid,mode=1777,size={limits.tmpfs_size_mb}m"},
        "pids_limit": limits.pids_limit,
        "mem_limit": memory,
        # Equal to mem_limit: no swap, so a task over its memory is OOM-killed, not slowed.
        "memswap_limit": memory,
        "nano_cpus": int(spec.cpu_limit * 1e9),
        # The monitor reads logs through the API; json-file keeps them until removal, rotated so
        # that a chatty task cannot fill the engine's disk (the database keeps the newest part).
        "log_config": {
            "Type": "json-file",
            "Config": {
                "max-size": str(limits.engine_log_file_bytes),
                "max-file": str(ENGINE_LOG_FILES),
            },
        },
    }
    binds: dict[str, dict[str, str]] = {}
    if spec.input_filename is not None:
        # Read-only, on top of the read-only root: the task reads its input and cannot change it.
        binds[input_host_dir(limits.input_root, spec.task_id)] = {"bind": INPUT_MOUNT, "mode": "ro"}
        container["environment"] = {
            **spec.env,
            INPUT_FILE_VARIABLE: f"{INPUT_MOUNT}/{spec.input_filename}",
        }
    if spec.output_dir:
        # A host directory, not a tmpfs: the outputs are collected after the container is gone.
        binds[spec.output_dir] = {"bind": "/output", "mode": "rw"}
    for step, directory in spec.step_inputs:
        binds[directory] = {"bind": f"{INPUT_MOUNT}/{step}", "mode": "ro"}
    if binds:
        host["binds"] = binds
    return container, host


#: The stream a frame of the engine's multiplexed output belongs to, by its first byte.
_FRAME_STREAMS = {1: "stdout", 2: "stderr"}
#: Bytes taken from the engine's answer at a time by a bounded read of a container's output.
_READ_PIECE_BYTES = 64 * 1024


def split_frames(data: bytes) -> dict[str, bytes]:
    """The stdout and stderr in a non-TTY container's multiplexed output (an engine log read)."""
    tails = FrameTails(max_bytes=len(data))
    tails.feed(data)
    return tails.result().data


@dataclass(frozen=True)
class ContainerOutput:
    """A bounded read of a container's output, by stream ("stdout", "stderr")."""

    #: The last bytes of each stream, at most the read's `max_bytes`.
    data: dict[str, bytes]
    #: Bytes of each stream the engine's log held (what `data` ends): more than `data` holds
    #: when the read kept only the end.
    total: dict[str, int]


class FrameTails:
    """Splits multiplexed output fed in pieces, keeping only each stream's last `max_bytes`."""

    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.pending = bytearray()
        self.kept: dict[str, bytearray] = {
            stream: bytearray() for stream in _FRAME_STREAMS.values()
        }
        self.total: dict[str, int] = {stream: 0 for stream in _FRAME_STREAMS.values()}

    def feed(self, piece: bytes) -> None:
        """Take the next bytes of the output (frames may be cut anywhere)."""
        self.pending += piece
        offset = 0
        while offset + 8 <= len(self.pending):
            size = int.from_bytes(self.pending[offset + 4 : offset + 8], "big")
            if offset + 8 + size > len(self.pending):
                break
            stream = _FRAME_STREAMS.get(self.pending[offset])
            if stream is not None:
                self._keep(stream, self.pending[offset + 8 : offset + 8 + size])
            offset += 8 + size
        del self.pending[:offset]

    def _keep(self, stream: str, payload: bytes | bytearray) -> None:
        self.total[stream] += len(payload)
        kept = self.kept[stream]
        kept += payload
        # Trimmed once it holds twice the cap, so that each byte is moved at most once more.
        if len(kept) > 2 * self.max_bytes:
            del kept[: len(kept) - self.max_bytes]

    def result(self) -> ContainerOutput:
        """What was fed: each stream's last `max_bytes` (a frame cut short at the end is lost)."""
        return ContainerOutput(
            data={
                s: bytes(kept[-self.max_bytes :] if self.max_bytes else b"")
                for s, kept in self.kept.items()
            },
            total=dict(self.total),
        )


def _exit_code(raw: str | None) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _info(container: Any) -> ContainerInfo:
    return ContainerInfo(
        id=container.id,
        name=container.name,
        status=container.status,
        labels=dict(container.labels or {}),
        state=dict(container.attrs.get("State") or {}),
    )


class DockerEngine:
    """ContainerEngine over the Docker SDK (its client is thread-safe: one per process)."""

    def __init__(
        self,
        *,
        docker_host: str,
        timeout: float,
        limits: ContainerLimits,
        registry: RegistryPolicy | None = None,
    ) -> None:
        self.limits = limits
        self.registry = registry or RegistryPolicy()
        try:
            self.client = docker.DockerClient(
                base_url=docker_host or None, version="auto", timeout=timeout
            )
        except DockerException as exc:
            where = docker_host or "the default socket (DOCKER_HOST unset)"
            raise EngineUnavailable(
                "ENGINE_UNREACHABLE", f"Docker engine unreachable at {where}: {exc}"
            ) from None

    @classmethod
    def from_settings(cls, settings: Any) -> DockerEngine:
        """The engine at DOCKER_HOST, with the operator's container limits."""
        return cls(
            docker_host=settings.DOCKER_HOST,
            timeout=settings.DOCKER_TIMEOUT_SECONDS,
            limits=ContainerLimits.from_settings(settings),
            registry=RegistryPolicy.parse(settings.REGISTRY_PRIVATE_ALLOWLIST),
        )

    def labelled(self, labels: Mapping[str, str]) -> DockerEngine:
        """This engine (the same client) whose containers also carry `labels`."""
        engine = copy.copy(self)
        engine.limits = replace(self.limits, labels={**self.limits.labels, **labels})
        return engine

    def run(self, spec: ContainerSpec) -> ContainerInfo:
        """Pull the image if needed, create (or adopt) the attempt's container and start it."""
        # Two calls on the usual path (create, start): the engine's time is the throughput.
        api = self.client.api
        container_args, host_args = container_options(spec, self.limits)
        try:
            try:
                container_id, status = self._create(container_args, host_args), "created"
            except ImageNotFound:
                self._pull(spec.image)
                container_id, status = self._create(container_args, host_args), "created"
            except APIError as exc:
                if exc.status_code != 409:
                    raise
                # The name is per attempt: a conflict is this attempt's own container from a job
                # that crashed after creating it, so adopt it rather than make another.
                found = api.inspect_container(spec.name)
                container_id, status = found["Id"], found["State"]["Status"]
            if status == "created":
                try:
                    api.start(container_id)
                except APIError as exc:
                    if exc.is_client_error():
                        # E.g. no such executable: the attempt never ran, so leave nothing behind.
                        self.remove(spec.name)
                    raise
                status = "running"
            return ContainerInfo(
                id=container_id, name=spec.name, status=status, labels=container_args["labels"]
            )
        except NotFound:
            # Removed under us (a reconciler or a duplicate job finishing it): not the task's
            # fault. Retrying re-reads the task, which is by then running, finished, or free to
            # start anew.
            raise EngineUnavailable(
                "CONTAINER_LOST", f"Container {spec.name} vanished while being started"
            ) from None
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise _classify(exc) from None

    def _create(self, container_args: dict[str, Any], host_args: dict[str, Any]) -> str:
        api = self.client.api
        created = api.create_container(
            **container_args, host_config=api.create_host_config(**host_args)
        )
        return created["Id"]

    def _pull(self, image: str) -> None:
        """Pull an image the engine does not have; raises TaskRejected if that fails."""
        # Checked again here, as the pull happens: a task created before the check existed, or a
        # name that resolves elsewhere now, must not send the engine into the server's network.
        try:
            self.registry.check(parse_image_reference(image))
        except (InvalidImageReference, RegistryRefused) as exc:
            log.warning("refused to pull %r: %s", image, exc)
            raise TaskRejected(
                "IMAGE_REFUSED", f"Image {image!r} may not be pulled: {exc}"
            ) from None
        try:
            self.client.images.pull(image)
        except (DockerException, requests.exceptions.RequestException) as exc:
            if _is_connection_error(exc):
                raise _classify(exc) from None
            # A failed pull (no such repository, no network, denied) is the image's problem.
            detail = exc.explanation if isinstance(exc, APIError) else str(exc)
            log.warning("pull of %r failed: %s", image, detail)
            raise TaskRejected("IMAGE_NOT_FOUND", PULL_FAILED) from None

    def inspect(self, name: str) -> ContainerInfo:
        """The container now; raises ContainerGone."""
        try:
            return _info(self.client.containers.get(name))
        except NotFound:
            raise ContainerGone(name) from None
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise _unavailable(exc) from None

    def kill(self, name: str) -> None:
        """Kill the container's process (nothing if it already stopped or is gone)."""
        self._settle(self.client.api.kill, name)

    def remove(self, name: str) -> None:
        """Remove the container, running or not (nothing if it is gone)."""
        self._settle(partial(self.client.api.remove_container, force=True), name)

    @staticmethod
    def _settle(call: Callable[[str], Any], name: str) -> None:
        """Run a kill or a removal, which a gone container settles as well."""
        # 404: gone already; 409: stopped already, or a removal is under way.
        try:
            call(name)
        except APIError as exc:
            if exc.status_code not in (404, 409):
                raise _unavailable(exc) from None
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise _unavailable(exc) from None

    def stats(self, name: str) -> dict[str, Any] | None:
        """One resource sample of a running container, None if the engine gave none."""
        try:
            return self.client.api.stats(name, stream=False, one_shot=True)
        except (DockerException, requests.exceptions.RequestException):
            return None

    def follow_output(self, name: str, stream: str) -> Iterator[bytes]:
        """One stream of the container's output, from its start, as it is written."""
        try:
            yield from self.client.api.logs(
                name, stdout=stream == "stdout", stderr=stream == "stderr", stream=True, follow=True
            )
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise _unavailable(exc) from None

    def read_output(self, name: str, *, max_bytes: int) -> ContainerOutput:
        """The container's output so far, by stream: its last `max_bytes` and its total size.

        One call to the engine, read as it comes: memory stays within twice `max_bytes` per
        stream whatever the size of the engine's log.
        """
        api = self.client.api
        tails = FrameTails(max_bytes=max_bytes)
        try:
            # The SDK's logs() joins the streams; its request is kept, and the engine's frames
            # (an 8-byte header: stream, 0, 0, 0, big-endian size) are split here.
            response = api._get(
                api._url("/containers/{0}/logs", name),
                params={"stdout": 1, "stderr": 1, "follow": 0, "timestamps": 0, "tail": "all"},
                stream=True,
            )
            with response:
                api._raise_for_status(response)
                for piece in response.iter_content(_READ_PIECE_BYTES):
                    tails.feed(piece)
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise _unavailable(exc) from None
        return tails.result()

    def task_containers(self) -> list[ContainerInfo]:
        """Every task container of this deployment, running or not."""
        try:
            containers = self.client.containers.list(
                all=True, filters=namespace_filter(self.limits.namespace), ignore_removed=True
            )
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise _unavailable(exc) from None
        return [_info(container) for container in containers]

    def events(self) -> Iterator[ContainerEvent]:
        """This deployment's task containers starting, running out of memory and dying (blocks)."""
        filters = {
            "type": ["container"],
            "event": ["start", "oom", "die"],
            **namespace_filter(self.limits.namespace),
        }
        try:
            for event in self.client.api.events(filters=filters, decode=True):
                attributes = (event.get("Actor") or {}).get("Attributes") or {}
                raw_task = attributes.get(LABEL_TASK)
                if not raw_task:
                    continue
                yield ContainerEvent(
                    action=event.get("Action") or event.get("status") or "",
                    name=attributes.get("name", ""),
                    task_id=uuid.UUID(raw_task),
                    container_id=(event.get("Actor") or {}).get("ID") or event.get("id", ""),
                    at=datetime.fromtimestamp(event.get("timeNano", 0) / 1e9, UTC),
                    exit_code=_exit_code(attributes.get("exitCode")),
                )
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise _unavailable(exc) from None

    def close(self) -> None:
        """Release the connection."""
        self.client.close()
