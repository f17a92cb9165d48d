"""`make up` runs the Procfile under supervisord: a crashed process restarts, the others go on.

The supervised processes here are small shell loops (what is under test is the supervision, not
Dockyard's processes); the real Procfile is checked to translate entry by entry.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import supervise
from shared.processes import ManagedProcess

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _status(run_dir: Path) -> dict[str, tuple[str, int | None]]:
    """Each program's supervisorctl state and pid."""
    result = subprocess.run(
        [BIN / "supervisorctl", "-s", f"unix://{run_dir / 'supervisor.sock'}", "status"],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    states = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            pid = re.search(r"pid (\d+)", line)
            states[parts[0]] = (parts[1], int(pid.group(1)) if pid else None)
    return states


def _state(states: dict[str, tuple[str, int | None]], name: str) -> str:
    return states.get(name, ("",))[0]


def _wait(condition, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[tuple[ManagedProcess, Path]]:
    """supervisord over a Procfile of a steady process, a crash-prone one and a failing one."""
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        "# a comment, then the processes\n"
        "steady: sleep 600\n"
        # One process (no `;`, so it is exec'd): prints, then sleeps.
        f"victim: {sys.executable} -c \"__import__('time').sleep(print('victim up on"
        " ${VICTIM_PORT:-7000}', flush=True) or 600)\"\n"
        "broken: echo cannot start; exit 3\n"
        "ready: echo announced\n"
    )
    run_dir = tmp_path / "run"
    config = supervise.write_config(
        procfile, [], run_dir=run_dir, start_seconds=3, start_retries=2, stop_wait_seconds=5
    )
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    with ManagedProcess(
        "supervisord", [BIN / "supervisord", "-c", config], env=env, log=tmp_path / "out.log"
    ) as process:
        process.wait_ready(log_line="success: victim entered RUNNING state", timeout=30)
        yield process, run_dir


def test_a_killed_process_is_restarted_while_the_others_keep_running(supervised) -> None:
    process, run_dir = supervised
    states = _wait(
        lambda: (
            all(_state(s := _status(run_dir), name) == "RUNNING" for name in ("steady", "victim"))
            and s
        ),
        what="steady and victim RUNNING",
    )
    steady_pid, victim_pid = states["steady"][1], states["victim"][1]

    os.kill(victim_pid, signal.SIGKILL)

    restarted = _wait(
        lambda: (
            (s := _status(run_dir))["victim"][0] == "RUNNING" and s["victim"][1] != victim_pid and s
        ),
        what="victim restarted",
    )
    assert restarted["steady"] == ("RUNNING", steady_pid)
    log = process.logs()
    assert "exited: victim (terminated by SIGKILL; not expected)" in log
    assert log.count("victim up on 7000") == 2  # the Procfile's ${VAR:-default} went through sh


def test_a_process_that_cannot_start_backs_off_then_is_left_fatal(supervised) -> None:
    process, run_dir = supervised
    _wait(lambda: _status(run_dir)["broken"][0] == "FATAL", what="broken FATAL")
    log = process.logs()
    # The initial start and start_retries=2 retries, each logged, then given up on.
    assert log.count("exited: broken (exit status 3; not expected)") == 3
    assert "gave up: broken entered FATAL state, too many start retries too quickly" in log
    assert _status(run_dir)["steady"][0] == "RUNNING"


def test_a_one_shot_entry_exits_once_and_is_not_restarted(supervised) -> None:
    process, run_dir = supervised
    _wait(lambda: _status(run_dir)["ready"][0] == "EXITED", what="ready EXITED")
    assert process.logs().count("announced") == 1
    assert "exited: ready (exit status 0; expected)" in process.logs()


def test_sigterm_stops_every_process_with_supervisord(supervised) -> None:
    process, run_dir = supervised
    pids = [pid for state, pid in _status(run_dir).values() if state == "RUNNING"]
    assert len(pids) == 2
    process.stop(timeout=20)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_the_procfile_translates_entry_by_entry() -> None:
    entries = supervise.parse_procfile((REPO / "Procfile").read_text())
    names = [entry.name for entry in entries]
    assert {"auth", "gateway", "tasks-worker", "tasks-monitor", "ready"} <= set(names)
    config = supervise.supervisor_config(entries, directory=REPO, run_dir=REPO / "var" / "run")
    assert config.count("[program:") == len(entries)
    # Each lone command is exec'd (the pid supervisord watches is the process itself), and
    # Celery's %h survives supervisord's own %(...)s expansion.
    assert "command=/bin/sh -c 'exec python -m services.tasks.monitor'" in config
    assert "--hostname tasks@%%h" in config
    assert "[program:ready]\n" in config
    ready = config.split("[program:ready]\n", 1)[1].split("\n\n", 1)[0]
    assert "autorestart=false" in ready and "startsecs=0" in ready


def test_unknown_names_and_malformed_lines_are_refused(tmp_path: Path) -> None:
    entries = supervise.parse_procfile("a: true\nb: true\n")
    with pytest.raises(ValueError, match="not in the Procfile: c"):
        supervise.select(entries, ["a", "c"])
    with pytest.raises(ValueError, match="line 2"):
        supervise.parse_procfile("a: true\nnot a process line\n")
