"""A task's input file on the engine's host: fetched from files before the start, removed after.

The start (launcher.start_attempt) fetches the leased file over files' internal REST endpoint,
with the tasks service's own credential (TASKS_TO_FILES_SECRET, never the gateway's), into
TASKS_INPUT_DIR/<task id>/ (the file 0444, the directory 0555), and the container gets that
directory bind-mounted read-only at /input (containers.container_options). This assumes the
processes that start containers and the Docker engine see TASKS_INPUT_DIR at the same path: the
same host, or the same host path bind-mounted into their containers (docker-compose.yml). No
shared disk with files is assumed. The monitor removes the directory once the task has ended,
and any left behind on its reconcile.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import tempfile
import time
import uuid
from typing import Any

import requests

from services.tasks.containers import ContainerSpec, EngineUnavailable, TaskRejected, input_host_dir
from services.tasks.input_files import INPUT_FILE_UNAVAILABLE
from shared.service_identity import HEADER, ServiceCredentials

log = logging.getLogger(__name__)

#: A half-written staging directory older than this is a crashed start's: the reconcile removes it.
STAGING_ABANDONED_SECONDS = 600
_CHUNK_BYTES = 64 * 1024


class InputFetchFailed(EngineUnavailable):
    """Files could not serve the input file just now: the start is retried like an engine outage."""

    def __init__(self, message: str) -> None:
        super().__init__("FILES_UNAVAILABLE", message)


def _remove_tree(path: str) -> None:
    """Remove a staged directory, read-only as it is (nothing if it is gone, or goes meanwhile)."""

    # Two removers may meet: a start that failed cleans up after itself while the monitor's
    # pass removes the inputs of every ended task. What the other one took is not an error.
    def writable_again(function: Any, failed: str, exc_info: Any) -> None:
        if isinstance(exc_info[1], FileNotFoundError):
            return
        with contextlib.suppress(FileNotFoundError):
            os.chmod(os.path.dirname(failed), stat.S_IRWXU)
            function(failed)

    if os.path.isdir(path):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path, stat.S_IRWXU)
            shutil.rmtree(path, onerror=writable_again)


class InputStaging:
    """Writes tasks' input files under TASKS_INPUT_DIR, and removes them."""

    def __init__(self, *, root: str, files_url: str, files_secret: str, timeout: float) -> None:
        self.root = os.path.abspath(root)
        self.files_url = files_url.rstrip("/")
        self.credentials = ServiceCredentials({"files": files_secret}, caller="tasks")
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Any) -> InputStaging:
        """The staging TasksSettings describe."""
        return cls(
            root=settings.INPUT_DIR,
            files_url=settings.FILES_SERVICE_URL,
            files_secret=settings.TASKS_TO_FILES_SECRET,
            timeout=settings.INPUT_FETCH_TIMEOUT_SECONDS,
        )

    def stage(self, spec: ContainerSpec) -> None:
        """Fetch the task's input file into its directory, unless an earlier start did.

        Raises TaskRejected when files no longer serves it to the task (deleted, lease gone),
        InputFetchFailed when files cannot answer now.
        """
        name = spec.input_filename
        if name is None:
            return
        if name in ("", ".", "..") or "/" in name or "\x00" in name:
            raise TaskRejected(INPUT_FILE_UNAVAILABLE, f"The input file name {name!r} is unusable.")
        target = input_host_dir(self.root, spec.task_id)
        if os.path.isfile(os.path.join(target, name)):
            return
        os.makedirs(self.root, exist_ok=True)
        # Written aside and renamed into place: a start killed mid-fetch leaves no half file
        # where the container would read it.
        staging = tempfile.mkdtemp(prefix=f".{spec.task_id}.", dir=self.root)
        try:
            path = os.path.join(staging, name)
            self._fetch(spec, path)
            os.chmod(path, 0o444)
            os.chmod(staging, 0o555)
            try:
                os.rename(staging, target)
            except OSError:
                if not os.path.isfile(os.path.join(target, name)):
                    raise
                _remove_tree(staging)  # another start of the task staged it meanwhile
        except BaseException:
            _remove_tree(staging)
            raise

    def _fetch(self, spec: ContainerSpec, path: str) -> None:
        url = f"{self.files_url}/internal/v1/files/{spec.input_file_id}/content"
        headers = {HEADER: self.credentials.token_for("files", None)}
        try:
            with requests.get(
                url,
                params={"task": str(spec.task_id)},
                headers=headers,
                stream=True,
                timeout=self.timeout,
            ) as response:
                if response.status_code in (404, 409, 410):
                    raise TaskRejected(
                        INPUT_FILE_UNAVAILABLE,
                        "The input file is no longer available to this task "
                        f"(files answered {response.status_code}).",
                    )
                if response.status_code != 200:
                    raise InputFetchFailed(f"files answered {response.status_code}")
                written = 0
                with open(path, "wb") as out:
                    for chunk in response.iter_content(_CHUNK_BYTES):
                        out.write(chunk)
                        written += len(chunk)
                expected = response.headers.get("Content-Length")
                if expected is not None and written != int(expected):
                    raise InputFetchFailed(f"got {written} of {expected} bytes")
        except requests.RequestException as exc:
            raise InputFetchFailed(f"files unreachable: {exc}") from None

    def remove(self, task_id: uuid.UUID | str) -> None:
        """Remove the task's input directory (nothing if it has none)."""
        path = input_host_dir(self.root, task_id)
        if os.path.isdir(path):
            _remove_tree(path)
            log.info("removed the input directory of task %s", task_id)

    def holds(self, task_id: uuid.UUID | str) -> bool:
        """Whether the task has an input directory here."""
        return os.path.isdir(input_host_dir(self.root, task_id))

    def staged_tasks(self) -> set[uuid.UUID]:
        """The tasks with an input directory; abandoned half-written ones are removed."""
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return set()
        staged = set()
        for entry in entries:
            if entry.name.startswith("."):
                if time.time() - entry.stat().st_mtime > STAGING_ABANDONED_SECONDS:
                    _remove_tree(entry.path)
                continue
            try:
                staged.add(uuid.UUID(entry.name))
            except ValueError:
                continue
        return staged
