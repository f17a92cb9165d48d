"""A swarm job's service spec: the Docker executor's safety defaults, in Swarm's terms."""

from __future__ import annotations

import uuid

import pytest

from services.tasks.containers import ContainerLimits, ContainerSpec, TaskRejected
from services.tasks.executors import RoutedEngine
from services.tasks.swarm_spec import LABEL_SERVICE, service_options

TASK = uuid.uuid4()
SPEC = ContainerSpec(
    task_id=TASK,
    owner_id=uuid.uuid4(),
    attempt=2,
    name=f"dockyard-task-{TASK}-2",
    image="busybox",
    command=["sh", "-c", "true"],
    env={"GREETING": "hi"},
    cpu_limit=0.5,
    memory_limit_mb=64,
    network=False,
    output_dir="/srv/out/x/2",
    executor="swarm",
)
LIMITS = ContainerLimits(
    pids_limit=64, tmpfs_size_mb=8, user="65534:65534", namespace="ns", input_root="/srv/in"
)


def _container(options: dict) -> dict:
    return options["task_template"]["ContainerSpec"]


def test_a_job_is_locked_down_and_limited_like_a_container():
    options = service_options(SPEC, LIMITS, api_version="1.41")
    container, template = _container(options), options["task_template"]
    assert container["ReadOnly"] is True
    assert container["CapabilityDrop"] == ["ALL"]
    assert container["User"] == "65534:65534"
    assert container["Args"] == ["sh", "-c", "true"] and "Command" not in container
    assert template["Resources"]["Limits"] == {
        "NanoCPUs": 500_000_000,
        "MemoryBytes": 64 * 1024 * 1024,
        "Pids": 64,
    }
    assert template["RestartPolicy"]["Condition"] == "none"
    tmp = container["Mounts"][0]
    assert (tmp["Type"], tmp["Target"], tmp["TmpfsOptions"]["SizeBytes"]) == (
        "tmpfs",
        "/tmp",
        8 * 1024 * 1024,
    )
    # API 1.41 (Docker 20.10) has neither field; sent anyway, the engine would refuse the spec.
    assert "Privileges" not in container and "Options" not in tmp["TmpfsOptions"]


def test_a_newer_engine_also_gets_no_new_privileges_and_a_noexec_tmp():
    container = _container(service_options(SPEC, LIMITS, api_version="1.46"))
    assert container["Privileges"] == {"NoNewPrivileges": True}
    assert container["Mounts"][0]["TmpfsOptions"]["Options"] == [["noexec"], ["nosuid"]]


def test_a_job_without_network_gets_its_own_network_and_one_with_network_none():
    assert service_options(SPEC, LIMITS, api_version="1.41")["networks"] == [{"Target": SPEC.name}]
    networked = ContainerSpec(**{**SPEC.__dict__, "network": True})
    assert service_options(networked, LIMITS, api_version="1.41")["networks"] == []


def test_the_input_is_read_only_at_input_and_the_output_writable_at_output():
    spec = ContainerSpec(
        **{**SPEC.__dict__, "input_file_id": uuid.uuid4(), "input_filename": "a.txt"}
    )
    container = _container(service_options(spec, LIMITS, api_version="1.41"))
    binds = {m["Target"]: m for m in container["Mounts"] if m["Type"] == "bind"}
    assert binds["/input"] == {
        "Type": "bind",
        "Source": f"/srv/in/{TASK}",
        "Target": "/input",
        "ReadOnly": True,
    }
    assert binds["/output"]["Source"] == "/srv/out/x/2" and not binds["/output"].get("ReadOnly")
    assert "GREETING=hi" in container["Env"]
    assert "DOCKYARD_INPUT_FILE=/input/a.txt" in container["Env"]


def test_a_workflow_step_gets_each_dependencys_outputs_read_only_at_input_step():
    spec = ContainerSpec(
        **{**SPEC.__dict__, "step_inputs": (("build", "/srv/out/.step-outputs/b"),)}
    )
    container = _container(service_options(spec, LIMITS, api_version="1.41"))
    binds = {m["Target"]: m for m in container["Mounts"] if m["Type"] == "bind"}
    assert binds["/input/build"] == {
        "Type": "bind",
        "Source": "/srv/out/.step-outputs/b",
        "Target": "/input/build",
        "ReadOnly": True,
    }


def test_the_service_carries_the_task_labels_and_its_container_does_not():
    options = service_options(SPEC, LIMITS, api_version="1.41")
    assert options["labels"] == {
        "dockyard.task-id": str(TASK),
        "dockyard.owner-id": str(SPEC.owner_id),
        "dockyard.attempt": "2",
        "dockyard.namespace": "ns",
    }
    labels = _container(options)["Labels"]
    # The Docker executor's reconciler removes containers with a task id that no task owns.
    assert "dockyard.task-id" not in labels and labels[LABEL_SERVICE] == SPEC.name


def test_an_unknown_executor_is_refused_at_start():
    # Refused before either engine is asked: none is needed here.
    engine = RoutedEngine({"swarm": None}, docker=None)  # type: ignore[dict-item,arg-type]
    with pytest.raises(TaskRejected):
        engine.run(ContainerSpec(**{**SPEC.__dict__, "executor": "kubernetes"}))
