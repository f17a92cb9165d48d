"""Running tasks for real: outcomes, logs, limits, safety, cancel, timeout, OOM, isolation."""

from __future__ import annotations

import pytest

from services.tasks.containers import PULL_FAILED
from services.tasks.tests.engine.conftest import TEST_IMAGE, wait_for

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED"}


def submit(client, user, command, **spec):
    """Create a task through the REST API and return its body."""
    response = client.post(
        "/v1/tasks", json={"image": TEST_IMAGE, "command": command, **spec}, headers=user.headers
    )
    assert response.status_code == 201, response.json
    return response.json


def task_of(client, user, task_id):
    """The task as its owner sees it."""
    response = client.get(f"/v1/tasks/{task_id}", headers=user.headers)
    assert response.status_code == 200, response.json
    return response.json


def wait_status(client, user, task_id, statuses=TERMINAL, timeout=60.0):
    """Poll the task until its status is one of `statuses`."""
    return wait_for(
        lambda: (t := task_of(client, user, task_id))["status"] in statuses and t,
        timeout=timeout,
        message=f"task {task_id} never reached {sorted(statuses)}",
    )


def logs_of(client, user, task_id, stream="both"):
    """The task's stored output."""
    response = client.get(f"/v1/tasks/{task_id}/logs?stream={stream}", headers=user.headers)
    assert response.status_code == 200, response.json
    return response.json


def containers_of(docker_client, task_id):
    """Every container labelled with the task."""
    # ignore_removed: a container removed between listing and inspecting is simply gone.
    return docker_client.containers.list(
        all=True, filters={"label": f"dockyard.task-id={task_id}"}, ignore_removed=True
    )


@pytest.fixture(autouse=True)
def _engine_running(engine):
    """Every test here needs the engine processes."""


def test_a_task_succeeds_with_its_output_stored_and_its_container_removed(
    client, alice, docker_client
):
    task = submit(client, alice, ["sh", "-c", "echo hello; echo oops >&2"], name="greet")
    done = wait_status(client, alice, task["id"])
    assert done["status"] == "SUCCEEDED", done
    assert done["exit_code"] == 0 and done["attempts"] == 1
    assert done["queued_at"] and done["started_at"] and done["finished_at"]
    assert logs_of(client, alice, task["id"], "stdout")["text"] == "hello\n"
    assert logs_of(client, alice, task["id"], "stderr")["text"] == "oops\n"
    # Removal follows the stored result, so it may trail the terminal status briefly.
    wait_for(
        lambda: containers_of(docker_client, task["id"]) == [],
        timeout=15,
        message="container not removed",
    )


def test_a_non_zero_exit_fails_the_task_with_its_code_and_stderr(client, alice):
    task = submit(client, alice, ["sh", "-c", "echo broken >&2; exit 3"])
    done = wait_status(client, alice, task["id"])
    assert (done["status"], done["exit_code"], done["error_code"]) == ("FAILED", 3, "NON_ZERO_EXIT")
    assert logs_of(client, alice, task["id"], "stderr")["text"] == "broken\n"


def test_a_failing_task_is_retried_when_it_asks(client, alice):
    task = submit(client, alice, ["sh", "-c", "exit 1"], max_retries=2)
    done = wait_status(client, alice, task["id"])
    assert (done["status"], done["attempts"]) == ("FAILED", 3)


def test_a_container_runs_with_the_safe_defaults(client, alice, docker_client, test_env):
    task = submit(client, alice, ["sleep", "30"], memory_limit_mb=64, cpu_limit=0.5)
    wait_status(client, alice, task["id"], {"RUNNING"})
    [container] = containers_of(docker_client, task["id"])
    host = container.attrs["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["ReadonlyRootfs"] is True
    assert "/tmp" in host["Tmpfs"]
    assert host["PidsLimit"] == 256
    assert host["Memory"] == 64 * 1024 * 1024
    assert host["NanoCpus"] == 500_000_000
    assert container.attrs["Config"]["User"] == "65534:65534"
    labels = container.labels
    assert labels["dockyard.task-id"] == task["id"]
    assert labels["dockyard.owner-id"] == alice.id
    assert labels["dockyard.attempt"] == "1"
    assert labels["dockyard.namespace"] == test_env.namespace
    client.post(f"/v1/tasks/{task['id']}/cancel", headers=alice.headers)
    wait_status(client, alice, task["id"])


def test_a_task_cannot_write_outside_tmp_nor_reach_a_network(client, alice):
    script = (
        "echo x > /probe && echo WROTE-ROOT; "
        "echo y > /tmp/probe && echo WROTE-TMP; "
        "ls /sys/class/net; id -u"
    )
    task = submit(client, alice, ["sh", "-c", script])
    done = wait_status(client, alice, task["id"])
    assert done["status"] == "SUCCEEDED", done
    out = logs_of(client, alice, task["id"], "stdout")["text"].split()
    assert "WROTE-ROOT" not in out
    assert "WROTE-TMP" in out
    assert "lo" in out and "eth0" not in out
    assert out[-1] == "65534"
    assert "Read-only file system" in logs_of(client, alice, task["id"], "stderr")["text"]


def test_output_is_streamed_while_the_task_runs(client, alice):
    task = submit(client, alice, ["sh", "-c", "echo early; sleep 30"])
    wait_for(
        lambda: logs_of(client, alice, task["id"])["text"] == "early\n",
        timeout=15,
        message="the first line never showed up while running",
    )
    assert task_of(client, alice, task["id"])["status"] == "RUNNING"
    client.post(f"/v1/tasks/{task['id']}/cancel", headers=alice.headers)
    wait_status(client, alice, task["id"])


def test_usage_is_sampled_while_the_task_runs(client, alice):
    task = submit(client, alice, ["sh", "-c", "while true; do :; done"], timeout_seconds=20)
    sampled = wait_for(
        lambda: (
            (t := task_of(client, alice, task["id"]))["usage"]
            and t["usage"]["cpu_percent"] is not None
            and t
        ),
        timeout=15,
        message="no usage sample",
    )
    assert sampled["usage"]["memory_bytes"] > 0
    assert sampled["usage"]["cpu_percent"] > 10
    client.post(f"/v1/tasks/{task['id']}/cancel", headers=alice.headers)
    wait_status(client, alice, task["id"])


def test_a_task_over_its_timeout_is_killed(client, alice, docker_client):
    task = submit(client, alice, ["sleep", "60"], timeout_seconds=2)
    done = wait_status(client, alice, task["id"], timeout=30)
    assert (done["status"], done["error_code"]) == ("TIMED_OUT", "TIMED_OUT")
    # Removal follows the stored result, so it may trail the terminal status briefly.
    wait_for(
        lambda: containers_of(docker_client, task["id"]) == [],
        timeout=15,
        message="container not removed",
    )


def test_cancelling_a_running_task_kills_its_container_within_seconds(client, alice, docker_client):
    task = submit(client, alice, ["sleep", "60"])
    wait_status(client, alice, task["id"], {"RUNNING"})
    response = client.post(f"/v1/tasks/{task['id']}/cancel", headers=alice.headers)
    assert response.status_code == 200
    done = wait_status(client, alice, task["id"], timeout=10)
    assert done["status"] == "CANCELLED"
    wait_for(
        lambda: containers_of(docker_client, task["id"]) == [],
        timeout=10,
        message="the container outlived the cancel",
    )


def test_cancelling_a_queued_task_stops_it_from_starting(client, alice, docker_client):
    task = submit(client, alice, ["sh", "-c", "echo should-not-run"])
    client.post(f"/v1/tasks/{task['id']}/cancel", headers=alice.headers)
    done = wait_status(client, alice, task["id"], timeout=10)
    # A start job may have claimed the attempt already (the dispatch takes milliseconds), but
    # starting a container takes far longer than the cancel: it never ran.
    assert done["status"] == "CANCELLED" and done["started_at"] is None, done
    assert done["attempts"] <= 1
    assert logs_of(client, alice, task["id"])["text"] == ""
    # Removal follows the stored result, so it may trail the terminal status briefly.
    wait_for(
        lambda: containers_of(docker_client, task["id"]) == [],
        timeout=15,
        message="container not removed",
    )


def test_a_task_over_its_memory_limit_is_oom_killed(client, alice):
    grow = "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo ${#x}"
    task = submit(client, alice, ["sh", "-c", grow], memory_limit_mb=8)
    done = wait_status(client, alice, task["id"])
    assert (done["status"], done["error_code"]) == ("FAILED", "OOM_KILLED"), done
    assert done["exit_code"] == 137


def test_a_missing_image_whose_pull_fails_is_reported_clearly(client, alice):
    # Docker Hub is out of reach here, so its pull fails as a missing image's would.
    task = submit(client, alice, ["true"], image="dockyard/no-such-image:never")
    done = wait_status(client, alice, task["id"])
    assert (done["status"], done["error_code"]) == ("FAILED", "IMAGE_NOT_FOUND")
    assert done["error"] == PULL_FAILED
    assert done["attempts"] == 0


def test_output_beyond_the_cap_is_truncated_with_a_marker(client, alice):
    # The default cap is 1 MiB per stream; 3 MB of output keeps its end only.
    task = submit(client, alice, ["sh", "-c", "yes abcdefghi | head -c 3000000; echo END"])
    done = wait_status(client, alice, task["id"])
    assert done["status"] == "SUCCEEDED", done
    logs = logs_of(client, alice, task["id"], "stdout")
    assert logs["truncated"] is True, (len(logs["text"]), logs["text"][:200])
    assert logs["text"].startswith("[dockyard: earlier output dropped:")
    assert logs["text"].endswith("END\n")
    assert len(logs["text"].encode()) < 1024 * 1024 + 200


def test_fifty_tasks_submitted_at_once_all_finish_correctly(client, alice):
    tasks = [submit(client, alice, ["sh", "-c", f"echo task-{n}"]) for n in range(50)]
    for n, task in enumerate(tasks):
        done = wait_status(client, alice, task["id"], timeout=180)
        assert done["status"] == "SUCCEEDED", done
        assert logs_of(client, alice, task["id"])["text"] == f"task-{n}\n"


def test_a_user_never_sees_another_users_task_or_logs(client, alice, bob):
    task = submit(client, alice, ["echo", "private"])
    wait_status(client, alice, task["id"])
    assert client.get(f"/v1/tasks/{task['id']}", headers=bob.headers).status_code == 404
    assert client.get(f"/v1/tasks/{task['id']}/logs", headers=bob.headers).status_code == 404
    assert client.post(f"/v1/tasks/{task['id']}/cancel", headers=bob.headers).status_code == 404
    listed = client.get("/v1/tasks", headers=bob.headers).json
    assert task["id"] not in [edge["node"]["id"] for edge in listed.get("edges", [])]


def test_finished_tasks_notify_their_owner(client, alice, engine):
    task = submit(client, alice, ["true"], name="notify-me")
    wait_status(client, alice, task["id"])
    wait_for(
        lambda: (
            f"Notification sent to user {alice.id} about task notify-me: SUCCEEDED"
            in engine["consume"].log()
        ),
        timeout=15,
        # The default LOG channel is inline: the consumer that records the notification sends it.
        message="no notification line in the consumer's log",
    )
