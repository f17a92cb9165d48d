"""Storage outages for the files tests: a local directory moved away, or S3 behind a cut link."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit


class OutageSwitch:
    """Takes one storage backend down and brings it back, the store's content intact.

    Build the apps and processes that should suffer the outage with `settings`: for S3 they
    reach the server through a link this switch can cut, for the local backend nothing changes.
    """

    def __init__(self, storage_settings: dict[str, str]) -> None:
        self.backend = storage_settings["STORAGE_BACKEND"]
        self.link: CuttableLink | None = None
        if self.backend == "s3":
            self.link = CuttableLink(storage_settings["S3_ENDPOINT_URL"])
            storage_settings = {**storage_settings, "S3_ENDPOINT_URL": self.link.url}
        self.settings = storage_settings

    def __enter__(self) -> OutageSwitch:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Shut the link down for good (S3)."""
        if self.link is not None:
            self.link.cut()

    @contextmanager
    def down(self) -> Iterator[None]:
        """Storage is unreachable inside the block: an unmounted directory, a dead S3 server."""
        if self.link is not None:
            self.link.cut()
            try:
                yield
            finally:
                self.link.restore()
            return
        root = Path(self.settings["STORAGE_DIR"]).resolve()
        away = root.with_name(root.name + "-away")
        root.rename(away)
        try:
            yield
        finally:
            # Fails if something wrote into a recreated directory meanwhile: content would mix.
            away.rename(root)


class CuttableLink:
    """A loopback TCP proxy in front of a server: cut() makes it unreachable until restore().

    While cut, nothing listens on the link's port (connections are refused, as by a stopped
    server) and every open connection is dropped, so no pooled keep-alive connection outlives
    the outage. The server behind it runs on, its content untouched.
    """

    def __init__(self, target_url: str) -> None:
        target = urlsplit(target_url)
        self._target = (target.hostname, target.port)
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._accepting: tuple[socket.socket, threading.Event, threading.Thread] | None = None
        self.port = 0
        self._listen()
        self.url = f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Stop listening and drop every open connection."""
        if self._accepting is not None:
            listener, stop, thread = self._accepting
            self._accepting = None
            stop.set()
            thread.join(timeout=5)
            listener.close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            _hang_up(connection)

    def restore(self) -> None:
        """Listen again on the same port."""
        if self._accepting is None:
            self._listen()

    def _listen(self) -> None:
        listener = socket.socket()
        # The port must be the same after an outage; a restored link rebinds it at once.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        # A timeout lets the accepting thread notice cut(); closing a socket does not wake it.
        listener.settimeout(0.1)
        self.port = listener.getsockname()[1]
        stop = threading.Event()
        thread = threading.Thread(target=self._accept, args=(listener, stop), daemon=True)
        self._accepting = (listener, stop, thread)
        thread.start()

    def _accept(self, listener: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                client, _address = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                _hang_up(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._connections |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._connections -= {source, sink}
            _hang_up(source)
            _hang_up(sink)


def _hang_up(connection: socket.socket) -> None:
    # shutdown() wakes the thread blocked in recv() on the other direction; close() would not.
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    connection.close()
