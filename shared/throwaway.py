"""Throwaway infrastructure for tests and drills: RabbitMQ, PostgreSQL, Redis, a cuttable proxy.

A test or drill that must restart or reconfigure the broker, the database or Redis starts one of
these instead of touching the machine's shared one, which everyone else keeps using. A test of a
database outage may instead put a `TcpProxy` between its processes and PostgreSQL and cut it.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path

from shared.processes import ManagedProcess

#: Where rabbitmqctl's own Erlang node listens (every node's CLI calls share it).
CLI_DIST_PORTS = range(35672, 35683)


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback TCP ports (none of rabbitmqctl's own)."""
    ports: list[int] = []
    sockets = []
    try:
        # All held open at once, so no two of them are the same port.
        while len(ports) < count:
            sock = socket.socket()
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
            if (port := sock.getsockname()[1]) not in CLI_DIST_PORTS:
                ports.append(port)
    finally:
        for sock in sockets:
            sock.close()
    return ports


@dataclass
class RabbitNode:
    """A throwaway RabbitMQ node on loopback ports, own data, logs and cookie; a ManagedProcess."""

    root: Path
    name: str
    port: int
    scripts: Path
    env: dict[str, str]
    process: ManagedProcess

    @classmethod
    def configure(
        cls,
        root: Path,
        *,
        consumer_timeout_ms: int | None = None,
        channel_tick_ms: int | None = None,
    ) -> RabbitNode:
        """Write the node's config under `root` (short consumer_timeout, say); nothing runs yet."""
        # A non-root PATH often lacks /usr/sbin, where Debian puts it.
        server = shutil.which("rabbitmq-server") or shutil.which(
            "rabbitmq-server", path="/usr/sbin:/usr/lib/rabbitmq/bin"
        )
        if server is None:
            raise RuntimeError("rabbitmq-server is not installed")
        # Debian's /usr/sbin wrappers re-run everything as the rabbitmq user in /var/lib/rabbitmq
        # with its cookie; the real scripts sit beside the wrapper's target and run as anyone.
        scripts = Path(os.path.realpath(server)).parent
        name = f"dockyard-tmp-{uuid.uuid4().hex[:8]}@localhost"
        port, dist_port = free_ports(2)
        home = root / "home"
        home.mkdir()
        cookie = os.open(home / ".erlang.cookie", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        os.write(cookie, uuid.uuid4().hex.upper().encode())
        os.close(cookie)
        (root / "enabled_plugins").write_text("[].\n")
        conf = f"listeners.tcp.default = 127.0.0.1:{port}\n"
        if consumer_timeout_ms is not None:
            conf += f"consumer_timeout = {consumer_timeout_ms}\n"
        (root / "rabbitmq.conf").write_text(conf)
        rabbit_env = f"{{channel_tick_interval, {channel_tick_ms}}}" if channel_tick_ms else ""
        (root / "advanced.config").write_text(f"[{{rabbit, [{rabbit_env}]}}].\n")
        (root / "rabbitmq-env.conf").write_text("")
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RABBITMQ_", "ERL_")) and key != "HOME"
        }
        env = {
            **inherited,
            "HOME": str(home),
            # An empty env file: the system's one names the shared node (rabbit@localhost).
            "RABBITMQ_CONF_ENV_FILE": str(root / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": name,
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(root / "log"),
            "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(root / "advanced.config"),
            # No plugins: the management plugin's fixed port may be the shared node's.
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(root / "plugins-expand"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        # The server script's own output (start-up errors land there) is the process's log.
        process = ManagedProcess(
            "rabbitmq-server",
            [scripts / "rabbitmq-server"],
            env=env,
            log=root / "server.out",
            cwd=root,
        )
        return cls(root=root, name=name, port=port, scripts=scripts, env=env, process=process)

    @property
    def url(self) -> str:
        """The node's AMQP URL."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def ctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run rabbitmqctl against this node (not checked)."""
        return subprocess.run(
            [str(self.scripts / "rabbitmqctl"), "-n", self.name, "-q", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def rows(self, kind: str, *columns: str) -> list[dict]:
        """`rabbitmqctl list_<kind> <columns>` as dicts."""
        result = self.ctl(f"list_{kind}", *columns, "--formatter", "json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def start(self, timeout: float = 90) -> None:
        """Boot the node and wait until RabbitMQ runs on it; raises RuntimeError otherwise."""
        self.process.start()
        # await_startup fails at once while the node is not yet registered with epmd, and
        # then blocks until the broker has booted.
        self.process.wait_ready(
            until=lambda: self.ctl("await_startup", timeout=timeout).returncode == 0,
            timeout=timeout,
        )

    def timeouts(self) -> str:
        """The consumer_timeout and channel_tick_interval the running node uses, as Erlang."""
        return self.ctl(
            "eval",
            "{application:get_env(rabbit, consumer_timeout),"
            " application:get_env(rabbit, channel_tick_interval)}.",
        ).stdout.strip()

    def stop(self) -> None:
        """Stop the node politely (rabbitmqctl), then as the harness stops any process."""
        if self.process.running:
            try:
                self.ctl("stop", timeout=30)
            except subprocess.TimeoutExpired:
                pass
        self.process.stop(timeout=30)

    def log(self) -> str:
        """The node's own log file."""
        path = self.root / "log" / f"{self.name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


class TcpProxy:
    """A loopback TCP proxy in front of a server (PostgreSQL, say) that a test can cut and restore.

    `cut()` closes every proxied connection and stops listening, as a restarting server does:
    connections in use break and new ones are refused. `restore()` listens again on the same
    port. Each connection is two threads copying bytes; meant for a handful of connections.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        (self.port,) = free_ports(1)
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None

    def url_for(self, url: str) -> str:
        """`url` (a database URL, say) with its host and port replaced by the proxy's."""
        parts = urllib.parse.urlsplit(url)
        userinfo, _, _ = parts.netloc.rpartition("@")
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    def start(self) -> TcpProxy:
        """Listen and forward (again after `cut`)."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._acceptor = threading.Thread(
            target=self._accept, args=(listener,), name="proxy-accept", daemon=True
        )
        self._acceptor.start()
        return self

    restore = start

    def cut(self) -> None:
        """Stop listening and break every proxied connection."""
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() wakes the accept() blocked in the other thread; close() alone may not.
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        if self._acceptor is not None:
            self._acceptor.join(5)
            self._acceptor = None
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    stop = cut

    def connections(self) -> int:
        """Proxied connections open now (each counted once)."""
        with self._lock:
            return len(self._sockets) // 2

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.target, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    server.close()
                    return
                self._sockets |= {client, server}
            for source, sink in ((client, server), (server, client)):
                threading.Thread(
                    target=self._pipe, args=(source, sink), name="proxy-pipe", daemon=True
                ).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets -= {source, sink}
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


def _postgres_bin() -> Path:
    """POSTGRES_BIN, else the newest of Debian's /usr/lib/postgresql/<version>/bin."""
    if configured := os.environ.get("POSTGRES_BIN"):
        return Path(configured)
    found = [
        path for path in Path("/usr/lib/postgresql").glob("*/bin") if path.parent.name.isdigit()
    ]
    return max(
        found, key=lambda path: int(path.parent.name), default=Path("/usr/lib/postgresql/15/bin")
    )


#: Where PostgreSQL's server programs are (initdb, postgres, pg_isready).
POSTGRES_BIN = _postgres_bin()


def _answers_tcp(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@dataclass
class PostgresNode:
    """A throwaway PostgreSQL cluster on a loopback port, trusting loopback; a ManagedProcess.

    As root the server runs as the `postgres` user (PostgreSQL refuses root), its data
    directory under `root` owned by that user.
    """

    root: Path
    port: int
    process: ManagedProcess
    user: str | None

    @classmethod
    def configure(cls, root: Path) -> PostgresNode:
        """initdb a cluster under `root` (superuser postgres, trust on loopback); not started."""
        data = root / "data"
        user = "postgres" if os.geteuid() == 0 else None
        prefix = ["runuser", "-u", user, "--"] if user else []
        if user:
            entry = pwd.getpwnam(user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [*prefix, str(POSTGRES_BIN / "initdb"), "-D", str(data), "-U", "postgres",
             "--auth=trust", "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True, cwd=root,
        )  # fmt: skip
        (port,) = free_ports(1)
        argv = [
            *prefix, str(POSTGRES_BIN / "postgres"), "-D", str(data), "-p", str(port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={root}",
            "-c", "fsync=off", "-c", "max_connections=300",
        ]  # fmt: skip
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        log = root / "server.log"
        log.touch()
        if user:
            os.chown(log, entry.pw_uid, entry.pw_gid)
        process = ManagedProcess("postgres", argv, env=env, log=log, cwd=root)
        return cls(root=root, port=port, process=process, user=user)

    @property
    def admin_url(self) -> str:
        """The superuser's URL (the `postgres` database)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def host(self) -> str:
        """host:port, as TestEnvironment.pg_host wants it."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        """Start the server and wait until it accepts connections."""
        self.process.start()
        self.process.wait_ready(until=self._ready, timeout=timeout)

    def _ready(self) -> bool:
        return (
            subprocess.run(
                [str(POSTGRES_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                check=False,
            ).returncode
            == 0
        )

    def stop(self) -> None:
        """Stop the server (SIGTERM is PostgreSQL's smart shutdown; SIGINT would be fast)."""
        if self.process.running:
            # Fast shutdown: smart waits for every client, and the drill's never leave.
            self.process.signal(2)
        self.process.stop(timeout=30)


@dataclass
class RedisNode:
    """A throwaway redis-server on a loopback port, without persistence; a ManagedProcess."""

    root: Path
    port: int
    process: ManagedProcess

    @classmethod
    def configure(cls, root: Path) -> RedisNode:
        """Choose a port for a server under `root`; nothing runs yet."""
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server is not installed")
        (port,) = free_ports(1)
        argv = [
            server, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
            "--appendonly", "no", "--dir", str(root),
        ]  # fmt: skip
        process = ManagedProcess("redis-server", argv, env=dict(os.environ), log=root / "redis.log")
        return cls(root=root, port=port, process=process)

    @property
    def url(self) -> str:
        """The server's URL (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30) -> None:
        """Start the server and wait until its port accepts connections."""
        self.process.start()
        self.process.wait_ready(until=lambda: _answers_tcp(self.port), timeout=timeout)

    def stop(self) -> None:
        """Stop the server (it keeps nothing: a restart comes back empty)."""
        self.process.stop(timeout=15)
        # The port must be free again before a restart binds it.
        deadline = time.monotonic() + 10
        while _answers_tcp(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)
