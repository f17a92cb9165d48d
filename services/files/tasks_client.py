"""The files service's client of the tasks service: it pulls a finished task's /output files.

Calls `GET /internal/v1/tasks/<id>/outputs/<path>` with the files service's own credential,
signed with FILES_TO_TASKS_SECRET (shared/service_identity.py): never as the gateway.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import requests

from shared.service_identity import HEADER, ServiceCredentials

#: Seconds to connect and between two reads of an output.
_TIMEOUT = (5.0, 60.0)
_PIECE_BYTES = 64 * 1024


class OutputMissing(Exception):
    """The tasks service has no such output (the task or its directory is gone)."""


class TasksUnavailable(Exception):
    """The tasks service could not be reached or failed: worth retrying."""


class _ResponseStream:
    """A streamed response body as the `read(size)` stream storage.put takes."""

    def __init__(self, response: requests.Response) -> None:
        self._pieces = response.iter_content(_PIECE_BYTES)
        self._pending = b""

    def read(self, size: int = -1, /) -> bytes:
        try:
            while size < 0 or len(self._pending) < size:
                piece = next(self._pieces, None)
                if piece is None:
                    break
                self._pending += piece
        except requests.RequestException as exc:
            raise TasksUnavailable(f"reading an output failed: {exc}") from None
        if size < 0:
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:size], self._pending[size:]
        return data


class TaskOutputSource:
    """Opens a finished task's outputs on the tasks service."""

    def __init__(self, base_url: str, secret: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = ServiceCredentials({"tasks": secret}, caller="files")
        self.session = requests.Session()

    @contextmanager
    def open(self, task_id: str, path: str) -> Iterator[_ResponseStream]:
        """The output's content as a stream; OutputMissing, TasksUnavailable."""
        url = f"{self.base_url}/internal/v1/tasks/{quote(task_id)}/outputs/{quote(path)}"
        headers = {HEADER: self.credentials.token_for("tasks", None)}
        try:
            response = self.session.get(url, headers=headers, stream=True, timeout=_TIMEOUT)
        except requests.RequestException as exc:
            raise TasksUnavailable(f"tasks service unreachable: {exc}") from None
        with response:
            if response.status_code == 404:
                raise OutputMissing(f"{task_id}/{path}")
            if response.status_code != 200:
                raise TasksUnavailable(f"tasks service answered {response.status_code}")
            yield _ResponseStream(response)
