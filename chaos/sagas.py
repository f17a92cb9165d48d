"""R9: sagas of every kind started through the gateway while their participants are SIGKILLed.

Three sagas cross service boundaries: a task's input file (tasks asks files for a lease, then
launches), a task's outputs (files stores what the task left under /output) and an account's
deletion (auth asks files and tasks to purge, then deletes the user). `SagaDrill` starts one of
each before every kill, so each participant dies with sagas at every step in flight, and then
tells, from the run's database and directories, which of them reached their good end with
nothing left behind: no live lease, no staging or output directory, no row of a deleted user.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from chaos.checks import Database
from chaos.traffic import (
    CREATE_TASK,
    IMAGE,
    ME,
    PASSWORD,
    GatewayClient,
    User,
    data,
    register_user,
)

INPUT_TASK = {"image": IMAGE, "command": ["sh", "-c", 'cat "$DOCKYARD_INPUT_FILE" >/dev/null']}
OUTPUT_TASK = {"image": IMAGE, "command": ["sh", "-c", "echo chaos >/output/result.txt"]}
#: Still running when its owner's account is deleted: the purge must stop and remove it.
RUNNING_TASK = {"image": IMAGE, "command": ["sleep", "30"]}
DELETE_ACCOUNT = "mutation ($p: String) { deleteAccount(password: $p) }"
INPUT_FILE, OUTPUTS, DELETION = "task_input_file", "task_outputs", "account_deletion"
#: How long the drill's own upload may take to be PROCESSED.
PROCESSING_TIMEOUT = 120


@dataclass(frozen=True)
class Saga:
    """A saga the drill started: its kind and subject (the task's or the user's id)."""

    kind: str
    subject: str


@dataclass
class SagaDrill:
    """Starts sagas of every kind through the gateway and checks how each one ended."""

    client: GatewayClient
    db: Database
    #: The stack's TASKS_INPUT_DIR and TASKS_OUTPUT_DIR.
    input_dir: Path
    output_dir: Path
    user: User | None = None
    input_file: str | None = None
    sagas: list[Saga] = field(default_factory=list)
    #: Why a start failed, for the row's problems.
    refused: list[str] = field(default_factory=list)

    def prepare(self) -> None:
        """Register the drill's user and upload the file its input tasks read."""
        self.user = register_user(self.client, f"chaos-sagas-{uuid.uuid4().hex[:12]}@example.com")
        self.input_file = self._processed_upload(self.user)

    def start_one_of_each(self) -> None:
        """Start an input-file task, an outputs task and an account deletion."""
        task = {**INPUT_TASK, "inputFileId": self.input_file}
        if task_id := self._create_task(self.user, task):
            self.sagas.append(Saga(INPUT_FILE, task_id))
        if task_id := self._create_task(self.user, OUTPUT_TASK):
            self.sagas.append(Saga(OUTPUTS, task_id))
        if user_id := self._delete_an_account():
            self.sagas.append(Saga(DELETION, user_id))

    def finished(self) -> int:
        """How many of the started sagas reached their good end with nothing left behind."""
        return len(self.sagas) - len(self.unfinished())

    def unfinished(self) -> list[str]:
        """The sagas not (yet) at their good end, each as "kind subject: what is wrong"."""
        found = []
        for saga in self.sagas:
            if wrong := self._what_is_wrong(saga):
                found.append(f"{saga.kind} {saga.subject}: {wrong}")
        return found

    def problems(self) -> list[str]:
        """What the row reports: starts refused, then up to five sagas not at their good end."""
        left = self.unfinished()
        more = [f"... and {len(left) - 5} more"] if len(left) > 5 else []
        return [*self.refused, *left[:5], *more]

    def _what_is_wrong(self, saga: Saga) -> str | None:
        if saga.kind == DELETION:
            state = self._saga_state("auth", saga)
            if state != "SUCCEEDED":
                return f"saga {state}"
            left = self.db.rows(
                "SELECT (SELECT count(*) FROM auth.users WHERE id::text = %(u)s),"
                " (SELECT count(*) FROM files.files WHERE owner_id::text = %(u)s),"
                " (SELECT count(*) FROM tasks.tasks WHERE owner_id::text = %(u)s)",
                {"u": saga.subject},
            )
            if not left or any(left[0]):
                return f"rows left (users, files, tasks): {left}"
            return None
        state = self._saga_state("tasks", saga)
        task = self.db.rows("SELECT status FROM tasks.tasks WHERE id::text = %s", (saga.subject,))
        status = task[0][0] if task else "MISSING"
        if (state, status) != ("SUCCEEDED", "SUCCEEDED"):
            return f"saga {state}, task {status}"
        if saga.kind == INPUT_FILE:
            leases = self.db.rows(
                "SELECT count(*) FROM files.input_leases"
                " WHERE task_id::text = %s AND released_at IS NULL",
                (saga.subject,),
            )
            if not leases or leases[0][0]:
                return "its input lease is still held"
            if (self.input_dir / saga.subject).exists():
                return "its input directory is still there"
        else:
            stored = self.db.rows(
                "SELECT count(*) FROM files.files WHERE produced_by_task_id::text = %s",
                (saga.subject,),
            )
            if not stored or stored[0][0] != 1:
                return f"{stored[0][0] if stored else '?'} output files stored, not 1"
            if (self.output_dir / saga.subject).exists():
                return "its output directory is still there"
        return None

    def _saga_state(self, schema: str, saga: Saga) -> str:
        rows = self.db.rows(
            f"SELECT state FROM {schema}.sagas WHERE kind = %s AND subject = %s",
            (saga.kind, saga.subject),
        )
        return rows[0][0] if rows else "NOT STARTED"

    def _create_task(self, user: User, task: dict) -> str | None:
        status, answer = self.client.call(CREATE_TASK, {"i": task}, user.token)
        if (created := data(answer, "createTask")) is None:
            self.refused.append(f"createTask refused: {status} {answer}")
            return None
        return created["id"]

    def _delete_an_account(self) -> str | None:
        """Register a user with a file and a running task, then delete the account."""
        doomed = register_user(self.client, f"chaos-doomed-{uuid.uuid4().hex[:12]}@example.com")
        _, answer = self.client.call(ME, token=doomed.token)
        if (me := data(answer, "me")) is None:
            self.refused.append(f"me failed: {answer}")
            return None
        self.client.upload(b"soon gone\n", doomed.token)
        self._create_task(doomed, RUNNING_TASK)
        status, answer = self.client.call(DELETE_ACCOUNT, {"p": PASSWORD}, doomed.token)
        if data(answer, "deleteAccount") is not True:
            self.refused.append(f"deleteAccount refused: {status} {answer}")
            return None
        return me["id"]

    def _processed_upload(self, user: User) -> str:
        _, answer = self.client.upload(b"input of every chaos task\n", user.token)
        if (uploaded := data(answer, "uploadFile")) is None:
            raise RuntimeError(f"the drill's upload failed: {answer}")
        deadline = time.monotonic() + PROCESSING_TIMEOUT
        while time.monotonic() < deadline:
            rows = self.db.rows(
                "SELECT status FROM files.files WHERE id::text = %s", (uploaded["id"],)
            )
            if rows and rows[0][0] == "PROCESSED":
                return uploaded["id"]
            time.sleep(0.5)
        raise RuntimeError(f"the drill's upload was not processed in {PROCESSING_TIMEOUT} s")
