"""The Swarm executor: a task attempt as a Docker Swarm `replicated-job` service.

`SwarmEngine` implements `ContainerEngine` (containers.py) over the Swarm API of the engine at
DOCKER_HOST, which must be a swarm manager. Swarm's scheduler places the job's one task on a node;
Dockyard schedules no nodes. The "container" of the Protocol is the service, named as the
attempt's container would be; its spec (the safety defaults) is swarm_spec.py's.

Swarm has no event for a task's state changes, so `events()` polls the services' tasks every
SWARM_POLL_SECONDS (a light list call each) and turns what changed into start and die events.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from docker.errors import APIError, DockerException, NotFound
from docker.types import ServiceMode

from services.tasks.containers import (
    LABEL_TASK,
    ContainerEvent,
    ContainerGone,
    ContainerInfo,
    ContainerOutput,
    ContainerSpec,
    DockerEngine,
    EngineUnavailable,
    FrameTails,
    TaskRejected,
    namespace_filter,
)
from services.tasks.swarm_spec import service_options

log = logging.getLogger(__name__)

#: How often events() looks at the tasks of this deployment's services (seconds).
SWARM_POLL_SECONDS = 0.25
#: Age after which a job network without its service is left over from a crash (seconds).
LONE_NETWORK_SECONDS = 60
#: Task states after which the job's container will not run (again).
_ENDED = frozenset({"complete", "failed", "rejected", "shutdown", "orphaned", "remove"})
#: Task states in which the container has started (or had, for the ended ones).
_STARTED = frozenset({"running", "complete", "failed"})
_PIECE_BYTES = 64 * 1024


def _not_a_manager(exc: APIError) -> bool:
    """Whether the engine answered that it is no swarm manager (not in a swarm, or a worker)."""
    return exc.status_code == 503 and "not a swarm manager" in str(exc.explanation or exc)


def _parse_time(raw: str | None) -> datetime | None:
    if not raw:
        return None
    head, _, rest = raw.rstrip("Z").partition(".")
    fraction = "".join(c for c in rest if c.isdigit())[:6]
    try:
        parsed = datetime.fromisoformat(f"{head}.{fraction or '0'}+00:00")
    except ValueError:
        return None
    return parsed if parsed.year > 1 else None


class SwarmEngine:
    """ContainerEngine over the Swarm API: one replicated-job service per attempt."""

    def __init__(self, docker_engine: DockerEngine) -> None:
        #: The manager's client, its limits and its image policy (pulls go through it).
        self.docker = docker_engine
        self.client = docker_engine.client
        self.limits = docker_engine.limits
        #: Services this engine removed to stop them (a task on another node): their end.
        self._stopped: dict[str, dict[str, Any]] = {}
        self._stopped_lock = threading.Lock()
        self._warned_not_a_manager = False
        #: Open follow streams of each service's output, for `remove` to end.
        self._followers: dict[str, list[Any]] = {}
        self._followers_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any, docker: DockerEngine | None = None) -> SwarmEngine:
        """The swarm managed by `docker` (else the engine at DOCKER_HOST), with its limits."""
        return cls(docker or DockerEngine.from_settings(settings))

    def _call(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except (DockerException, requests.exceptions.RequestException) as exc:
            if isinstance(exc, APIError) and exc.is_client_error():
                raise
            raise EngineUnavailable(
                "ENGINE_UNREACHABLE", f"Docker swarm unreachable: {exc}"
            ) from None

    # -- starting ----------------------------------------------------------------------------

    def run(self, spec: ContainerSpec) -> ContainerInfo:
        """Create (or adopt) the attempt's service; wait until Swarm has started its task."""
        api = self.client.api
        options = service_options(spec, self.limits, api_version=api._version)
        options["task_template"]["ContainerSpec"]["Image"] = self._pinned_image(spec.image)
        if not spec.network:
            self._create_network(spec.name, options["labels"])
        try:
            self._call(
                api.create_service,
                mode=ServiceMode("replicated-job", concurrency=1, replicas=1),
                **options,
            )
        except APIError as exc:
            if exc.status_code != 409:
                self._drop_network(spec.name)
                raise TaskRejected(
                    "START_FAILED", f"Swarm refused the task: {exc.explanation or exc}"
                ) from None
            # A start job that crashed after creating it: this attempt's own service.
        try:
            task = self._await_start(spec.name)
        except ContainerGone:
            # Removed under us (a reconciler, a duplicate job finishing it): as on Docker,
            # retrying re-reads the task.
            raise EngineUnavailable(
                "CONTAINER_LOST", f"Service {spec.name} vanished while being started"
            ) from None
        if (
            task is not None
            and task["Status"]["State"] in ("rejected",)
            or (
                task is not None
                and task["Status"]["State"] == "failed"
                and not (task["Status"].get("ContainerStatus") or {}).get("ContainerID")
            )
        ):
            error = task["Status"].get("Err") or task["Status"]["State"]
            self.remove(spec.name)
            raise TaskRejected("START_FAILED", f"Swarm could not start the task: {error}")
        return ContainerInfo(
            id=self._service_id(spec.name),
            name=spec.name,
            status="running",
            labels=options["labels"],
            state=self._state(task) if task is not None else {},
        )

    def _pinned_image(self, image: str) -> str:
        """The image as the job names it: by digest, so that no node asks a registry again.

        Pulled on the manager first if missing (under the registry policy). A swarm agent
        pulls a tag-named image before every task even when it has it; by repository digest
        it does not, and other nodes can still pull that. An image built locally has no
        repository digest: its id runs it, on the nodes that hold it.
        """
        api = self.client.api
        try:
            found = self._call(api.inspect_image, image)
        except NotFound:
            self.docker._pull(image)
            found = self._call(api.inspect_image, image)
        # Any of its repository digests names these very bytes.
        digests = found.get("RepoDigests") or []
        return digests[0] if digests else found["Id"]

    def _create_network(self, name: str, labels: dict[str, str]) -> None:
        try:
            self._call(
                self.client.api.create_network,
                name,
                driver="overlay",
                internal=True,
                labels=labels,
                check_duplicate=True,
            )
        except APIError as exc:
            if exc.status_code != 409:
                raise TaskRejected(
                    "START_FAILED", f"Swarm refused the task's network: {exc.explanation}"
                ) from None

    def _drop_network(self, name: str) -> None:
        try:
            self._call(self.client.api.remove_network, name)
        except APIError:
            pass  # gone already, or its container still leaving: the reconciler comes back

    def _await_start(self, name: str) -> dict[str, Any] | None:
        """The service's task once it ran or failed to; what it is after DOCKER_TIMEOUT if not.

        A task still waiting for a node after that counts as started: Swarm keeps placing it,
        and its timeout runs from here.
        """
        deadline = time.monotonic() + self.client.api.timeout
        task = None
        while time.monotonic() < deadline:
            task = self._task(name)
            if task is not None and task["Status"]["State"] in _STARTED | _ENDED:
                return task
            time.sleep(0.05)
        return task

    # -- looking -----------------------------------------------------------------------------

    def _service_id(self, name: str) -> str:
        try:
            return self._call(self.client.api.inspect_service, name)["ID"]
        except APIError:
            return ""

    def _task(self, name: str) -> dict[str, Any] | None:
        """The newest task of the service (a job with restarts off has one); ContainerGone."""
        try:
            tasks = self._call(self.client.api.tasks, filters={"service": name})
        except APIError as exc:
            if exc.status_code == 404:
                raise ContainerGone(name) from None
            raise EngineUnavailable("ENGINE_ERROR", f"Docker swarm error: {exc}") from None
        tasks = [t for t in tasks if (t.get("Spec") or {}).get("ContainerSpec")]
        return max(tasks, key=lambda t: t.get("CreatedAt", ""), default=None)

    def _local_container(self, task: dict[str, Any] | None) -> dict[str, Any] | None:
        """The task's container if it is on the manager's own node (None elsewhere)."""
        container_id = ((task or {}).get("Status", {}).get("ContainerStatus") or {}).get(
            "ContainerID"
        )
        if not container_id:
            return None
        try:
            return self._call(self.client.api.inspect_container, container_id)
        except APIError:
            return None

    def _state(self, task: dict[str, Any] | None) -> dict[str, Any]:
        """A container State (ExitCode, OOMKilled, Error, StartedAt) from a swarm task."""
        if task is None:
            return {}
        status = task.get("Status") or {}
        local = self._local_container(task)
        if local is not None:
            state = dict(local.get("State") or {})
            if status.get("State") == "rejected":
                state["Error"] = status.get("Err") or ""
            return state
        state: dict[str, Any] = {
            "ExitCode": (status.get("ContainerStatus") or {}).get("ExitCode"),
            # OOM is known only from a container on this node; elsewhere it is a plain 137.
            "OOMKilled": False,
        }
        if status.get("State") in ("rejected", "orphaned") or (
            status.get("Err") and not str(status.get("Err")).startswith("task: non-zero exit")
        ):
            state["Error"] = status.get("Err") or status.get("State")
        if status.get("State") == "running" and status.get("Timestamp"):
            state["StartedAt"] = status["Timestamp"]
        return state

    def inspect(self, name: str) -> ContainerInfo:
        """The service's job now, as a container; raises ContainerGone."""
        try:
            service = self._call(self.client.api.inspect_service, name)
        except APIError as exc:
            with self._stopped_lock:
                stopped = self._stopped.get(name)
            if stopped is not None:
                return ContainerInfo(id="", name=name, status="exited", state=stopped)
            if exc.status_code == 404:
                raise ContainerGone(name) from None
            raise EngineUnavailable("ENGINE_ERROR", f"Docker swarm error: {exc}") from None
        return self._info(service, self._task(name))

    def _info(self, service: dict[str, Any], task: dict[str, Any] | None) -> ContainerInfo:
        state = (task or {}).get("Status", {}).get("State", "new")
        status = "exited" if state in _ENDED else "running" if state == "running" else "created"
        return ContainerInfo(
            id=service["ID"],
            name=service["Spec"]["Name"],
            status=status,
            labels=dict(service["Spec"].get("Labels") or {}),
            state=self._state(task),
        )

    def owns(self, name: str) -> bool:
        """Whether `name` is a service of this swarm (or one this engine stopped).

        Raises EngineUnavailable when the swarm cannot say (no leader, no engine).
        """
        with self._stopped_lock:
            if name in self._stopped:
                return True
        try:
            self.client.api.inspect_service(name)
        except APIError as exc:
            if exc.status_code == 404 or _not_a_manager(exc):
                return False
            raise EngineUnavailable("ENGINE_ERROR", f"Docker swarm error: {exc}") from None
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise EngineUnavailable(
                "ENGINE_UNREACHABLE", f"Docker swarm unreachable: {exc}"
            ) from None
        return True

    # -- stopping ----------------------------------------------------------------------------

    def kill(self, name: str) -> None:
        """Kill the job's container: on this node directly, elsewhere by removing the service."""
        try:
            task = self._task(name)
        except ContainerGone:
            return
        local = self._local_container(task)
        if local is not None:
            self.docker.kill(local["Id"])
            return
        if task is not None and task["Status"]["State"] in _ENDED:
            return
        # Swarm cannot stop one job's task on another node but by removing the service; its
        # end is then only known here.
        with self._stopped_lock:
            self._stopped[name] = {"ExitCode": None, "Error": "stopped by removing its service"}
        self._remove_service(name)

    def remove(self, name: str) -> None:
        """Remove the service (killing its container) and its network (nothing if gone)."""
        self._remove_service(name)
        self._end_followers(name)
        with self._stopped_lock:
            self._stopped.pop(name, None)
        # The network goes once the container has left it, a moment after the service.
        for _ in range(40):
            try:
                self._call(self.client.api.remove_network, name)
                return
            except APIError as exc:
                if exc.status_code == 404:
                    return
            time.sleep(0.05)
        log.info("network %s still in use; the reconciler removes it", name)

    def _remove_service(self, name: str) -> None:
        try:
            self._call(self.client.api.remove_service, name)
        except APIError as exc:
            if exc.status_code != 404:
                raise EngineUnavailable("ENGINE_ERROR", f"Docker swarm error: {exc}") from None

    # -- output and usage --------------------------------------------------------------------

    def stats(self, name: str) -> dict[str, Any] | None:
        """One resource sample of the job's container when it runs on this node, else None."""
        try:
            local = self._local_container(self._task(name))
        except (ContainerGone, EngineUnavailable):
            return None
        return self.docker.stats(local["Id"]) if local is not None else None

    def follow_output(self, name: str, stream: str) -> Iterator[bytes]:
        """One stream of the job's output (service logs), from its start, as it is written.

        Swarm's follow stream outlives the job and even its service, so `remove` ends it.
        """
        api = self.client.api
        try:
            response = api._get(
                api._url("/services/{0}/logs", name),
                params={
                    "follow": 1,
                    "stdout": int(stream == "stdout"),
                    "stderr": int(stream == "stderr"),
                    "timestamps": 0,
                    "tail": "all",
                },
                stream=True,
            )
            api._raise_for_status(response)
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise EngineUnavailable(
                "ENGINE_UNREACHABLE", f"Docker swarm unreachable: {exc}"
            ) from None
        with self._followers_lock:
            self._followers.setdefault(name, []).append(response)
        try:
            yield from api._multiplexed_response_stream_helper(response)
        except Exception as exc:
            if not getattr(response, "_dockyard_ended", False):
                raise EngineUnavailable(
                    "ENGINE_UNREACHABLE", f"Docker swarm unreachable: {exc}"
                ) from None
        finally:
            with self._followers_lock:
                followers = self._followers.get(name, [])
                if response in followers:
                    followers.remove(response)
                if not followers:
                    self._followers.pop(name, None)
            response.close()

    def _end_followers(self, name: str) -> None:
        """End the follow streams of a service's output (blocked readers wake up)."""
        with self._followers_lock:
            followers = self._followers.pop(name, [])
        for response in followers:
            response._dockyard_ended = True
            try:
                # A shutdown, not a close: only it wakes a thread blocked reading the socket.
                raw = self.client.api._get_raw_response_socket(response)
                # Over a unix socket the SDK hands out its SocketIO wrapper.
                getattr(raw, "_sock", raw).shutdown(socket.SHUT_RDWR)
            except (OSError, AttributeError):
                pass

    def read_output(self, name: str, *, max_bytes: int) -> ContainerOutput:
        """The job's output so far, by stream: its last `max_bytes` and its total size."""
        api = self.client.api
        tails = FrameTails(max_bytes=max_bytes)
        try:
            response = api._get(
                api._url("/services/{0}/logs", name),
                params={"stdout": 1, "stderr": 1, "follow": 0, "timestamps": 0, "tail": "all"},
                stream=True,
            )
            with response:
                api._raise_for_status(response)
                for piece in response.iter_content(_PIECE_BYTES):
                    tails.feed(piece)
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise EngineUnavailable(
                "ENGINE_UNREACHABLE", f"Docker swarm unreachable: {exc}"
            ) from None
        return tails.result()

    # -- the deployment's services -----------------------------------------------------------

    def _services(self) -> list[dict[str, Any]]:
        """This deployment's services; none when the engine is no swarm manager (said once)."""
        try:
            services = self.client.api.services(filters=namespace_filter(self.limits.namespace))
        except APIError as exc:
            if not _not_a_manager(exc):
                raise EngineUnavailable("ENGINE_ERROR", f"Docker swarm error: {exc}") from None
            # The Docker executor carries on; swarm tasks fail to start, with the reason.
            if not self._warned_not_a_manager:
                log.warning("TASKS_EXECUTORS names swarm, but the engine is no swarm manager")
                self._warned_not_a_manager = True
            return []
        except (DockerException, requests.exceptions.RequestException) as exc:
            raise EngineUnavailable(
                "ENGINE_UNREACHABLE", f"Docker swarm unreachable: {exc}"
            ) from None
        self._warned_not_a_manager = False
        return services

    def _tasks_by_service(self, services: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The newest task of each service, by service id (one call for all of them)."""
        if not services:
            return {}
        tasks = self._call(self.client.api.tasks, filters={"service": [s["ID"] for s in services]})
        newest: dict[str, dict[str, Any]] = {}
        for task in tasks:
            current = newest.get(task["ServiceID"])
            if current is None or task.get("CreatedAt", "") > current.get("CreatedAt", ""):
                newest[task["ServiceID"]] = task
        return newest

    def task_containers(self) -> list[ContainerInfo]:
        """Every task service of this deployment, running or not, as containers."""
        services = self._services()
        tasks = self._tasks_by_service(services)
        self._remove_lone_networks({s["Spec"]["Name"] for s in services})
        return [self._info(s, tasks.get(s["ID"])) for s in services]

    def _remove_lone_networks(self, names: set[str]) -> None:
        """Remove this deployment's job networks whose service is gone (a crash between)."""
        networks = self._call(
            self.client.api.networks, filters=namespace_filter(self.limits.namespace)
        )
        # Only old ones: a start job creates the network a moment before its service.
        settled = datetime.now(UTC) - timedelta(seconds=LONE_NETWORK_SECONDS)
        for network in networks:
            created = _parse_time(network.get("Created")) or datetime.now(UTC)
            if network["Name"] not in names and created < settled:
                self._drop_network(network["Name"])

    def events(self, stop: threading.Event | None = None) -> Iterator[ContainerEvent]:
        """This deployment's jobs starting and ending, as polling their tasks finds (blocks).

        `stop` ends the polling (a merged stream that was given up).
        """
        stop = stop or threading.Event()
        seen: dict[str, str] = {}
        while not stop.is_set():
            services = self._services()
            tasks = self._tasks_by_service(services)
            names = set()
            for service in services:
                name = service["Spec"]["Name"]
                names.add(name)
                task = tasks.get(service["ID"])
                if task is None:
                    continue
                yield from self._changes(service, task, seen)
            for gone in set(seen) - names:
                del seen[gone]
            stop.wait(SWARM_POLL_SECONDS)

    def _changes(
        self, service: dict[str, Any], task: dict[str, Any], seen: dict[str, str]
    ) -> Iterator[ContainerEvent]:
        """The events of one job since the last look: start, then die once it ended."""
        name = service["Spec"]["Name"]
        labels = service["Spec"].get("Labels") or {}
        raw_task = labels.get(LABEL_TASK)
        if not raw_task:
            return
        state = task["Status"]["State"]
        before = seen.get(name)
        event = dict(name=name, task_id=uuid.UUID(raw_task), container_id=service["ID"])
        if before is None and state in _STARTED:
            at = _parse_time(task["Status"].get("Timestamp")) or datetime.now(UTC)
            seen[name] = "start"
            yield ContainerEvent(action="start", at=at, **event)
        if seen.get(name) == "start" and state in _ENDED:
            seen[name] = "die"
            exit_code = (task["Status"].get("ContainerStatus") or {}).get("ExitCode")
            yield ContainerEvent(action="die", at=datetime.now(UTC), exit_code=exit_code, **event)

    def close(self) -> None:
        """Release the connection."""
        self.docker.close()
