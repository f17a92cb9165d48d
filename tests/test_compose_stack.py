"""docker-compose.yml really runs: every image built here from the Debian base, the stack
started, a user's round trip through its gateway, then it is torn down.

The images come from deploy/offline-images.sh (Dockyard's image and the infrastructure
stand-ins), since no registry can be reached here; Grafana, which has no stand-in, is the one
service not started. The compose binary is the Docker client's v2 plugin where it has one, else
Debian's docker-compose 1.29.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from services.tasks.tests.engine.conftest import TEST_IMAGE, docker_client  # noqa: F401
from shared.testing import run_directory
from shared.throwaway import free_ports
from tests.conftest import BIN, PASSWORD, REPO, unique_email
from tests.offline_images import OFFLINE_IMAGES_TIMEOUT, offline_images
from tests.test_dashboards import dashboard_expressions

#: The first test's setup may build every image compose runs (deploy/offline-images.sh: the
#: Debian base, Dockyard's image, the stand-ins), minutes on a fresh engine, or wait for
#: another worker doing so.
pytestmark = pytest.mark.timeout(OFFLINE_IMAGES_TIMEOUT)

#: Services compose would start that cannot run here (no registry to pull them from).
NOT_STARTED = {"grafana"}
#: The image every Dockyard process runs as, and its unprivileged user (deploy/Dockerfile).
DOCKYARD_USER = "10001"
#: How long the stack may take to be ready: migrations, RabbitMQ's boot, every healthcheck.
READY_TIMEOUT = 240


def compose_command() -> list[str]:
    """The Compose v2 plugin if the Docker client has it, else Debian's docker-compose."""
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True)
    if plugin.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail(
        "neither `docker compose` nor docker-compose: deploy/provision.sh --tests installs it"
    )


@dataclass
class ComposeStack:
    """A started compose project and the host ports its published services answer on."""

    command: list[str]
    project: str
    gateway: str
    rabbitmq_ui: str
    flower: str
    prometheus: str

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a compose subcommand against this project."""
        return subprocess.run(
            [*self.command, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
        )

    def containers(self) -> list[dict]:
        """`docker inspect` of every container of the project."""
        ids = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={self.project}"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        found = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True)
        return json.loads(found.stdout)

    def diagnosis(self) -> str:
        """What a failing test shows: each service's state and the last log lines."""
        return self.run("ps").stdout + self.run("logs", "--tail", "15").stdout[-12000:]


def wait_for(check, timeout: float, what: str, stack: ComposeStack) -> None:
    """Poll `check` until it is true; fail with the stack's state after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"{what} not within {timeout} s\n{stack.diagnosis()}")


@pytest.fixture(scope="module")
def compose_stack(tmp_path_factory, docker_client) -> Iterator[ComposeStack]:  # noqa: F811
    """The compose file's services (all but NOT_STARTED) up on this engine, then torn down."""
    images = offline_images(run_directory(tmp_path_factory))
    work = tmp_path_factory.mktemp("compose")
    inputs, outputs = work / "task-inputs", work / "task-outputs"
    for directory in (inputs, outputs):
        directory.mkdir()
        directory.chmod(0o777)  # the image's user writes there, the engine mounts it by this path
    env_file = work / ".env"
    subprocess.run([str(BIN / "dockyard"), "dev-env", "--path", str(env_file)], check=True)
    project = f"dyct{uuid.uuid4().hex[:8]}"
    gateway, rabbitmq_ui, flower, prometheus = free_ports(4)
    settings = {
        **images,
        "GATEWAY_PORT": gateway,
        "RABBITMQ_UI_PORT": rabbitmq_ui,
        "FLOWER_PORT": flower,
        "PROMETHEUS_PORT": prometheus,
        "DOCKYARD_COMPOSE_NAMESPACE": project,
        "TASKS_INPUT_HOST_DIR": inputs,
        "TASKS_OUTPUT_DIR": outputs,
        "DOCKER_GID": os.stat("/var/run/docker.sock").st_gid,
    }
    with env_file.open("a") as env:
        env.writelines(f"{name}={value}\n" for name, value in settings.items())
    stack = ComposeStack(
        command=[*compose_command(), "-p", project, "--env-file", str(env_file),
                 "-f", str(REPO / "docker-compose.yml")],
        project=project,
        gateway=f"http://127.0.0.1:{gateway}",
        rabbitmq_ui=f"http://127.0.0.1:{rabbitmq_ui}",
        flower=f"http://127.0.0.1:{flower}",
        prometheus=f"http://127.0.0.1:{prometheus}",
    )  # fmt: skip
    services = stack.run("config", "--services").stdout.split()
    assert NOT_STARTED <= set(services)
    try:
        started = stack.run("up", "-d", "--no-build", *(set(services) - NOT_STARTED), timeout=600)
        assert started.returncode == 0, started.stderr[-4000:] + stack.diagnosis()
        wait_for(
            lambda: httpx.get(f"{stack.gateway}/healthz", timeout=3).status_code == 200,
            READY_TIMEOUT, "the gateway's /healthz", stack,
        )  # fmt: skip
        yield stack
    finally:
        stack.run("down", "--volumes", "--remove-orphans", "--timeout", "20")
        for container in docker_client.containers.list(
            all=True, filters={"label": f"dockyard.namespace={project}"}
        ):
            container.remove(force=True)


def test_a_user_registers_uploads_a_file_and_runs_a_task_on_it_through_the_compose_gateway(
    compose_stack, tmp_path
):
    notes = tmp_path / "notes.txt"
    notes.write_text("alpha\nbeta\ngamma\n")
    argv = [
        sys.executable, str(REPO / "examples/client/run_task.py"),
        "--url", f"{compose_stack.gateway}/graphql", "--email", unique_email("compose"),
        "--password", PASSWORD, "--register", "--image", TEST_IMAGE, str(notes),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr + compose_stack.diagnosis()
    # Uploaded, processed by the files worker, staged as the task's input, run on the engine
    # through docker-proxy, its logs followed live.
    assert "file PROCESSED" in done.stdout
    assert "lines: 3" in done.stdout
    assert "alpha" in done.stdout and "gamma" in done.stdout
    assert "task SUCCEEDED (exit code 0)" in done.stdout


def test_prometheus_scrapes_every_process_and_the_operator_uis_answer(compose_stack):
    def every_target_up() -> bool:
        answer = httpx.get(f"{compose_stack.prometheus}/api/v1/targets", timeout=5).json()
        targets = answer["data"]["activeTargets"]
        return bool(targets) and all(target["health"] == "up" for target in targets)

    wait_for(every_target_up, 60, "every Prometheus target up", compose_stack)
    targets = httpx.get(f"{compose_stack.prometheus}/api/v1/targets", timeout=5).json()
    jobs = {target["labels"]["job"] for target in targets["data"]["activeTargets"]}
    assert jobs == {
        "dockyard-rest", "dockyard-gateway", "dockyard-relay", "dockyard-consumer",
        "dockyard-sagas", "celery-flower", "rabbitmq",
    }  # fmt: skip

    # Flower's UI and API ask for its login; its /metrics does not (Prometheus scrapes it).
    assert httpx.get(f"{compose_stack.flower}/api/workers", timeout=5).status_code == 401
    workers = httpx.get(
        f"{compose_stack.flower}/api/workers", params={"refresh": "1"},
        auth=("dockyard", "dockyard"), timeout=15,
    )  # fmt: skip
    assert workers.status_code == 200
    # One Flower sees every service's workers (shared.celery_monitor, the namespace's exchanges).
    assert {name.split("@")[0] for name in workers.json()} >= {"auth", "files", "tasks"}
    assert httpx.get(f"{compose_stack.flower}/metrics", timeout=5).status_code == 200
    # RabbitMQ's management UI, with the compose file's user.
    overview = httpx.get(
        f"{compose_stack.rabbitmq_ui}/api/overview", auth=("dockyard", "dockyard"), timeout=5
    )
    assert overview.status_code == 200
    assert overview.json()["object_totals"]["queues"] > 0


def test_every_dashboard_query_runs_in_the_stacks_prometheus(compose_stack):
    """What Grafana would ask, asked of the stack's real Prometheus (Grafana cannot run here)."""

    def query(expression: str) -> list:
        # $__rate_interval is Grafana's: four scrape intervals at the least.
        promql = expression.replace("$__rate_interval", "1m")
        answer = httpx.get(
            f"{compose_stack.prometheus}/api/v1/query", params={"query": promql}, timeout=5
        ).json()
        assert answer["status"] == "success", (expression, answer)
        return answer["data"]["result"]

    expressions = dashboard_expressions()
    assert expressions
    for _title, expression in expressions:
        query(expression)
    # After the round trip, the panels an operator reads first show series.
    shown = {
        title: expression
        for title, expression in expressions
        if title
        in {"Request rate per route", "Outbox pending", "Tasks by status", "Queue depth (ready)"}
    } | {"Workers online": "sum by (worker) (flower_worker_online)"}
    assert len(shown) == 5

    def every_panel_has_data() -> bool:
        return all(query(expression) for expression in shown.values())

    wait_for(every_panel_has_data, 90, f"data in {sorted(shown)}", compose_stack)


def test_only_the_proxy_holds_the_docker_socket_and_dockyard_runs_unprivileged(compose_stack):
    def every_healthcheck_passes() -> bool:
        return all(
            container["State"]["Health"]["Status"] == "healthy"
            for container in compose_stack.containers()
            if container["Config"].get("Healthcheck") and container["State"]["Running"]
        )

    # A process's first check may still be due (each runs every 10 s after a start period).
    wait_for(every_healthcheck_passes, 90, "every healthcheck passing", compose_stack)
    containers = {
        container["Config"]["Labels"]["com.docker.compose.service"]: container
        for container in compose_stack.containers()
    }
    holders = {
        name
        for name, container in containers.items()
        if any(mount["Source"].endswith("docker.sock") for mount in container["Mounts"])
    }
    assert holders == {"docker-proxy"}
    for name, container in containers.items():
        if container["Config"]["Image"].startswith("dockyard:"):
            assert container["Config"]["User"] == DOCKYARD_USER, name
            assert not container["HostConfig"]["Privileged"], name
    # Every long-running service is up; db-bootstrap ran once and succeeded.
    for name, container in containers.items():
        state = container["State"]
        if name == "db-bootstrap":
            assert (state["Status"], state["ExitCode"]) == ("exited", 0)
        else:
            assert state["Status"] == "running", (name, state)
            # Those with a healthcheck (services, relays, consumers, sweepers, infrastructure,
            # Flower, Prometheus) pass it.
            if container["Config"].get("Healthcheck"):
                assert state["Health"]["Status"] == "healthy", (name, state["Health"])


PRIVILEGED_CREATE = """
import docker
engine = docker.DockerClient(base_url="tcp://docker-proxy:2375", version="auto")
try:
    engine.containers.create("{image}", ["true"], privileged=True, labels={{"dyct": "{marker}"}})
except docker.errors.APIError as refused:
    print(refused.status_code)
"""


def test_the_engine_processes_reach_the_engine_only_through_the_proxy_which_refuses_privilege(
    compose_stack,
    docker_client,  # noqa: F811
):
    worker = next(
        container
        for container in compose_stack.containers()
        if container["Config"]["Labels"]["com.docker.compose.service"] == "tasks-worker"
    )
    marker = uuid.uuid4().hex
    script = PRIVILEGED_CREATE.format(image=TEST_IMAGE, marker=marker)
    tried = subprocess.run(
        ["docker", "exec", worker["Id"], "python", "-c", script],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert tried.stdout.strip() == "403", tried.stdout + tried.stderr
    # Nothing was created (other tests' containers come and go on this engine meanwhile).
    assert docker_client.containers.list(all=True, filters={"label": f"dyct={marker}"}) == []
    # And the socket itself is not there to go around it.
    socket = subprocess.run(
        ["docker", "exec", worker["Id"], "test", "-e", "/var/run/docker.sock"], timeout=30
    )
    assert socket.returncode == 1
