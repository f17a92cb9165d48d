"""The operator's limits are checked at start-up and applied, with defaults, to every spec."""

from __future__ import annotations

import pytest

from services.tasks.app import create_app
from services.tasks.config import TasksSettings
from services.tasks.images import RegistryPolicy
from services.tasks.service import TaskPolicy
from shared.config import ConfigError
from shared.testing import production_environ

LIMITS = {
    "max_timeout_seconds": 60,
    "default_timeout_seconds": 30,
    "max_cpu": 2.0,
    "default_cpu": 1.0,
    "max_memory_mb": 256,
    "default_memory_mb": 128,
    "max_retries": 3,
    "default_retries": 0,
}


@pytest.mark.parametrize(
    "override",
    [
        {"default_timeout_seconds": 61},
        {"default_cpu": 2.5},
        {"default_memory_mb": 512},
        {"default_retries": 4},
        {"default_retries": -1},
    ],
)
def test_a_default_above_its_maximum_is_refused(override):
    with pytest.raises(ValueError):
        TaskPolicy(**{**LIMITS, **override})


def test_the_policy_reads_every_limit_from_the_settings():
    settings = TasksSettings(
        {
            "TASKS_MAX_TIMEOUT_SECONDS": "60",
            "TASKS_DEFAULT_TIMEOUT_SECONDS": "30",
            "TASKS_MAX_CPU": "2",
            "TASKS_DEFAULT_CPU": "0.5",
            "TASKS_MAX_MEMORY_MB": "256",
            "TASKS_DEFAULT_MEMORY_MB": "128",
            "TASKS_MAX_RETRIES": "3",
            "TASKS_DEFAULT_RETRIES": "1",
            "TASKS_ALLOW_NETWORK": "yes",
            "TASKS_IMAGE_ALLOWLIST": "busybox*, registry.example.com/ci/*",
            "TASKS_REGISTRY_PRIVATE_ALLOWLIST": "registry.internal:5000, 10.20.0.0/16",
            "TASKS_MAX_ACTIVE_TASKS_PER_USER": "7",
        }
    )
    assert TaskPolicy.from_settings(settings) == TaskPolicy(
        max_timeout_seconds=60,
        default_timeout_seconds=30,
        max_cpu=2.0,
        default_cpu=0.5,
        max_memory_mb=256,
        default_memory_mb=128,
        max_retries=3,
        default_retries=1,
        allow_network=True,
        image_allowlist=("busybox*", "registry.example.com/ci/*"),
        registry=RegistryPolicy.parse(["registry.internal:5000", "10.20.0.0/16"]),
        max_active_tasks_per_user=7,
    )


def test_network_is_off_and_every_image_allowed_by_default():
    policy = TaskPolicy.from_settings(TasksSettings({}))
    assert policy.allow_network is False
    assert policy.image_allowlist == ()


def test_the_defaults_bound_timeouts_to_an_hour_and_unfinished_tasks_per_user():
    settings = TasksSettings({})
    assert (settings.MAX_TIMEOUT_SECONDS, settings.DEFAULT_TIMEOUT_SECONDS) == (3600, 900)
    assert TaskPolicy.from_settings(settings).max_active_tasks_per_user == 100


def test_production_refuses_an_empty_image_allow_list():
    with pytest.raises(ConfigError, match="TASKS_IMAGE_ALLOWLIST"):
        TasksSettings(production_environ())
    allowed = TasksSettings(production_environ(TASKS_IMAGE_ALLOWLIST="busybox"))
    assert allowed.IMAGE_ALLOWLIST == ["busybox"]


def test_the_app_refuses_to_start_with_inconsistent_limits():
    settings = TasksSettings({}, MAX_TIMEOUT_SECONDS=10, DEFAULT_TIMEOUT_SECONDS=20)
    with pytest.raises(ConfigError, match="timeout"):
        create_app(settings)


def test_executors_default_to_docker_and_unknown_ones_fail_at_start():
    assert TaskPolicy.from_settings(TasksSettings({})).executors == ("docker",)
    both = TasksSettings({"TASKS_EXECUTORS": "swarm, docker"})
    assert TaskPolicy.from_settings(both).executors == ("swarm", "docker")
    with pytest.raises(ConfigError, match="executor 'kubernetes', which is not installed"):
        _ = TasksSettings({"TASKS_EXECUTORS": "docker,kubernetes"}).EXECUTORS
    with pytest.raises(ConfigError, match="twice"):
        _ = TasksSettings({"TASKS_EXECUTORS": "docker,docker"}).EXECUTORS
    with pytest.raises(ConfigError, match="at most 32 characters"):
        _ = TasksSettings({"TASKS_EXECUTORS": "docker," + "x" * 33}).EXECUTORS


def test_an_installed_executor_plugin_may_be_enabled_and_named_by_tasks():
    # The example package's executor (installed with Dockyard by make venv).
    plugged = TasksSettings({"TASKS_EXECUTORS": "docker,labelled-docker"})
    assert TaskPolicy.from_settings(plugged).executors == ("docker", "labelled-docker")
