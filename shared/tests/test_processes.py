"""The process harness: ready on a log line or an HTTP answer, stopped politely, then firmly."""

from __future__ import annotations

import os
import signal
import socket
import sys

import pytest

from shared.processes import ManagedProcess, stop_all
from shared.tests.messaging_support import wait_until

POLITE = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "print('listening', flush=True)\n"
    "time.sleep(60)\n"
)
STUBBORN = (
    "import signal, subprocess, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "child = subprocess.Popen(['sleep', '60'])\n"
    "print('child', child.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def python(name: str, code: str) -> ManagedProcess:
    """A Python one-off under the harness."""
    return ManagedProcess(name, [sys.executable, "-c", code], env=dict(os.environ))


def test_a_process_is_ready_once_its_log_has_the_line_and_stops_on_sigterm():
    with python("polite", POLITE) as process:
        process.wait_ready(log_line="listening", timeout=10)
        assert process.running
        assert process.stop() == 0
    assert not process.log_path.exists()  # its own temporary log goes with it


def test_a_process_that_exits_before_it_is_ready_fails_with_its_log():
    with python("doomed", "print('no database here'); raise SystemExit(3)") as process:
        with pytest.raises(RuntimeError, match="doomed exited:\nno database here"):
            process.wait_ready(log_line="never printed", timeout=10)


def gone(pid: int) -> bool:
    """Whether `pid` has exited (a zombie waiting for init to reap it counts)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_process_that_ignores_sigterm_is_killed_with_its_children():
    with python("stubborn", STUBBORN) as process:
        process.wait_ready(log_line="child", timeout=10)
        child = int(process.logs().split()[1])
        assert process.stop(timeout=0.5) == -signal.SIGKILL
    wait_until(lambda: gone(child), timeout=10, what=f"the child {child} to be killed too")


def test_a_server_is_ready_once_its_url_answers():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    with ManagedProcess("http", argv, env=dict(os.environ)) as server:
        server.wait_ready(url=f"http://127.0.0.1:{port}/", timeout=10)
        assert server.running


#: Stops cleanly on its first SIGTERM, but only after it stopped listening for a second one.
WINDS_DOWN = (
    "import signal, sys, time\n"
    "def down(*_):\n"
    "    signal.signal(signal.SIGTERM, signal.SIG_DFL)\n"
    "    time.sleep(0.5)\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, down)\n"
    "print('listening', flush=True)\n"
    "time.sleep(60)\n"
)


def test_stop_all_signals_each_process_once_so_each_exits_its_own_way():
    processes = [python(f"down-{i}", WINDS_DOWN).start() for i in range(2)]
    for process in processes:
        process.wait_ready(log_line="listening", timeout=10)
    stop_all(processes, timeout=10)
    assert [process.process.returncode for process in processes] == [0, 0]
