"""A watcher: one thread that follows one RUNNING task's container from adoption to removal.

It streams stdout and stderr into the task's logs every TASKS_LOG_FLUSH_SECONDS, samples CPU and
memory, kills the container on timeout (counted from its start) or cancel, stores the outcome,
then removes the container. The monitor wakes it at once when the engine says the container
died; its own periodic look at the container is only the safety net for a missed event. The
output is followed live from the first flush on; a task that ends before that is read once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from services.tasks import dispatch, logs, outputs, transitions
from services.tasks.containers import (
    ContainerEngine,
    ContainerGone,
    ContainerInfo,
    EngineUnavailable,
)
from services.tasks.models import LogStream
from shared.db import UnitOfWork

log = logging.getLogger(__name__)


#: A container's exit code when its process was SIGKILLed (128 + 9): by us, or the OOM killer.
SIGKILLED = 137
#: How long a SIGKILLed container's watcher waits for the engine to report an OOM kill.
OOM_REPORT_GRACE_SECONDS = 1.0


class Watcher(threading.Thread):
    """Follows one RUNNING task's container until its outcome is stored and it is removed."""

    def __init__(
        self,
        attempt: transitions.RunningAttempt,
        *,
        engine: ContainerEngine,
        uow: Callable[[], UnitOfWork],
        settings: transitions.ExecutionSettings,
        flush_seconds: float,
        sample_seconds: float,
        on_done: Callable[[Watcher], None],
        fresh: bool = False,
    ) -> None:
        super().__init__(name=f"watch-{attempt.task_id}", daemon=True)
        self.attempt = attempt
        self.task_id = attempt.task_id
        self.container_name = attempt.container_name
        self.engine = engine
        self.uow = uow
        self.settings = settings
        self.flush_seconds = flush_seconds
        self.sample_seconds = sample_seconds
        self.on_done = on_done
        #: The attempt has just started: none of its output is stored yet.
        self.fresh = fresh
        self.cancel_requested = attempt.cancel_requested
        #: Set when there is news: the container died, or a cancel was asked for.
        self.wake = threading.Event()
        self.buffers: dict[LogStream, bytearray] = {s: bytearray() for s in LogStream}
        #: Bytes of each stream read from the start of the container's log.
        self.received: dict[LogStream, int] = {s: 0 for s in LogStream}
        #: Bytes of each stream already stored (a watcher taking over): read but not stored.
        self.skip: dict[LogStream, int] = {s: 0 for s in LogStream}
        #: Bytes of each stream never stored (beyond a buffer's cap, or never read): dropped.
        self.lost: dict[LogStream, int] = {s: 0 for s in LogStream}
        self.lock = threading.Lock()
        #: Streams read to their end from the exited container's log: followers stop there.
        self.complete: dict[LogStream, bool] = {s: False for s in LogStream}
        self.killed_for: str | None = None
        #: The exit code the engine's die event gave, once it came.
        self.died_with: int | None = None
        #: The engine reported an OOM kill in the container (maybe of a child process only).
        self.oom_seen = False
        self.previous_cpu: tuple[int, int] | None = None

    def container_died(self, exit_code: int | None) -> None:
        """The engine said the container's process ended: stop waiting for the next look."""
        self.died_with = exit_code
        self.wake.set()

    def ran_out_of_memory(self) -> None:
        """The engine said a process of the container was OOM-killed: its end needs a look."""
        self.oom_seen = True

    def request_cancel(self) -> None:
        """The owner asked to cancel the task: kill its container now."""
        self.cancel_requested = True
        self.wake.set()

    def run(self) -> None:
        """Watch until the outcome is stored; a failure is logged and the next pass retries."""
        try:
            self._watch()
        except Exception:
            log.exception("watcher of task %s failed; the next pass retries", self.task_id)
        finally:
            self.on_done(self)

    def _watch(self) -> None:
        # Always read the log from its beginning: Docker's `since` is whole seconds and a
        # container's first output can predate its StartedAt, so a time-based resume point
        # loses output. A watcher taking over instead skips the bytes already stored.
        if not self.fresh:
            self.skip = transitions.stored_log_bytes(
                self.uow(), task_id=self.task_id, started_at=self.attempt.started_at
            )
        if any(self.skip.values()):
            log.info("task %s: resuming its logs after %s stored bytes", self.task_id, self.skip)
        # Not looked at until woken or a flush later, and followed only if still running then:
        # a task that ends at once costs the engine no follow stream (its time is throughput).
        # The look comes right after the wait, so a container seen exited goes uncancelled.
        readers: list[threading.Thread] = []
        next_sample = time.monotonic() + self.flush_seconds
        while True:
            self._flush()
            if self.killed_for is None and self.cancel_requested:
                self._kill("cancel")
            elif self.killed_for is None and datetime.now(UTC) >= self.attempt.deadline:
                self._kill("timeout")
            if time.monotonic() >= next_sample:
                self._sample()
                self._check_outputs()
                next_sample = time.monotonic() + self.sample_seconds
            self.wake.wait(self.flush_seconds)
            self.wake.clear()
            try:
                container = self._look()
            except ContainerGone:
                self._finish(transitions.CONTAINER_LOST)
                return
            if container.exited:
                break
            if not readers:
                readers = [
                    threading.Thread(target=self._read, args=(s,), daemon=True) for s in LogStream
                ]
                for reader in readers:
                    reader.start()
        self._read_rest()
        state = self._exit_state(container.state)
        self._finish(transitions.outcome_of(state, killed_for=self.killed_for))

    def _exit_state(self, state: dict) -> dict:
        """The exited container's State, counting an OOM kill the engine reported late."""
        if state.get("OOMKilled") or state.get("ExitCode") != SIGKILLED or self.killed_for:
            return state
        # dockerd's oom and exit events race: a container inspected right after its exit may not
        # say OOMKilled yet. A process SIGKILLed that nobody here killed, in a container the
        # engine reported out of memory, was the kernel's OOM killer.
        deadline = time.monotonic() + OOM_REPORT_GRACE_SECONDS
        while not self.oom_seen and time.monotonic() < deadline:
            time.sleep(0.1)
            try:
                state = self.engine.inspect(self.container_name).state
            except (ContainerGone, EngineUnavailable):
                break
            if state.get("OOMKilled"):
                return state
        return {**state, "OOMKilled": True} if self.oom_seen else state

    def _look(self) -> ContainerInfo:
        """The container now; raises ContainerGone."""
        if self.died_with == 0 and not self.oom_seen:
            # A clean exit needs nothing more from the engine (no OOM, no error to read).
            return ContainerInfo(
                id="", name=self.container_name, status="exited", state={"ExitCode": 0}
            )
        return self.engine.inspect(self.container_name)

    def _read(self, stream: LogStream) -> None:
        """Copy one stream of the container's output into its buffer as it arrives."""
        try:
            for chunk in self.engine.follow_output(self.container_name, stream.value):
                with self.lock:
                    if self.complete[stream]:
                        return
                    self._take(stream, chunk)
        except EngineUnavailable:
            log.warning("lost the %s of task %s", stream, self.task_id, exc_info=True)

    def _read_rest(self) -> None:
        """Take the output the followers have not delivered, from the exited container's log."""
        # The engine sends `die` once the output is all in its log, so a plain read now is
        # complete; a follow stream may still be catching up (dockerd 20.10 can even end one
        # before a fast writer's last lines), so it stops counting from here.
        # A bounded read: the end of each stream, no more than the task's logs keep.
        try:
            output = self.engine.read_output(
                self.container_name, max_bytes=self.settings.log_max_bytes
            )
        except EngineUnavailable:
            log.warning("could not read the rest of the output of task %s", self.task_id)
            return
        with self.lock:
            for stream in LogStream:
                data = output.data.get(stream.value, b"")
                missed = output.total.get(stream.value, 0) - self.received[stream]
                if missed > len(data):
                    self._pass_over(stream, missed - len(data))
                if missed > 0:
                    self._take(stream, data[len(data) - min(missed, len(data)) :])
                self.complete[stream] = True

    def _take(self, stream: LogStream, data: bytes) -> None:
        """Account for the next bytes of a stream; buffer those not stored yet (lock held)."""
        start = self.received[stream]
        self.received[stream] += len(data)
        fresh = data[max(self.skip[stream] - start, 0) :]
        if fresh:
            buffer = self.buffers[stream]
            buffer += fresh
            # A stream written faster than it is stored keeps only what its logs could hold.
            if len(buffer) > self.settings.log_max_bytes:
                cut = logs.utf8_boundary(buffer, len(buffer) - self.settings.log_max_bytes)
                del buffer[:cut]
                self.lost[stream] += cut

    def _pass_over(self, stream: LogStream, size: int) -> None:
        """Account for the next bytes of a stream as never read (lock held)."""
        start = self.received[stream]
        self.received[stream] += size
        self.lost[stream] += max(start + size - max(self.skip[stream], start), 0)

    def _buffered(self, *, final: bool = False) -> dict[LogStream, bytes]:
        """Take what the buffers hold (until the last take, only whole UTF-8 characters)."""
        with self.lock:
            return self._take_buffers(final=final)

    def _take_buffers(self, *, final: bool) -> dict[LogStream, bytes]:
        """_buffered's work (lock held)."""
        batches = {}
        for stream, buffer in self.buffers.items():
            # A character split across reads waits for its end, so every stored chunk
            # decodes on its own (live readers get whole characters).
            end = len(buffer) if final else logs.complete_utf8_length(buffer)
            if end:
                batches[stream] = bytes(buffer[:end])
                del buffer[:end]
        return batches

    def _flush(self) -> None:
        """Store what the buffers hold, in one transaction (one event) for both streams."""
        with self.lock:
            # Taken together: the bytes lost come before what the buffers hold now.
            lost, self.lost = self.lost, {s: 0 for s in LogStream}
            batches = self._take_buffers(final=False)
        if batches or any(lost.values()):
            logs.append_output(
                self.uow(),
                task_id=self.task_id,
                batches=batches,
                max_bytes=self.settings.log_max_bytes,
                lost=lost,
            )

    def _kill(self, reason: str) -> None:
        log.info("task %s: killing its container (%s)", self.task_id, reason)
        self.killed_for = reason
        try:
            self.engine.kill(self.container_name)
        except EngineUnavailable:
            # The next pass retries.
            self.killed_for = None
            raise

    def _sample(self) -> None:
        stats = self.engine.stats(self.container_name)
        if stats is None:
            return
        cpu = stats.get("cpu_stats") or {}
        total = (cpu.get("cpu_usage") or {}).get("total_usage")
        system = cpu.get("system_cpu_usage")
        percent = None
        if total is not None and system is not None:
            if self.previous_cpu is not None:
                cpu_delta = total - self.previous_cpu[0]
                system_delta = system - self.previous_cpu[1]
                cores = cpu.get("online_cpus") or 1
                if system_delta > 0:
                    percent = round(100.0 * cpu_delta / system_delta * cores, 2)
            self.previous_cpu = (total, system)
        memory = (stats.get("memory_stats") or {}).get("usage")
        transitions.record_usage(
            self.uow(), task_id=self.task_id, cpu_percent=percent, memory_bytes=memory
        )

    def _check_outputs(self) -> None:
        """Kill the task once its /output is over TASKS_OUTPUT_MAX_FILES or _BYTES."""
        if self.killed_for is not None or not self.attempt.attempt:
            return
        directory = outputs.attempt_dir(
            self.settings.output_dir, self.task_id, self.attempt.attempt
        )
        reason = outputs.over_limits(
            directory,
            max_files=self.settings.output_max_files,
            max_bytes=self.settings.output_max_bytes,
        )
        if reason is not None:
            self._kill(transitions.OUTPUT_LIMIT_KILL + reason)

    def _finish(self, outcome: transitions.Outcome) -> None:
        if any(self.lost.values()):
            self._flush()  # the final store takes output only, so lost bytes go first
        delay = transitions.finish_attempt(
            self.uow(),
            task_id=self.task_id,
            name=self.container_name,
            outcome=outcome,
            settings=self.settings,
            output=self._buffered(final=True),
        )
        if delay is not None:
            dispatch.send_start(str(self.task_id), countdown=delay)
        # Only now that logs and result are stored does the container go (off the status path).
        self.engine.remove(self.container_name)
