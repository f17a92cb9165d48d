"""Test support: a throwaway database, namespace and keys per run, and servers on loopback."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import secrets
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from werkzeug.serving import make_server

from shared import dbadmin, migrations
from shared.auth import RevocationList
from shared.registry import ServiceRegistry
from shared.service_identity import (
    PEER_CALLS,
    ServiceCredentials,
    peer_secret_var,
    service_secret_var,
)


def generate_private_key_pem() -> str:
    """A fresh 2048-bit RSA private key in PEM (for tests and `make up` dev keys)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@dataclass
class TestEnvironment:
    """Everything one test run owns: database, AMQP/Redis namespace, signing key, env vars.

    `services` is the registry whose services get a role, a schema and their migrations
    (services.registry.REGISTRY).
    """

    services: ServiceRegistry
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    #: Seeds this run's service secrets (one per service, as production has).
    secret_seed: str = field(default_factory=lambda: secrets.token_hex(16))
    admin_url: str = os.environ.get(
        "DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    pg_host: str = os.environ.get("TEST_PG_HOST", "127.0.0.1:5432")
    amqp_url: str = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
    redis_url: str = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    private_key_pem: str = field(default_factory=generate_private_key_pem)

    @property
    def database(self) -> str:
        """The throwaway database's name."""
        return f"dockyard_test_{self.run_id}"

    @property
    def namespace(self) -> str:
        """Prefix of this run's exchanges, queues and Redis keys."""
        return f"dytest{self.run_id}"

    def service_url(self, service: str) -> str:
        """The database URL a service connects with (its own role)."""
        return f"postgresql+psycopg2://dockyard_{service}@{self.pg_host}/{self.database}"

    def env(self) -> dict[str, str]:
        """Environment variables that point every Dockyard process at this run's resources."""
        values = {
            "DOCKYARD_ENV": "test",
            "DATABASE_ADMIN_URL": self.admin_url,
            "AMQP_URL": self.amqp_url,
            "REDIS_URL": self.redis_url,
            "DOCKYARD_NAMESPACE": self.namespace,
            "AUTH_JWT_PRIVATE_KEY": self.private_key_pem,
        }
        for service in self.services.with_database():
            values[f"{service.schema.upper()}_DATABASE_URL"] = self.service_url(service.schema)
            values[f"{service.schema.upper()}_SERVICE_SECRET"] = hashlib.sha256(
                f"{self.secret_seed}:{service.schema}".encode()
            ).hexdigest()
        for caller, callee in PEER_CALLS:
            values[peer_secret_var(caller, callee).name] = hashlib.sha256(
                f"{self.secret_seed}:{caller}-to-{callee}".encode()
            ).hexdigest()
        return values

    def set_up(self) -> None:
        """Create the database, roles and schemas, run every migration, export the env."""
        services = self.services.with_database()
        dbadmin.bootstrap(self.admin_url, {s.schema: self.service_url(s.schema) for s in services})
        for service in services:
            migrations.upgrade(service.migrations, self.service_url(service.schema))
        self.mark_deny_list_whole()
        os.environ.update(self.env())

    def mark_deny_list_whole(self) -> None:
        """Mark the namespace's (empty) deny-list whole, as auth does when it starts.

        The run's database has no revocation yet, and its services may verify tokens before
        an auth of the namespace has started (or with none at all).
        """
        RevocationList.from_url(self.redis_url, namespace=self.namespace).restore(
            families={}, token_ids={}
        )

    def tear_down(self) -> None:
        """Drop the database and delete this run's queues, exchanges and Redis keys."""
        dbadmin.drop_database(self.admin_url, self.database)
        client = redis.Redis.from_url(self.redis_url)
        for key in client.scan_iter(f"{self.namespace}*", count=1000):
            client.delete(key)
        delete_amqp_namespace(self.namespace)

    def __enter__(self) -> TestEnvironment:
        self.set_up()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.tear_down()


def gateway_headers(service: str, client_address: str | None = None) -> dict[str, str]:
    """The service credential the gateway would send `service` for a client at that address."""
    secret = service_secret_var(service).read(os.environ, production=False)
    token = ServiceCredentials({service: secret}).token_for(service, client_address)
    return {"X-Service-Token": token}


def peer_headers(caller: str, callee: str) -> dict[str, str]:
    """The service credential `caller` would send `callee` (PEER_CALLS), from the environment."""
    secret = peer_secret_var(caller, callee).read(os.environ, production=False)
    token = ServiceCredentials({callee: secret}, caller=caller).token_for(callee, None)
    return {"X-Service-Token": token}


def production_environ(**overrides: str) -> dict[str, str]:
    """An environment every Dockyard process accepts with DOCKYARD_ENV=production."""
    environ = {
        "DOCKYARD_ENV": "production",
        "AMQP_URL": "amqp://dockyard:a-real-password@rabbitmq:5672//",
        "REDIS_URL": "redis://:a-real-password@redis:6379/0",
        "GATEWAY_DOWNLOAD_URL_SECRET": secrets.token_hex(32),
    }
    for service in ("auth", "files", "tasks"):
        environ[f"{service.upper()}_SERVICE_SECRET"] = secrets.token_hex(32)
        environ[f"{service.upper()}_DATABASE_URL"] = (
            f"postgresql+psycopg2://dockyard_{service}:a-real-password@db:5432/dockyard"
        )
    for caller, callee in PEER_CALLS:
        environ[peer_secret_var(caller, callee).name] = secrets.token_hex(32)
    return {**environ, **overrides}


def delete_amqp_namespace(namespace: str) -> None:
    """Delete the queues and exchanges whose names start with `namespace` (needs rabbitmqctl)."""
    rabbitmqctl = shutil.which("rabbitmqctl")
    if not rabbitmqctl:
        return
    from kombu import Connection

    def names(kind: str) -> list[str]:
        out = subprocess.run(
            [rabbitmqctl, "-q", f"list_{kind}", "name"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout
        return [n.strip() for n in out.splitlines() if n.strip().startswith(namespace)]

    with Connection(os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")) as conn:
        channel = conn.channel()
        for queue in names("queues"):
            channel.queue_delete(queue)
        for exchange in names("exchanges"):
            channel.exchange_delete(exchange)


class ServerThread:
    """A WSGI app served over real HTTP on a loopback port, in a background thread."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = make_server(host, port, app, threaded=True)
        self.url = f"http://{host}:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key, as PEM files: (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


SWARM_MARK = "swarm-made-by-this-run"


def join_swarm_for_tests(docker_client, run_dir: Path) -> None:
    """Make the engine a one-node swarm manager unless it is one; fail if it cannot be one.

    Parallel test workers share the engine, so the check and the init run under a lock in
    `run_dir` (the run's directory all workers share), and a swarm made here is marked there
    for `leave_swarm_made_for_tests`, called once the last worker is done. A swarm that was
    there before is used as it is and never left: the engine is shared.
    """
    import fcntl

    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "swarm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = docker_client.info().get("Swarm") or {}
        state = info.get("LocalNodeState")
        if state == "active":
            if not info.get("ControlAvailable"):
                raise RuntimeError("the Docker engine is a swarm worker: the tests need a manager")
            return
        if state != "inactive":
            raise RuntimeError(
                f"the Docker engine's swarm is {state!r}: neither active nor inactive"
            )
        docker_client.swarm.init(advertise_addr="127.0.0.1")
        (run_dir / SWARM_MARK).touch()


def leave_swarm_made_for_tests(run_dir: Path) -> None:
    """Leave the swarm `join_swarm_for_tests` made in this run, if it made one."""
    mark = run_dir / SWARM_MARK
    if not mark.exists():
        return
    import docker

    client = docker.from_env()
    try:
        client.swarm.leave(force=True)
    finally:
        client.close()
        mark.unlink()


def run_directory(tmp_path_factory) -> Path:
    """The temporary directory this whole test run shares, across parallel workers too."""
    base = tmp_path_factory.getbasetemp()
    # A pytest-xdist worker's base is a folder of the controller's, which outlives the workers.
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextmanager
def own_service_database(environment: TestEnvironment, schema: str, suffix: str) -> Iterator[str]:
    """A migrated database of `schema` beside the run's, for tests that must see only their rows.

    Yields its URL (the schema's role); drops it afterwards.
    """
    name = f"{environment.database}_{suffix}"
    url = environment.service_url(schema).replace(environment.database, name)
    dbadmin.bootstrap(environment.admin_url, {schema: url})
    migrations.upgrade(environment.services.get(schema).migrations, url)
    try:
        yield url
    finally:
        dbadmin.drop_database(environment.admin_url, name)
