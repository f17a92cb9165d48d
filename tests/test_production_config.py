"""Every REST service refuses, at start-up, the broker's guest account and a Redis without one."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shared.testing import generate_private_key_pem, production_environ
from tests.conftest import REPO


@pytest.mark.parametrize("service", ["auth", "files", "tasks"])
def test_a_service_does_not_start_in_production_with_guest_amqp_or_open_redis(service):
    environ = production_environ(
        AMQP_URL="amqp://guest:guest@rabbitmq:5672//",
        REDIS_URL="redis://redis:6379/0",
        AUTH_JWT_PRIVATE_KEY=generate_private_key_pem(),
    )
    started = subprocess.run(
        [sys.executable, "-c", f"import services.{service}.wsgi"],
        env=environ,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode != 0
    assert "AMQP_URL is unsafe in production: connect as a user of your own" in started.stderr
    assert "REDIS_URL is unsafe in production: Redis must require a password" in started.stderr
    assert "guest:guest@rabbitmq" not in started.stderr


@pytest.mark.parametrize(
    ("service", "missing"),
    [
        ("files", "TASKS_TO_FILES_SECRET"),
        ("files", "FILES_TO_TASKS_SECRET"),
        ("tasks", "FILES_TO_TASKS_SECRET"),
        ("tasks", "TASKS_TO_FILES_SECRET"),
    ],
)
def test_a_service_does_not_start_in_production_with_a_placeholder_peer_secret(service, missing):
    environ = production_environ(AUTH_JWT_PRIVATE_KEY=generate_private_key_pem())
    del environ[missing]
    started = subprocess.run(
        [sys.executable, "-c", f"import services.{service}.wsgi"],
        env=environ,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode != 0
    assert f"{missing} must be set outside development" in started.stderr


def test_a_service_does_not_start_when_a_peer_shares_the_gateways_secret():
    environ = production_environ(AUTH_JWT_PRIVATE_KEY=generate_private_key_pem())
    environ["TASKS_TO_FILES_SECRET"] = environ["FILES_SERVICE_SECRET"]
    started = subprocess.run(
        [sys.executable, "-c", "import services.files.wsgi"],
        env=environ,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode != 0
    assert "each caller of the files service needs a secret of its own" in started.stderr
    assert environ["FILES_SERVICE_SECRET"] not in started.stderr
