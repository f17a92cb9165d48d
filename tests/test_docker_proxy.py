"""The Docker socket proxy (deploy/docker-proxy/haproxy.cfg) in front of the real engine.

The proxy runs as a container of the compose image; the tasks service's own Docker and Swarm
adapters drive task containers through it, and what they never ask for answers 403 without
reaching the engine.
"""

from __future__ import annotations

import io
import json
import os
import queue
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from services.tasks.containers import (
    ContainerGone,
    ContainerLimits,
    ContainerSpec,
    DockerEngine,
    input_host_dir,
    namespace_filter,
)
from services.tasks.swarm import SwarmEngine
from services.tasks.tests.engine.conftest import (  # noqa: F401 - fixtures
    TEST_IMAGE,
    docker_client,
    remove_swarm_leftovers,
    swarm,
    wait_for,
)
from shared.testing import run_directory
from tests.conftest import REPO, free_port
from tests.offline_images import OFFLINE_IMAGES_TIMEOUT, offline_images

#: The first test's setup may build every image compose runs (deploy/offline-images.sh: the
#: Debian base, Dockyard's image, the stand-ins), minutes on a fresh engine, or wait for
#: another worker doing so.
pytestmark = pytest.mark.timeout(OFFLINE_IMAGES_TIMEOUT)

CONFIG = REPO / "deploy" / "docker-proxy" / "haproxy.cfg"
SOCKET = "/var/run/docker.sock"
PREFIX = "proxy-test"


class Proxy:
    """A running proxy: its URL, its bind roots, and the name of its container."""

    def __init__(self, url: str, input_root: Path, output_root: Path, container) -> None:
        self.url = url
        self.input_root = input_root
        self.output_root = output_root
        self.container = container

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        """One raw request to the proxy."""
        return requests.request(method, f"{self.url}{path}", timeout=30, **kwargs)

    def engine(self, namespace: str) -> DockerEngine:
        """The tasks service's Docker adapter, its engine the proxy, its containers labelled."""
        return DockerEngine(
            docker_host=f"tcp://{self.url.removeprefix('http://')}",
            timeout=30,
            limits=ContainerLimits(
                pids_limit=64,
                tmpfs_size_mb=8,
                user="65534:65534",
                namespace=namespace,
                input_root=str(self.input_root),
            ),
        )


@pytest.fixture(scope="module")
def proxy(docker_client, tmp_path_factory) -> Iterator[Proxy]:  # noqa: F811
    """The proxy of the compose image on a loopback port of its own."""
    image = offline_images(run_directory(tmp_path_factory))["HAPROXY_IMAGE"]
    roots = tmp_path_factory.mktemp("proxy-roots")
    input_root, output_root = roots / "inputs", roots / "outputs"
    input_root.mkdir()
    output_root.mkdir()
    port = free_port()
    container = docker_client.containers.run(
        image,
        name=f"{PREFIX}-{uuid.uuid4().hex[:10]}",
        detach=True,
        network_mode="host",
        environment={
            "DOCKER_PROXY_ADDRESS": "127.0.0.1",
            "DOCKER_PROXY_PORT": str(port),
            "TASKS_INPUT_DIR": str(input_root),
            "TASKS_OUTPUT_DIR": str(output_root),
        },
        volumes={
            str(CONFIG): {"bind": "/usr/local/etc/haproxy/haproxy.cfg", "mode": "ro"},
            SOCKET: {"bind": SOCKET, "mode": "rw"},
        },
        group_add=[str(os.stat(SOCKET).st_gid)],
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: _pings(url) or container.reload() or container.status == "exited",
            timeout=30,
            message="the proxy did not answer",
        )
        assert _pings(url), container.logs().decode()
        yield Proxy(url, input_root, output_root, container)
    finally:
        container.remove(force=True)


def _pings(url: str) -> bool:
    try:
        return requests.get(f"{url}/_ping", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


@pytest.fixture()
def namespace(docker_client) -> Iterator[str]:  # noqa: F811
    """A deployment namespace of this test's own; its containers are removed after."""
    name = f"{PREFIX}-{uuid.uuid4().hex[:10]}"
    yield name
    for container in docker_client.containers.list(
        all=True, filters=namespace_filter(name), ignore_removed=True
    ):
        container.remove(force=True)


def spec_of(proxy: Proxy, command: list[str], *, network: bool = False) -> ContainerSpec:
    """An attempt of a new task with an input file and an output directory."""
    task_id = uuid.uuid4()
    inputs = Path(input_host_dir(str(proxy.input_root), task_id))
    inputs.mkdir()
    (inputs / "in.txt").write_text("the input\n")
    output = proxy.output_root / str(task_id)
    output.mkdir()
    output.chmod(0o777)
    return ContainerSpec(
        task_id=task_id,
        owner_id=uuid.uuid4(),
        attempt=1,
        name=f"{PREFIX}-{task_id}",
        image=TEST_IMAGE,
        command=command,
        env={"GREETING": "hello"},
        cpu_limit=0.5,
        memory_limit_mb=32,
        network=network,
        input_filename="in.txt",
        output_dir=str(output),
    )


def collect_events(engine: DockerEngine) -> queue.Queue:
    """The engine's events stream, read on a thread of its own into a queue."""
    events: queue.Queue = queue.Queue()

    def read() -> None:
        try:
            for event in engine.events():
                events.put(event)
        except Exception as exc:  # the stream ends with the client
            events.put(exc)

    threading.Thread(target=read, daemon=True).start()
    return events


def next_event(events: queue.Queue, task_id: uuid.UUID, action: str):
    """The next event of the task with `action` (fails after 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        event = events.get(timeout=max(0.1, deadline - time.monotonic()))
        assert not isinstance(event, Exception), event
        if event.task_id == task_id and event.action == action:
            return event


def test_a_task_container_runs_its_whole_life_through_the_proxy(proxy, namespace):
    engine = proxy.engine(namespace)
    events = collect_events(engine)
    # Runs until the test drops a file into its (read-only) input directory.
    spec = spec_of(
        proxy,
        [
            "sh",
            "-c",
            "echo $GREETING; cat $DOCKYARD_INPUT_FILE; echo oops >&2; echo kept > /output/out.txt;"
            " while [ ! -e /input/stop ]; do sleep 0.05; done",
        ],
    )
    try:
        started = engine.run(spec)
        assert started.status == "running"
        assert next_event(events, spec.task_id, "start").name == spec.name
        assert [c.name for c in engine.task_containers()] == [spec.name]
        assert engine.inspect(spec.name).status == "running"
        assert engine.stats(spec.name)["memory_stats"]["limit"] == 32 * 1024 * 1024
        followed = engine.follow_output(spec.name, "stdout")
        assert next(followed) == b"hello\n"

        Path(input_host_dir(str(proxy.input_root), spec.task_id), "stop").touch()
        died = next_event(events, spec.task_id, "die")
        assert died.exit_code == 0
        assert b"".join(followed) == b"the input\n"
        output = engine.read_output(spec.name, max_bytes=1024)
        assert output.data == {"stdout": b"hello\nthe input\n", "stderr": b"oops\n"}
        assert Path(spec.output_dir, "out.txt").read_text() == "kept\n"
        assert engine.inspect(spec.name).state["ExitCode"] == 0
    finally:
        engine.remove(spec.name)
    with pytest.raises(ContainerGone):
        engine.inspect(spec.name)
    engine.close()


def test_a_task_container_is_killed_through_the_proxy(proxy, namespace):
    engine = proxy.engine(namespace)
    events = collect_events(engine)
    spec = spec_of(proxy, ["sh", "-c", "while true; do sleep 1; done"], network=True)
    engine.run(spec)
    next_event(events, spec.task_id, "start")
    engine.kill(spec.name)
    assert next_event(events, spec.task_id, "die").exit_code == 137
    engine.remove(spec.name)
    engine.remove(spec.name)  # gone already: settled, not refused
    engine.close()


def test_a_pull_goes_through_to_the_engine(proxy):
    # A registry on a closed loopback port: the engine's answer, not the proxy's refusal.
    image = f"127.0.0.1:{free_port()}/{PREFIX}/nothing:here"
    answer = proxy.call("POST", f"/images/create?fromImage={image}")
    assert answer.status_code != 403, answer.text
    assert "connection refused" in answer.text


def raw_create(proxy: Proxy, name: str, host_config: dict, **config) -> requests.Response:
    """A container create as a client other than the SDK might send it."""
    body = {"Image": TEST_IMAGE, "Cmd": ["true"], "HostConfig": host_config, **config}
    return proxy.call("POST", f"/v1.41/containers/create?name={name}", json=body)


REFUSED_CREATES = {
    "privileged": {"Privileged": True},
    "privileged-lower-case": {"privileged": True},
    "host-network": {"NetworkMode": "host"},
    "another-container-s-network": {"NetworkMode": "container:dockyard-postgres"},
    "a-user-network": {"NetworkMode": "dockyard_default"},
    "host-pid": {"PidMode": "host"},
    "host-ipc": {"IpcMode": "host"},
    "capability": {"CapAdd": ["SYS_ADMIN"]},
    "device": {"Devices": [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda"}]},
    "docker-socket": {"Binds": [f"{SOCKET}:{SOCKET}"]},
    "root": {"Binds": ["/:/host"]},
    "root-after-an-allowed-bind": {"Binds": ["{inputs}/x:/input:ro", "/:/host"]},
    "up-from-an-allowed-root": {"Binds": ["{inputs}/../../../:/host"]},
    "a-sibling-of-an-allowed-root": {"Binds": ["{inputs}-other:/host"]},
    "a-named-volume": {"Binds": ["some-volume:/host"]},
    "socket-as-a-mount": {"Mounts": [{"Type": "bind", "Source": SOCKET, "Target": SOCKET}]},
    "volumes-from": {"VolumesFrom": ["{proxy}"]},
    "seccomp-unconfined": {"SecurityOpt": ["seccomp=unconfined"]},
    "apparmor-unconfined": {"SecurityOpt": ["no-new-privileges", "apparmor=unconfined"]},
}


@pytest.mark.parametrize("host_config", REFUSED_CREATES.values(), ids=REFUSED_CREATES.keys())
def test_a_dangerous_container_is_refused(proxy, docker_client, host_config):  # noqa: F811
    name = f"{PREFIX}-{uuid.uuid4().hex[:10]}"
    filled = json.loads(
        json.dumps(host_config)
        .replace("{inputs}", str(proxy.input_root))
        .replace("{proxy}", proxy.container.name)
    )
    answer = raw_create(proxy, name, filled)
    assert answer.status_code == 403, answer.text
    assert not docker_client.containers.list(all=True, filters={"name": name})


def test_an_escaped_key_is_refused(proxy, docker_client):  # noqa: F811
    # The engine's decoder reads "Privil\u0065ged" as "Privileged".
    name = f"{PREFIX}-{uuid.uuid4().hex[:10]}"
    body = f'{{"Image": "{TEST_IMAGE}", "HostConfig": {{"Privil\\u0065ged": true}}}}'
    answer = proxy.call(
        "POST",
        f"/containers/create?name={name}",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 403, answer.text
    assert not docker_client.containers.list(all=True, filters={"name": name})


def test_a_safe_raw_create_passes(proxy, docker_client):  # noqa: F811
    # The refusals above are the body's doing: the same request with a safe body is created.
    name = f"{PREFIX}-{uuid.uuid4().hex[:10]}"
    answer = raw_create(
        proxy,
        name,
        {"NetworkMode": "none", "Binds": [f"{proxy.input_root}/x:/input:ro"]},
    )
    try:
        assert answer.status_code == 201, answer.text
    finally:
        docker_client.api.remove_container(name, force=True)


@pytest.fixture()
def bystander(docker_client) -> Iterator:  # noqa: F811
    """A created (never started) container that calls through the proxy aim at."""
    container = docker_client.containers.create(
        TEST_IMAGE, ["true"], name=f"{PREFIX}-{uuid.uuid4().hex[:10]}", network_mode="none"
    )
    yield container
    container.remove(force=True)


def _tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = f"FROM {TEST_IMAGE}\n".encode()
        member = tarfile.TarInfo("Dockerfile")
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def test_calls_the_tasks_never_make_are_refused(proxy, docker_client, bystander):  # noqa: F811
    tag = f"{PREFIX}-{uuid.uuid4().hex[:10]}"
    volume = f"{PREFIX}-{uuid.uuid4().hex[:10]}"
    target = bystander.name
    refused = [
        ("POST", f"/v1.41/containers/{target}/exec", {"json": {"Cmd": ["sh"]}}),
        ("POST", f"/build?t={tag}", {"data": _tar()}),
        ("POST", "/volumes/create", {"json": {"Name": volume}}),
        ("GET", f"/containers/{target}/archive?path=/", {}),
        ("PUT", f"/containers/{target}/archive?path=/", {"data": _tar()}),
        ("POST", f"/containers/{target}/attach?stream=1", {}),
        ("POST", f"/commit?container={target}&repo={tag}", {}),
        ("POST", f"/containers/{target}/update", {"json": {"Memory": 0}}),
        ("POST", f"/containers/{target}/rename?name={tag}", {}),
        ("POST", f"/containers/{target}/stop", {}),
        ("GET", "/secrets", {}),
        ("GET", "/info", {}),
        ("GET", "/volumes", {}),
        ("GET", "/plugins", {}),
        ("POST", "/swarm/init", {"json": {}}),
        ("DELETE", f"/images/{TEST_IMAGE}", {}),
        ("POST", f"/images/create?fromSrc=-&repo={tag}", {"data": _tar()}),
        # A start with a host config of its own, which API versions before 1.24 honour.
        ("POST", f"/v1.23/containers/{target}/start", {"json": {"Privileged": True}}),
        ("POST", f"/containers/{target}/start", {"json": {"Privileged": True}}),
        # Routes by another spelling of their path.
        ("GET", f"/containers/{target}/json/%2e%2e/archive?path=/", {}),
        ("GET", f"/containers%2F{target}%2Farchive?path=/", {}),
    ]
    answers = {f"{m} {p}": proxy.call(m, p, **kwargs).status_code for m, p, kwargs in refused}
    assert answers == {call: 403 for call in answers}

    bystander.reload()
    assert bystander.attrs["ExecIDs"] is None
    assert bystander.status == "created"
    assert bystander.name == target
    assert not docker_client.images.list(name=tag)
    assert volume not in {v.name for v in docker_client.volumes.list()}
    docker_client.images.get(TEST_IMAGE)


def test_a_swarm_job_runs_through_the_proxy(proxy, docker_client, swarm):  # noqa: F811
    namespace = f"{PREFIX}-{uuid.uuid4().hex[:10]}"
    engine = SwarmEngine(proxy.engine(namespace))
    spec = spec_of(proxy, ["sh", "-c", "echo from swarm; cat $DOCKYARD_INPUT_FILE"])
    try:
        engine.run(spec)
        info = wait_for(
            lambda: (found := engine.inspect(spec.name)).exited and found,
            timeout=60,
            message="the swarm job did not end",
        )
        assert info.state["ExitCode"] == 0
        assert [c.name for c in engine.task_containers()] == [spec.name]
        output = wait_for(
            lambda: (read := engine.read_output(spec.name, max_bytes=1024)).data["stdout"] and read,
            timeout=30,
            message="no output of the swarm job",
        )
        assert output.data["stdout"] == b"from swarm\nthe input\n"
        engine.remove(spec.name)
        with pytest.raises(ContainerGone):
            engine.inspect(spec.name)
        assert not docker_client.networks.list(names=[spec.name])
    finally:
        remove_swarm_leftovers(docker_client, namespace)
        engine.close()


def test_a_swarm_job_on_the_host_network_is_refused(proxy, swarm):  # noqa: F811
    name = f"{PREFIX}-{uuid.uuid4().hex[:10]}"
    body = {
        "Name": name,
        "TaskTemplate": {"ContainerSpec": {"Image": TEST_IMAGE}},
        "Networks": [{"Target": "host"}],
    }
    answer = proxy.call("POST", "/v1.41/services/create", json=body)
    assert answer.status_code == 403, answer.text
    mounts = {
        "Name": name,
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": TEST_IMAGE,
                "Mounts": [{"Type": "bind", "Source": SOCKET, "Target": SOCKET}],
            }
        },
    }
    answer = proxy.call("POST", "/v1.41/services/create", json=mounts)
    assert answer.status_code == 403, answer.text
    bridge = {"Name": name, "Driver": "bridge", "Internal": True}
    assert proxy.call("POST", "/v1.41/networks/create", json=bridge).status_code == 403
