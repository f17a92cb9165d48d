"""A task attempt's Swarm service spec: the Docker executor's safety defaults in Swarm's terms.

The Swarm counterpart of containers.container_options; docs/executors.md maps each option.
"""

from __future__ import annotations

from typing import Any

from docker.utils import version_gte

from services.tasks.containers import (
    ENGINE_LOG_FILES,
    INPUT_FILE_VARIABLE,
    INPUT_MOUNT,
    LABEL_ATTEMPT,
    LABEL_NAMESPACE,
    LABEL_OWNER,
    LABEL_TASK,
    ContainerLimits,
    ContainerSpec,
    input_host_dir,
)

#: The label of a swarm task's container naming its service. Not LABEL_TASK: the Docker
#: executor's reconciler would take the container for an orphan of its own and remove it.
LABEL_SERVICE = "dockyard.swarm-service"
#: The API version from which a service's container can have no-new-privileges and tmpfs flags.
PRIVILEGES_API = "1.46"


def service_options(
    spec: ContainerSpec, limits: ContainerLimits, *, api_version: str
) -> dict[str, Any]:
    """Arguments of the engine's service create for one attempt: safe by default, labelled."""
    memory = spec.memory_limit_mb * 1024 * 1024
    labels = {
        LABEL_TASK: str(spec.task_id),
        LABEL_OWNER: str(spec.owner_id),
        LABEL_ATTEMPT: str(spec.attempt),
        LABEL_NAMESPACE: limits.namespace,
    }
    env = dict(spec.env)
    mounts: list[dict[str, Any]] = [
        {
            "Type": "tmpfs",
            "Target": "/tmp",
            "TmpfsOptions": {"SizeBytes": limits.tmpfs_size_mb * 1024 * 1024, "Mode": 0o1777},
        }
    ]
    if spec.input_filename is not None:
        mounts.append(
            {
                "Type": "bind",
                "Source": input_host_dir(limits.input_root, spec.task_id),
                "Target": INPUT_MOUNT,
                "ReadOnly": True,
            }
        )
        env[INPUT_FILE_VARIABLE] = f"{INPUT_MOUNT}/{spec.input_filename}"
    if spec.output_dir:
        mounts.append({"Type": "bind", "Source": spec.output_dir, "Target": "/output"})
    for step, directory in spec.step_inputs:
        mounts.append(
            {
                "Type": "bind",
                "Source": directory,
                "Target": f"{INPUT_MOUNT}/{step}",
                "ReadOnly": True,
            }
        )
    container: dict[str, Any] = {
        "Image": spec.image,
        # Args, not Command: like the Docker executor's command, it keeps the image's entrypoint.
        "Args": list(spec.command),
        "Env": [f"{name}={value}" for name, value in env.items()],
        "Labels": {
            LABEL_SERVICE: spec.name,
            LABEL_OWNER: str(spec.owner_id),
            LABEL_ATTEMPT: str(spec.attempt),
            LABEL_NAMESPACE: limits.namespace,
        },
        "ReadOnly": True,
        "CapabilityDrop": ["ALL"],
        "Mounts": mounts,
    }
    if limits.user:
        container["User"] = limits.user
    if version_gte(api_version, PRIVILEGES_API):
        container["Privileges"] = {"NoNewPrivileges": True}
        mounts[0]["TmpfsOptions"]["Options"] = [["noexec"], ["nosuid"]]
    template: dict[str, Any] = {
        "ContainerSpec": container,
        "Resources": {
            "Limits": {
                "NanoCPUs": int(spec.cpu_limit * 1e9),
                "MemoryBytes": memory,
                "Pids": limits.pids_limit,
            }
        },
        "RestartPolicy": {"Condition": "none", "MaxAttempts": 0},
        "LogDriver": {
            "Name": "json-file",
            "Options": {
                "max-size": str(limits.engine_log_file_bytes),
                "max-file": str(ENGINE_LOG_FILES),
            },
        },
    }
    # No network: the job's own internal overlay (no gateway, no other member). A service with
    # no network at all gets the node's default bridge, which reaches out.
    networks = [] if spec.network else [{"Target": spec.name}]
    return {"task_template": template, "name": spec.name, "labels": labels, "networks": networks}
