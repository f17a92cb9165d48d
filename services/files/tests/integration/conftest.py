"""The processing stack: the files app in process, and the real relay, consumer, worker and beat."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from services.files.app import create_app
from services.files.config import FilesSettings
from services.files.tests.conftest import User, mint_access_token, upload
from services.files.tests.outages import OutageSwitch
from services.files.tests.processes import BIN, ServiceProcess, queue_exists, wait_until
from services.files.tests.s3 import s3_settings

#: Short leases and a fast sweep, so crash recovery takes seconds.
LEASE_SECONDS = 3
PROCESSING_SETTINGS = {
    "PROCESSING_LEASE_SECONDS": LEASE_SECONDS,
    "REAPER_INTERVAL_SECONDS": 1,
    "RETRY_BACKOFF_SECONDS": 1,
    "RETRY_BACKOFF_MAX_SECONDS": 4,
    "PROCESSING_MAX_ATTEMPTS": 5,
    "PROCESSORS": "tally=services.files.tests.plugins:tally,"
    "slow=services.files.tests.plugins:slow,"
    "broken=services.files.tests.plugins:broken",
}


def environment_for(settings: dict[str, object]) -> dict[str, str]:
    """FilesSettings attribute values as the environment variables they come from."""
    variables = FilesSettings.variables()
    return {variables[attr].name: str(value) for attr, value in settings.items()}


@dataclass
class Stack:
    """Everything one storage backend's processing tests run against."""

    backend: str
    app: object
    relay: ServiceProcess
    consumer: ServiceProcess
    worker: ServiceProcess
    beat: ServiceProcess
    storage_settings: dict[str, str]
    #: Takes the storage every process of the stack uses down and back up.
    switch: OutageSwitch

    @property
    def engine(self):
        """The files schema's engine."""
        return self.app.extensions["files"].engine

    @property
    def storage(self):
        """The storage backend the worker reads."""
        return self.app.extensions["files"].storage

    def row(self, file_id: str):
        """The file's row (None once deleted)."""
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT * FROM files WHERE id = :id"), {"id": file_id}).first()

    def wait_for_status(self, file_id: str, *statuses: str, timeout: float = 60):
        """Poll the row until its status is one of `statuses`; return the row."""

        def reached():
            row = self.row(file_id)
            return row if row is not None and row.status in statuses else None

        return wait_until(reached, timeout=timeout, what=f"file {file_id} to be {statuses}")

    def start_worker(self) -> None:
        """Start the Celery worker and wait until it consumes."""
        since = len(self.worker.logs())
        self.worker.start()
        self.worker.wait_for_log("ready.", timeout=60, since=since)

    def send_task(self, name: str, *args: str) -> None:
        """Queue a task as the consumer and the reaper do."""
        self.app.extensions["celery"].send_task(name, args=list(args))


@pytest.fixture(scope="module", params=["local", "s3"])
def stack(request, test_env, jwks_url, tmp_path_factory):
    """The app and every process of the files pipeline, on one storage backend per module run."""
    if request.param == "s3":
        storage_settings = s3_settings(request.getfixturevalue("s3_endpoint"))
    else:
        directory = tmp_path_factory.mktemp("storage")
        storage_settings = {"STORAGE_BACKEND": "local", "STORAGE_DIR": str(directory)}
    switch = OutageSwitch(storage_settings)
    storage_settings = switch.settings
    env = {
        **os.environ,
        **environment_for({**storage_settings, **PROCESSING_SETTINGS}),
        "LOG_LEVEL": "INFO",
    }
    app = create_app(FilesSettings(env, JWKS_URL=jwks_url))
    log_dir: Path = tmp_path_factory.mktemp(f"logs-{request.param}")
    celery = [str(BIN / "celery"), "-A", "services.files.worker:celery_app"]
    processes = {
        "consumer": ServiceProcess(
            "consumer", [str(BIN / "dockyard"), "consume", "files"], env, log_dir
        ),
        "relay": ServiceProcess("relay", [str(BIN / "dockyard"), "relay", "files"], env, log_dir),
        "worker": ServiceProcess(
            "worker",
            [
                *celery,
                "worker",
                "--concurrency",
                "2",
                "--hostname",
                f"files-test-{uuid.uuid4().hex[:6]}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
            env,
            log_dir,
        ),
        "beat": ServiceProcess(
            "beat", [*celery, "beat", "--scheduler", "celery.beat:Scheduler"], env, log_dir
        ),
    }
    stack = Stack(
        backend=request.param,
        app=app,
        storage_settings=storage_settings,
        switch=switch,
        **processes,
    )
    try:
        # The consumer's queues must exist before the relay publishes, or events go unroutable.
        stack.consumer.start()
        namespace = test_env.namespace
        wait_until(
            lambda: all(
                queue_exists(test_env.amqp_url, f"{namespace}.consumer.files.{name}")
                for name in ("processing", "search")
            ),
            timeout=60,
            what="the consumer's queues",
        )
        stack.start_worker()
        stack.beat.start()
        stack.relay.start()
        warm_up(stack, test_env)
        yield stack
    finally:
        for process in processes.values():
            process.kill()
        app.extensions["files"].engine.dispose()
        switch.close()


def warm_up(stack: Stack, test_env) -> None:
    """Take one file through the whole pipeline, so every test meets the processes warmed up."""
    user_id = str(uuid.uuid4())
    token = mint_access_token(test_env.private_key_pem, user_id)
    user = User(id=user_id, headers={"Authorization": f"Bearer {token}"})
    response = upload(stack.app.test_client(), user, b"warm-up\n", filename="warm-up.txt")
    assert response.status_code == 201, response.json
    stack.wait_for_status(response.json["id"], "PROCESSED", timeout=60)


@pytest.fixture
def fresh_logs(stack):
    """Offsets into each process's log, so a test reads only what it caused."""
    return {name: len(getattr(stack, name).logs()) for name in ("worker", "consumer", "relay")}


def pause(seconds: float) -> None:
    """Let time pass on purpose (to show that nothing happens meanwhile)."""
    time.sleep(seconds)
