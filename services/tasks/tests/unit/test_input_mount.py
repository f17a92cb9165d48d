"""A task's input file in its container: its directory mounted read-only at /input, its path set."""

from __future__ import annotations

import uuid

from services.tasks.containers import ContainerLimits, ContainerSpec, container_options

TASK = uuid.uuid4()
SPEC = ContainerSpec(
    task_id=TASK,
    owner_id=uuid.uuid4(),
    attempt=1,
    name="dockyard-task-x-1",
    image="busybox",
    command=["true"],
    env={"GREETING": "hi"},
    cpu_limit=1.0,
    memory_limit_mb=64,
    network=False,
)
LIMITS = ContainerLimits(pids_limit=64, tmpfs_size_mb=8, user="65534:65534", input_root="/srv/in")


def test_a_task_with_an_input_file_gets_its_directory_read_only_at_input_and_its_path():
    spec = ContainerSpec(
        **{**SPEC.__dict__, "input_file_id": uuid.uuid4(), "input_filename": "a.txt"}
    )
    container, host = container_options(spec, LIMITS)
    assert host["binds"] == {f"/srv/in/{TASK}": {"bind": "/input", "mode": "ro"}}
    assert container["environment"] == {"GREETING": "hi", "DOCKYARD_INPUT_FILE": "/input/a.txt"}
    # Still a read-only root and an unprivileged user.
    assert host["read_only"] is True and container["user"] == "65534:65534"


def test_a_task_without_an_input_file_mounts_nothing():
    container, host = container_options(SPEC, LIMITS)
    assert "binds" not in host
    assert container["environment"] == {"GREETING": "hi"}
