"""A task attempt's /output on the host: its directory, what it holds, and reading it safely.

Each attempt gets `TASKS_OUTPUT_DIR/<task id>/<attempt>`, bind-mounted read-write at /output in
its container (a tmpfs would vanish with the container). The task controls everything inside it,
so nothing here follows a symbolic link: a link to /etc/shadow is reported and dropped, never
read, and a path is opened one component at a time with O_NOFOLLOW, so a directory swapped for a
link cannot lead outside either. Only regular files count; devices, fifos and sockets are dropped.
No database here: output_saga.py starts the saga that stores what `collect` keeps.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

#: Where the directory appears in the container.
CONTAINER_PATH = "/output"
#: Longest relative path kept (files' output_path column).
MAX_PATH_LENGTH = 1024
#: Entries (files and directories) a scan looks at before it stops: a task that makes a million
#: empty directories must not hold a monitor pass or the collection for minutes.
_SCAN_ENTRY_FACTOR = 10


class OutputPathInvalid(Exception):
    """A requested output path is malformed, missing, or not a regular file."""


@dataclass(frozen=True)
class Output:
    """A regular file an attempt left: its path under /output and its size."""

    path: str
    size: int


@dataclass(frozen=True)
class Dropped:
    """Something under /output that is not stored, and why."""

    path: str
    reason: str


@dataclass
class Collection:
    """What a scan of an attempt's directory found: the files kept and what was dropped."""

    kept: list[Output] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    #: The scan stopped early (too many entries): more may have been dropped than listed.
    truncated: bool = False

    @property
    def kept_bytes(self) -> int:
        """Bytes of the kept files together."""
        return sum(output.size for output in self.kept)


def parse_user(user: str) -> tuple[int, int] | None:
    """The numeric uid and gid of a TASKS_CONTAINER_USER ("uid[:gid]"); None if not numeric."""
    uid, _, gid = (user or "").partition(":")
    if not uid.isdigit() or (gid and not gid.isdigit()):
        return None
    return int(uid), int(gid or uid)


def task_dir(root: str, task_id: uuid.UUID | str) -> Path:
    """The directory of every attempt of a task."""
    return Path(os.path.abspath(root)) / str(uuid.UUID(str(task_id)))


def attempt_dir(root: str, task_id: uuid.UUID | str, attempt: int) -> Path:
    """The host directory of one attempt's /output."""
    return task_dir(root, task_id) / str(int(attempt))


def prepare_attempt_dir(root: str, task_id: uuid.UUID, attempt: int, *, user: str) -> str:
    """Create the attempt's directory, owned by the container's user, 0700; its path.

    Idempotent, and never emptied: a start job that crashed after starting the container is
    followed by one that adopts that running container, which may have written there already.
    Owning it needs root; a process that is not root makes it world-writable instead (0777),
    and the cleanup of subdirectories the task makes may then fail (logged).
    """
    directory = attempt_dir(root, task_id, attempt)
    directory.parent.mkdir(parents=True, exist_ok=True)
    # The container's user reaches its directory only through its mount, but an image may run
    # as another user than the configured one: the parents only need to be traversable.
    os.chmod(directory.parent, 0o711)
    if directory.is_symlink():
        directory.unlink()
    directory.mkdir(exist_ok=True)
    owner = parse_user(user)
    try:
        if owner is None:
            raise PermissionError("the container's user is not numeric")
        os.chown(directory, *owner)
        os.chmod(directory, 0o700)
    except PermissionError as exc:
        log.warning("task %s: /output made world-writable (%s)", task_id, exc)
        os.chmod(directory, 0o777)
    return str(directory)


def remove_tree(path: Path) -> None:
    """Delete a directory and everything in it; links are removed, never followed. Never raises.

    Walks down and back up one directory descriptor at a time (".." to go up): a task may nest
    directories deeper than the recursion limit, the path limit or the open-files limit, each of
    which would stop shutil.rmtree. The container is gone, so nothing changes the tree meanwhile.
    """
    try:
        if path.is_symlink() or not path.is_dir():
            path.unlink(missing_ok=True)
            return
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags)
        names: list[str] = []
        try:
            while True:
                with os.scandir(fd) as listing:
                    entries = [
                        (entry.name, entry.is_dir(follow_symlinks=False)) for entry in listing
                    ]
                below = next((name for name, is_dir in entries if is_dir), None)
                for name, is_dir in entries:
                    if not is_dir:
                        os.unlink(name, dir_fd=fd)
                if below is not None:
                    inner = os.open(below, flags, dir_fd=fd)
                    os.close(fd)
                    fd = inner
                    names.append(below)
                    continue
                if not names:
                    break
                outer = os.open("..", flags, dir_fd=fd)
                os.close(fd)
                fd = outer
                os.rmdir(names.pop(), dir_fd=fd)
        finally:
            os.close(fd)
        os.rmdir(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        log.warning("could not delete %s of a task's outputs: %s", path, exc)


def remove_task_dir(root: str, task_id: uuid.UUID | str) -> None:
    """Delete every attempt's directory of a task (nothing if there is none)."""
    remove_tree(task_dir(root, task_id))


def remove_attempt_dir(root: str, task_id: uuid.UUID | str, attempt: int) -> None:
    """Delete one attempt's directory, and the task's too once no attempt has one left."""
    remove_tree(attempt_dir(root, task_id, attempt))
    # Only when empty: another attempt of the task may have its own by now.
    with contextlib.suppress(OSError):
        os.rmdir(task_dir(root, task_id))


def remove_other_attempts(root: str, task_id: uuid.UUID | str, *, keep: int) -> None:
    """Delete the directories of a task's attempts other than `keep` (a retry's leftovers)."""
    parent = task_dir(root, task_id)
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in os.scandir(parent):
            if entry.name != str(keep):
                remove_tree(Path(entry.path))


def _entries(directory: str) -> list[os.DirEntry]:
    try:
        with os.scandir(directory) as found:
            return sorted(found, key=lambda entry: entry.name)
    except OSError as exc:
        log.warning("cannot list %s: %s", directory, exc)
        return []


def _walk(directory: str) -> Iterator[tuple[str, os.DirEntry]]:
    """Every entry under `directory` (relative path, entry), in path order, links not followed.

    A stack, not recursion: a task may nest directories deeper than Python's recursion limit.
    """
    stack: list[tuple[str, Iterator[os.DirEntry]]] = [("", iter(_entries(directory)))]
    while stack:
        prefix, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        relative = f"{prefix}{entry.name}"
        yield relative, entry
        if entry.is_dir(follow_symlinks=False):
            stack.append((relative + "/", iter(_entries(entry.path))))


def _printable(relative: str) -> str | None:
    """The path as text, or None when its bytes are not UTF-8 (it could not be a file name)."""
    try:
        os.fsencode(relative).decode("utf-8")
    except UnicodeDecodeError:
        return None
    return relative


def collect(directory: str | Path, *, max_files: int, max_bytes: int) -> Collection:
    """The regular files under `directory` within the limits (in path order) and what is not."""
    found = Collection()
    if not os.path.isdir(directory) or os.path.islink(directory):
        return found
    budget = _SCAN_ENTRY_FACTOR * max_files + 1000
    for seen, (relative, entry) in enumerate(_walk(str(directory)), start=1):
        if seen > budget:
            found.truncated = True
            found.dropped.append(Dropped("…", f"more than {budget} entries: not scanned"))
            break
        name = _printable(relative)
        if name is None:
            found.dropped.append(
                Dropped(os.fsencode(relative).decode("utf-8", "replace"), "the name is not UTF-8")
            )
            continue
        if entry.is_symlink():
            found.dropped.append(Dropped(name, "a symbolic link (never followed)"))
            continue
        if entry.is_dir(follow_symlinks=False):
            continue
        if not entry.is_file(follow_symlinks=False):
            found.dropped.append(Dropped(name, "not a regular file"))
            continue
        if len(name) > MAX_PATH_LENGTH:
            found.dropped.append(Dropped(name[:200] + "…", "the path is too long"))
            continue
        size = entry.stat(follow_symlinks=False).st_size
        if len(found.kept) >= max_files:
            found.dropped.append(Dropped(name, f"over TASKS_OUTPUT_MAX_FILES ({max_files})"))
        elif found.kept_bytes + size > max_bytes:
            found.dropped.append(Dropped(name, f"over TASKS_OUTPUT_MAX_BYTES ({max_bytes})"))
        else:
            found.kept.append(Output(name, size))
    return found


def over_limits(directory: str | Path, *, max_files: int, max_bytes: int) -> str | None:
    """Why a running attempt's /output is over its limits, or None while it is within them."""
    files = total = 0
    budget = _SCAN_ENTRY_FACTOR * max_files + 1000
    if not os.path.isdir(directory):
        return None
    for seen, (_relative, entry) in enumerate(_walk(str(directory)), start=1):
        if seen > budget:
            return f"/output holds more than {budget} entries"
        if entry.is_file(follow_symlinks=False):
            files += 1
            with contextlib.suppress(FileNotFoundError):
                total += entry.stat(follow_symlinks=False).st_size
        if files > max_files:
            return f"/output holds more than {max_files} files (TASKS_OUTPUT_MAX_FILES)"
        if total > max_bytes:
            return f"/output holds more than {max_bytes} bytes (TASKS_OUTPUT_MAX_BYTES)"
    return None


def _components(path: str) -> list[str]:
    parts = path.split("/")
    if (
        not path
        or len(path) > MAX_PATH_LENGTH
        or "\x00" in path
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise OutputPathInvalid(f"not a relative output path: {path!r}")
    return parts


def open_output(directory: str | Path, path: str) -> tuple[int, int]:
    """Open a regular file under `directory` without following any link: (fd, size).

    Raises OutputPathInvalid when the path is malformed, missing, or leads through or to
    anything but directories and a regular file. The caller closes the descriptor.
    """
    parts = _components(path)
    flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        current = os.open(directory, flags | os.O_DIRECTORY)
    except OSError as exc:
        raise OutputPathInvalid(f"no outputs: {exc.strerror}") from None
    try:
        for part in parts[:-1]:
            following = os.open(part, flags | os.O_DIRECTORY, dir_fd=current)
            os.close(current)
            current = following
        # O_NONBLOCK: opening a fifo must not wait for a writer that will never come.
        fd = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=current)
    except OSError as exc:
        reason = (
            "a link or not a directory"
            if exc.errno in (errno.ELOOP, errno.ENOTDIR)
            else (exc.strerror)
        )
        raise OutputPathInvalid(f"{path}: {reason}") from None
    finally:
        os.close(current)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise OutputPathInvalid(f"{path}: not a regular file")
    os.set_blocking(fd, True)
    return fd, info.st_size
