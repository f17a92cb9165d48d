"""deploy/infra-up.sh: make up's PostgreSQL, RabbitMQ and Redis as containers of docker-compose.yml,
answering on loopback with make up's default credentials, then removed with their data."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import psycopg2
import pytest
import redis
from kombu import Connection

from services.tasks.tests.engine.conftest import docker_client  # noqa: F401 - fixture
from shared.testing import run_directory
from shared.throwaway import free_ports
from tests.conftest import REPO
from tests.offline_images import OFFLINE_IMAGES_TIMEOUT, offline_images

#: The first test's setup may build every image compose runs (deploy/offline-images.sh: the
#: Debian base, Dockyard's image, the stand-ins), minutes on a fresh engine, or wait for
#: another worker doing so.
pytestmark = pytest.mark.timeout(OFFLINE_IMAGES_TIMEOUT)

INFRA_UP = str(REPO / "deploy" / "infra-up.sh")


@pytest.fixture(scope="module")
def infrastructure(tmp_path_factory, docker_client) -> Iterator[dict[str, int]]:  # noqa: F811
    """The three started by deploy/infra-up.sh on free ports; their ports. Torn down after."""
    images = offline_images(run_directory(tmp_path_factory))
    postgres, rabbitmq, rabbitmq_ui, redis_port = free_ports(4)
    env = {
        **os.environ,
        **{name: images[name] for name in ("POSTGRES_IMAGE", "RABBITMQ_IMAGE", "REDIS_IMAGE")},
        "DOCKYARD_INFRA_PROJECT": f"dyinfra{uuid.uuid4().hex[:8]}",
        "INFRA_POSTGRES_PORT": str(postgres),
        "INFRA_RABBITMQ_PORT": str(rabbitmq),
        "RABBITMQ_UI_PORT": str(rabbitmq_ui),
        "INFRA_REDIS_PORT": str(redis_port),
    }
    # Run from elsewhere: the script finds the compose files itself.
    cwd = tmp_path_factory.mktemp("infra")
    try:
        started = subprocess.run(
            [INFRA_UP], env=env, cwd=cwd, capture_output=True, text=True, timeout=400
        )
        assert started.returncode == 0, started.stdout + started.stderr
        assert "postgres is healthy" in started.stdout
        yield {"postgres": postgres, "rabbitmq": rabbitmq, "redis": redis_port}
    finally:
        subprocess.run([INFRA_UP, "down", "-v"], env=env, cwd=cwd, capture_output=True, timeout=120)
        remaining = docker_client.containers.list(
            all=True,
            filters={"label": f"com.docker.compose.project={env['DOCKYARD_INFRA_PROJECT']}"},
        )
        assert remaining == []


def test_postgres_trusts_the_published_port_with_room_for_the_test_workers(infrastructure):
    connection = psycopg2.connect(
        host="127.0.0.1", port=infrastructure["postgres"], user="postgres", dbname="postgres"
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW max_connections")
            assert cursor.fetchone() == ("300",)
            cursor.execute("SELECT current_user")
            assert cursor.fetchone() == ("postgres",)
    finally:
        connection.close()


def test_rabbitmq_takes_the_guest_user_from_the_host(infrastructure):
    url = f"amqp://guest:guest@127.0.0.1:{infrastructure['rabbitmq']}//"
    queue = f"infra-{uuid.uuid4().hex[:8]}"
    with Connection(url, connect_timeout=10) as connection:
        channel = connection.default_channel
        channel.queue_declare(queue)
        channel.basic_publish(channel.prepare_message(b"hello"), exchange="", routing_key=queue)
        message = channel.basic_get(queue, no_ack=True)
        channel.queue_delete(queue)
    assert message is not None and message.body == b"hello"


def test_redis_answers_without_a_password_and_appends_to_its_log(infrastructure):
    client = redis.Redis(host="127.0.0.1", port=infrastructure["redis"], socket_timeout=5)
    assert client.ping()
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    client.close()
