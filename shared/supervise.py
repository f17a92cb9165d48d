"""Run the Procfile's processes under supervisord: a crashed one restarts, the others keep running.

`make up` used to run the Procfile with honcho, which stops everything when any process exits
and restarts nothing. supervisord (a maintained supervisor) restarts a process that exits
unexpectedly, with a growing delay while it keeps failing to stay up, and logs each exit and
restart. The Procfile stays the one list of processes: this module turns it into a supervisord
configuration.

* A process that exits after running `start_seconds` is restarted at once; one that exits sooner
  is retried after 1 s, 2 s, 3 s ... (supervisord's BACKOFF state) and, after `start_retries`
  such failures in a row, left FATAL and logged so.
* Each process runs in its own process group and is stopped (TERM, then KILL after
  `stop_wait_seconds`) with its children: a Celery pool or gunicorn's workers go with it.
* One-shot entries (`ready`, which exits once it has announced the gateway) are not restarted.
* Everything writes to supervisord's stdout, as under honcho; supervisorctl talks to a socket
  under `run_dir` (`dockyard supervise --status`).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: Procfile entries that run once and exit 0 when done.
ONE_SHOT = frozenset({"ready"})


def all_running(status: str) -> bool:
    """Whether supervisorctl's `status` lists every process RUNNING (one-shots: done, EXITED)."""
    for line in status.splitlines():
        name, _, rest = line.partition(" ")
        state = next(iter(rest.split()), "")
        if state != "RUNNING" and not (name in ONE_SHOT and state == "EXITED"):
            return False
    return bool(status.strip())


_ENTRY = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")
#: Shell operators that make a Procfile command more than one process.
_COMPOUND = re.compile(r"[;&|]|\bexec\b")


@dataclass(frozen=True)
class ProcfileEntry:
    """One Procfile line: a process name and its shell command."""

    name: str
    command: str


def parse_procfile(text: str) -> list[ProcfileEntry]:
    """The entries of a Procfile, in order (comments and blank lines skipped)."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _ENTRY.match(stripped)
        if match is None:
            raise ValueError(f"Procfile line {number} is not `name: command`: {line!r}")
        entries.append(ProcfileEntry(match.group(1), match.group(2)))
    return entries


def select(entries: list[ProcfileEntry], names: Iterable[str]) -> list[ProcfileEntry]:
    """The entries named (all when none are), refusing names the Procfile does not have."""
    wanted = list(names)
    if not wanted:
        return entries
    known = {entry.name for entry in entries}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ValueError(f"not in the Procfile: {', '.join(unknown)}; it has {', '.join(known)}")
    return [entry for entry in entries if entry.name in wanted]


def _shell_command(command: str) -> str:
    """`command` for sh -c: a lone command exec'd, so the pid supervisord watches is the process."""
    # sh expands the Procfile's ${VAR:-default}. Without exec, dash stays the parent: a crash of
    # the shell alone would leave the real process holding its port while another is spawned.
    if _COMPOUND.search(command):
        return command
    return f"exec {command}"


def _escape(value: str) -> str:
    # supervisord expands %(name)s in its values: a literal % (Celery's %h) must be doubled.
    return value.replace("%", "%%")


def supervisor_config(
    entries: list[ProcfileEntry],
    *,
    directory: Path,
    run_dir: Path,
    start_seconds: int = 5,
    start_retries: int = 10,
    stop_wait_seconds: int = 30,
) -> str:
    """A supervisord configuration running `entries` in the foreground; see the module docstring."""
    socket = run_dir / "supervisor.sock"
    sections = [
        "[supervisord]",
        "nodaemon=true",
        # In the foreground supervisord already writes its log to stdout.
        "logfile=/dev/null",
        "logfile_maxbytes=0",
        "loglevel=info",
        f"pidfile={_escape(str(run_dir / 'supervisord.pid'))}",
        f"childlogdir={_escape(str(run_dir))}",
        "",
        "[unix_http_server]",
        f"file={_escape(str(socket))}",
        "chmod=0700",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{_escape(str(socket))}",
    ]
    for entry in entries:
        one_shot = entry.name in ONE_SHOT
        command = f"/bin/sh -c {shlex.quote(_shell_command(entry.command))}"
        sections += [
            "",
            f"[program:{entry.name}]",
            f"command={_escape(command)}",
            f"directory={_escape(str(directory))}",
            "autostart=true",
            f"autorestart={str(not one_shot).lower()}",
            "exitcodes=0",
            f"startsecs={0 if one_shot else start_seconds}",
            f"startretries={start_retries}",
            "stopsignal=TERM",
            f"stopwaitsecs={stop_wait_seconds}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            "stdout_logfile=/dev/stdout",
            "stdout_logfile_maxbytes=0",
        ]
    return "\n".join(sections) + "\n"


def write_config(procfile: Path, names: Iterable[str], *, run_dir: Path, **options: int) -> Path:
    """Write the configuration for `procfile`'s entries (those named, or all) under `run_dir`."""
    entries = select(parse_procfile(procfile.read_text()), names)
    run_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(run_dir, 0o700)
    path = run_dir / "supervisord.conf"
    path.write_text(
        supervisor_config(
            entries, directory=procfile.resolve().parent, run_dir=run_dir.resolve(), **options
        )
    )
    return path
