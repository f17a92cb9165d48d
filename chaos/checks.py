"""What became of accepted work, read from the run's own database, broker metrics and engine.

Final states: a file PROCESSED or FAILED, a task in a terminal status, a workflow finished.
Completed means the good end (PROCESSED, SUCCEEDED, every step SUCCEEDED); anything else that
ended, or nothing that ended, is lost. Duplicates are the redeliveries the consumers' inboxes
dropped, as each consumer logged them (DuplicateTally).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import docker
import psycopg2

from chaos.traffic import Work
from services.tasks.containers import LABEL_NAMESPACE

FILE_FINAL = {"PROCESSED", "FAILED"}
TASK_FINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED", "SKIPPED"}
DROPPED = re.compile(r'"message": "dropped (\d+) duplicate\(s\)"')
UNROUTABLE = re.compile(r"^dockyard_events_unroutable_total\{[^}]*\} (\S+)$", re.M)


@dataclass(frozen=True)
class Outcome:
    """How much of some work reached its final state, and how much of that the good one."""

    finished: int
    completed: int


class Database:
    """Read-only questions to the run's database, on a fresh connection each time (it restarts)."""

    def __init__(self, admin_url: str, database: str) -> None:
        self.url = admin_url.rsplit("/", 1)[0] + f"/{database}"

    def rows(self, sql: str, params: tuple | dict = ()) -> list[tuple]:
        """Run a query; an unreachable database is an empty answer."""
        try:
            connection = psycopg2.connect(self.url, connect_timeout=3)
        except psycopg2.OperationalError:
            return []
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()
        finally:
            connection.close()

    def execute(self, sql: str, params: tuple = ()) -> None:
        """Run a statement and commit it (as the superuser)."""
        connection = psycopg2.connect(self.url, connect_timeout=3)
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(sql, params)
        finally:
            connection.close()

    def returning(self, sql: str, params: tuple, after: str) -> list[str]:
        """Run a statement, then `after`, in one transaction; the first column of its rows."""
        connection = psycopg2.connect(self.url, connect_timeout=3)
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(sql, params)
                found = [row[0] for row in cursor.fetchall()]
                cursor.execute(after)
            return found
        finally:
            connection.close()

    def outcome(self, work: Iterable[Work]) -> Outcome:
        """How much of `work` finished, and completed."""
        ids: dict[str, list[str]] = {"upload": [], "task": [], "workflow": []}
        for item in work:
            ids[item.kind].append(item.id)
        finished = completed = 0
        if ids["upload"]:
            for (status,) in self.rows(
                "SELECT status FROM files.files WHERE id::text = ANY(%s)", (ids["upload"],)
            ):
                finished += status in FILE_FINAL
                completed += status == "PROCESSED"
        if ids["task"]:
            for (status,) in self.rows(
                "SELECT status FROM tasks.tasks WHERE id::text = ANY(%s)", (ids["task"],)
            ):
                finished += status in TASK_FINAL
                completed += status == "SUCCEEDED"
        if ids["workflow"]:
            for ended, good in self.rows(
                "SELECT w.finished_at IS NOT NULL,"
                " bool_and(t.status = 'SUCCEEDED') FROM tasks.workflows w"
                " JOIN tasks.tasks t ON t.workflow_id = w.id"
                " WHERE w.id::text = ANY(%s) GROUP BY w.id",
                (ids["workflow"],),
            ):
                finished += ended
                completed += bool(ended and good)
        return Outcome(finished, completed)

    def unfinished(self, work: Iterable[Work], limit: int = 5) -> list[str]:
        """Up to `limit` items of `work` not in their good final state, as "kind id STATUS"."""
        found = []
        for item in work:
            if item.kind == "upload":
                rows = self.rows("SELECT status FROM files.files WHERE id::text = %s", (item.id,))
                good = {"PROCESSED"}
            elif item.kind == "task":
                rows = self.rows("SELECT status FROM tasks.tasks WHERE id::text = %s", (item.id,))
                good = {"SUCCEEDED"}
            else:
                rows = self.rows(
                    "SELECT string_agg(status, ',' ORDER BY status) FROM tasks.tasks"
                    " WHERE workflow_id::text = %s",
                    (item.id,),
                )
                good = {"SUCCEEDED,SUCCEEDED"}
            status = rows[0][0] if rows else "MISSING"
            if status not in good:
                found.append(f"{item.kind} {item.id} {status}")
                if len(found) >= limit:
                    break
        return found

    def pending_events(self, event_ids: list[str]) -> int:
        """How many of these events are still in auth's outbox (not published yet)."""
        rows = self.rows(
            "SELECT count(*) FROM auth.outbox WHERE event_id::text = ANY(%s)", (event_ids,)
        )
        return rows[0][0] if rows else -1

    def unsent_events(self) -> int:
        """Outbox rows not yet published, over every service (-1: the database did not answer)."""
        counts = self.rows(
            "SELECT (SELECT count(*) FROM auth.outbox) + (SELECT count(*) FROM files.outbox)"
            " + (SELECT count(*) FROM tasks.outbox)"
        )
        return counts[0][0] if counts else -1


def leaked_containers(namespace: str) -> list[str]:
    """Containers of this run's namespace still on the engine (all tasks having ended)."""
    client = docker.from_env()
    try:
        own = {"label": f"{LABEL_NAMESPACE}={namespace}"}
        found = client.containers.list(all=True, filters=own)
        return [container.name for container in found]
    finally:
        client.close()


class DuplicateTally:
    """Redeliveries the consumers' inboxes dropped, counted from what each consumer logged.

    A consumer logs "dropped N duplicate(s)" once per batch, right after the commit that
    recorded them; its log outlives a SIGKILL, where its Prometheus counter would restart at 0.
    """

    def __init__(self, logs: Callable[[], Iterable[str]]) -> None:
        self.logs = logs

    def total(self) -> int:
        """Duplicates dropped so far by every consumer."""
        return sum(int(found) for text in self.logs() for found in DROPPED.findall(text))
