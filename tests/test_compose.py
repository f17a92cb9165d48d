"""docker-compose.yml runs the Procfile's processes, and only the engine's users get its socket."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
PROCFILE = {
    name: shlex.split(command)
    for name, _, command in (
        line.partition(": ")
        for line in (REPO / "Procfile").read_text().splitlines()
        if line and not line.startswith("#")
    )
}
SOCKET = "/var/run/docker.sock"
#: Where task input files are written, the same path on the host and in the engine's users.
INPUT_DIR = "${TASKS_INPUT_HOST_DIR:-/var/lib/dockyard/task-inputs}"
#: Procfile processes compose does not run: `ready` (healthchecks do its work).
NOT_IN_COMPOSE = {"ready"}


def mounts_the_socket(service: dict) -> bool:
    """Whether the service mounts the Docker socket (whatever the host path)."""
    # Short syntax `host:container[:mode]`, where the host part may hold `${VAR:-default}`.
    return any(
        volume.endswith(f":{SOCKET}") or f":{SOCKET}:" in volume
        for volume in service.get("volumes", [])
    )


def test_compose_runs_every_procfile_process_but_the_known_exceptions():
    assert set(PROCFILE) - set(COMPOSE) == NOT_IN_COMPOSE


def test_only_the_docker_proxy_gets_the_docker_socket():
    assert {name for name, svc in COMPOSE.items() if mounts_the_socket(svc)} == {"docker-proxy"}
    proxy = COMPOSE["docker-proxy"]
    # With the socket's group, never root; its rules are the file the proxy tests exercise.
    assert "user" not in proxy
    assert proxy["group_add"] == ["${DOCKER_GID:-999}"]
    assert (
        "./deploy/docker-proxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"
        in (proxy["volumes"])
    )
    assert "ports" not in proxy  # on the compose network only
    # It lets containers bind-mount only the engine processes' input and output directories.
    engine = COMPOSE["tasks-launcher"]["environment"]
    assert proxy["environment"] == {
        "TASKS_INPUT_DIR": engine["TASKS_INPUT_DIR"],
        "TASKS_OUTPUT_DIR": engine["TASKS_OUTPUT_DIR"],
    }


def test_the_tasks_engine_processes_run_as_in_the_procfile_with_the_tasks_services_env():
    tasks_env = dict(COMPOSE["tasks"]["environment"])
    del tasks_env["DOCKYARD_MIGRATE"]
    # Only the service checks the gateway's and files' calls; the engine processes hold neither key.
    del tasks_env["TASKS_SERVICE_SECRET"]
    del tasks_env["FILES_TO_TASKS_SECRET"]
    for name in ("tasks-launcher", "tasks-worker", "tasks-monitor"):
        service = COMPOSE[name]
        assert service["command"] == PROCFILE[name]
        assert service["environment"] == {
            **tasks_env,
            # The engine through the proxy, which passes on only the calls these make.
            "DOCKER_HOST": "tcp://docker-proxy:2375",
            # Input files: fetched from files, written where the engine bind-mounts them from.
            "TASKS_INPUT_DIR": INPUT_DIR,
            "FILES_SERVICE_URL": "http://files:8002",
            # The tasks service's own key for files, never files' gateway key.
            "TASKS_TO_FILES_SECRET": "${TASKS_TO_FILES_SECRET:-}",
        }
        # The same host path inside as outside: the engine mounts what the launcher wrote.
        assert f"{INPUT_DIR}:{INPUT_DIR}" in service["volumes"]
        # The image's unprivileged user, without the socket or its group.
        assert "user" not in service
        assert "group_add" not in service
        assert service["depends_on"]["docker-proxy"] == {"condition": "service_started"}


def test_every_dockyard_process_runs_its_procfile_command():
    # The REST services bind 0.0.0.0 in a container instead of the Procfile's ${SERVICES_HOST}.
    for name in set(PROCFILE) - NOT_IN_COMPOSE - {"auth", "files", "tasks"}:
        assert COMPOSE[name]["command"] == PROCFILE[name], name


def test_prometheus_under_compose_scrapes_the_procfile_targets_at_their_service_names():
    prometheus = REPO / "deploy/prometheus"
    local = yaml.safe_load((prometheus / "prometheus.yml").read_text())
    composed = yaml.safe_load((prometheus / "compose.yml").read_text())
    assert composed["global"] == local["global"]
    for in_compose, on_host in zip(
        composed["scrape_configs"], local["scrape_configs"], strict=True
    ):
        assert {k: v for k, v in in_compose.items() if k != "static_configs"} == {
            k: v for k, v in on_host.items() if k != "static_configs"
        }
        for group, host_group in zip(
            in_compose["static_configs"], on_host["static_configs"], strict=True
        ):
            assert group.get("labels") == host_group.get("labels")
            for target, host_target in zip(group["targets"], host_group["targets"], strict=True):
                service, port = target.split(":")
                assert host_target == f"127.0.0.1:{port}"
                assert service in COMPOSE, target


def test_the_files_processes_run_as_in_the_procfile_and_share_the_services_storage():
    storage = COMPOSE["files"]["volumes"]
    assert storage == ["files-data:/app/var/files"]
    for name in ("files-worker", "files-beat", "consume-files"):
        service = COMPOSE[name]
        assert service["command"] == PROCFILE[name]
        assert service["volumes"] == storage
        assert (
            service["environment"]["FILES_DATABASE_URL"]
            == COMPOSE["files"]["environment"]["FILES_DATABASE_URL"]
        )


def test_the_auth_worker_runs_as_in_the_procfile_with_the_auth_database_and_signing_key():
    service = COMPOSE["auth-worker"]
    assert service["command"] == PROCFILE["auth-worker"]
    auth_env = COMPOSE["auth"]["environment"]
    for name in ("AUTH_DATABASE_URL", "AUTH_JWT_PRIVATE_KEY"):
        assert service["environment"][name] == auth_env[name]
    assert not mounts_the_socket(service)


def test_every_tasks_process_mounts_the_output_directory_at_its_host_path():
    # The engine bind-mounts an attempt's directory by its host path, so every process that
    # creates, checks, serves or deletes it sees it at that very path.
    path = COMPOSE["tasks"]["environment"]["TASKS_OUTPUT_DIR"]
    for name in ("tasks", "tasks-launcher", "tasks-worker", "tasks-monitor", "consume-tasks",
                 "sagas-tasks"):  # fmt: skip
        assert f"{path}:{path}" in COMPOSE[name]["volumes"], name
        assert COMPOSE[name]["environment"]["TASKS_OUTPUT_DIR"] == path, name


def test_the_files_worker_reaches_the_tasks_service_for_task_outputs():
    environment = COMPOSE["files-worker"]["environment"]
    assert environment["TASKS_SERVICE_URL"] == "http://tasks:8003"
    assert (
        environment["FILES_TO_TASKS_SECRET"]
        == COMPOSE["tasks"]["environment"]["FILES_TO_TASKS_SECRET"]
    )


def test_each_service_secret_goes_to_the_processes_of_its_caller_and_callee_only():
    def holding(variable):
        return {name for name, svc in COMPOSE.items() if variable in svc.get("environment", {})}

    assert holding("FILES_SERVICE_SECRET") == {"files", "gateway"}
    assert holding("TASKS_SERVICE_SECRET") == {"tasks", "gateway"}
    # The monitor never fetches an input file, but it shares the engine processes' env: it holds
    # the Docker socket, which is worth far more than this key.
    engine = {"tasks-launcher", "tasks-worker", "tasks-monitor"}
    assert holding("TASKS_TO_FILES_SECRET") == {"files", *engine}
    assert holding("FILES_TO_TASKS_SECRET") == {"tasks", "files-worker"}
