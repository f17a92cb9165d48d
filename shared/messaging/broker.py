"""RabbitMQ plumbing on py-amqp: connections, pipelined publisher confirms, waiting for input.

kombu's `confirm_publish` waits for each confirm before sending the next message: one round trip
per message (under 2,000 a second against a local broker, a few hundred over a network).
ConfirmingPublisher sends a whole batch and then waits for the confirms of all of it.
"""

from __future__ import annotations

import select
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import amqp
from kombu.utils.url import parse_url


class PublishError(RuntimeError):
    """The broker nacked, returned or did not confirm a publish in time; nothing is settled."""


def connect(url: str, *, name: str, heartbeat: int = 30, timeout: float = 5.0) -> amqp.Connection:
    """Open a py-amqp connection from an `amqp://user:pass@host:port/vhost` URL."""
    parts = parse_url(url)
    connection = amqp.Connection(
        host=f"{parts['hostname'] or '127.0.0.1'}:{parts['port'] or 5672}",
        userid=parts["userid"] or "guest",
        password=parts["password"] or "guest",
        virtual_host=parts["virtual_host"] or "/",
        ssl=parts["transport"] == "amqps",
        heartbeat=heartbeat,
        connect_timeout=timeout,
        # A broker that stops reading (a resource alarm) makes writes fail instead of hang.
        write_timeout=30,
        client_properties={"connection_name": name},
    )
    # With connection.blocked negotiated, py-amqp polls the socket before every publish; a
    # blocked connection shows up as confirms timing out anyway.
    connection.negotiate_capabilities = {
        **connection.negotiate_capabilities,
        "connection.blocked": False,
    }
    connection.connect()
    read_ahead(connection)
    return connection


def close_quietly(connection: amqp.Connection | None) -> None:
    """Close a connection that may already be broken, ignoring errors."""
    if connection is None:
        return
    try:
        connection.close()
    except Exception:  # noqa: BLE001 - a broken connection cannot be closed politely
        try:
            connection.collect()
        except Exception:  # noqa: BLE001
            pass


#: Bytes asked of the socket per read once read-ahead is on (see read_ahead).
READ_AHEAD = 8 * 1024


def read_ahead(connection: amqp.Connection, size: int = READ_AHEAD) -> None:
    """Make the connection read up to `size` bytes per recv() instead of exactly what it parses.

    py-amqp reads a frame in three exact recv() calls (header, payload, end byte): nine system
    calls per delivered message, a third of a consumer's time. Asking for more fills the
    transport's own read buffer, which py-amqp's `_read` already serves from first, so every
    frame parser keeps working unchanged; has_buffered_input() accounts for that buffer, since
    select() cannot see it. Kept small because `_read` copies what remains of the buffer on
    every read. Pinned py-amqp 5.4: re-check this if its transport changes.
    """
    transport = connection.transport
    recv = transport._quick_recv

    def recv_ahead(wanted: int, *flags) -> bytes:
        return recv(max(wanted, size), *flags)

    transport._quick_recv = recv_ahead


def has_buffered_input(connection: amqp.Connection) -> bool:
    """Whether bytes already read from the socket (read ahead, or TLS records) wait to be parsed."""
    transport = connection.transport
    if transport._read_buffer:
        return True
    pending = getattr(transport.sock, "pending", None)
    return bool(pending and pending())


def wait_readable(
    connection: amqp.Connection, timeout: float, *, extra: Iterable[int] = ()
) -> set[int]:
    """Wait until the broker socket or one of `extra` file descriptors is readable.

    Returns the readable descriptors (the broker's is `connection.sock.fileno()`).
    """
    fd = connection.sock.fileno()
    if has_buffered_input(connection):
        return {fd}
    readable, _, _ = select.select([fd, *extra], [], [], max(timeout, 0))
    return set(readable)


def drain_available(connection: amqp.Connection, *, limit: int = 3000) -> int:
    """Read and dispatch the frames that have already arrived, without waiting for more.

    Reads frame by frame (a delivery is three) rather than method by method: drain_events()
    would block for the next frame after a lone heartbeat. Returns the number of frames read.
    """
    frames = 0
    fd = connection.sock.fileno()
    transport = connection.transport
    # One socket timeout for the whole drain, not one set and reset per frame (blocking_read).
    with transport.having_timeout(5):
        while frames < limit:
            if not has_buffered_input(connection):
                readable, _, _ = select.select([fd], [], [], 0)
                if not readable:
                    break
            # Part of a frame is here and the rest is on its way, so this read does not idle.
            connection.on_inbound_frame(transport.read_frame())
            frames += 1
    return frames


@contextmanager
def _corked(connection: amqp.Connection, limit: int = 64 * 1024) -> Iterator[None]:
    """Gather the frames written inside the block into few large writes.

    py-amqp makes one sendall() per publish; on a batch that was a third of the relay's time.
    It writes through `transport._write` (looked up on each call) from a reused buffer, hence
    the copies. Pinned py-amqp 5.4: re-check this if it changes how it writes.
    """
    transport = connection.transport
    send = transport._write
    pending: list[bytes] = []
    size = 0

    def gather(data) -> None:
        nonlocal size
        pending.append(bytes(data))
        size += len(data)
        if size >= limit:
            flush()

    def flush() -> None:
        nonlocal size
        if pending:
            send(b"".join(pending))
            pending.clear()
            size = 0

    transport._write = gather
    try:
        yield
    finally:
        transport._write = send
        flush()


class ConfirmingPublisher:
    """A confirm-mode channel that publishes a batch, then waits for every confirm at once.

    After a PublishError the channel's state is unknown: close the connection and start over.
    """

    def __init__(self, connection: amqp.Connection, *, timeout: float = 10.0) -> None:
        self.connection = connection
        self.timeout = timeout
        self.channel = connection.channel()
        self.channel.confirm_select()
        self._last_tag = 0
        self._unconfirmed: set[int] = set()
        self._nacked = 0
        self._returned: list[str] = []
        self.channel.events["basic_ack"].add(self._on_ack)
        self.channel.events["basic_nack"].add(self._on_nack)
        self.channel.events["basic_return"].add(self._on_return)

    def _settle(self, delivery_tag: int, multiple: bool) -> int:
        if multiple:
            before = len(self._unconfirmed)
            self._unconfirmed = {tag for tag in self._unconfirmed if tag > delivery_tag}
            return before - len(self._unconfirmed)
        if delivery_tag in self._unconfirmed:
            self._unconfirmed.discard(delivery_tag)
            return 1
        return 0

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._nacked += self._settle(delivery_tag, multiple)

    def _on_return(self, _exc, exchange: str, routing_key: str, message: amqp.Message) -> None:
        self._returned.append(f"{exchange or '(default)'}/{routing_key}")

    def publish(
        self,
        messages: Iterable[tuple[str, str, amqp.Message]],
        *,
        mandatory: bool = False,
    ) -> int:
        """Publish (exchange, routing_key, message) triples; return once the broker has them all.

        Raises PublishError if any is nacked, returned (with `mandatory`) or not confirmed in
        time: the caller must then treat the whole batch as unpublished.
        """
        self._nacked = 0
        self._returned = []
        count = 0
        with _corked(self.connection):
            for exchange, routing_key, message in messages:
                self.channel.basic_publish(
                    message, exchange=exchange, routing_key=routing_key, mandatory=mandatory
                )
                # A confirm-mode channel numbers publishes 1, 2, 3... and confirms by that number.
                self._last_tag += 1
                self._unconfirmed.add(self._last_tag)
                count += 1
        deadline = time.monotonic() + self.timeout
        while self._unconfirmed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishError(
                    f"{len(self._unconfirmed)} of {count} publishes not confirmed "
                    f"within {self.timeout:g}s"
                )
            try:
                self.connection.drain_events(timeout=remaining)
            except TimeoutError:
                continue
        if self._nacked:
            raise PublishError(f"the broker nacked {self._nacked} of {count} publishes")
        if self._returned:
            raise PublishError(f"unroutable: {', '.join(self._returned)}")
        return count
