"""The chaos drill's verdicts, table and JSON, and its duplicate tally over restarts."""

from __future__ import annotations

import json

from chaos.checks import DuplicateTally
from chaos.report import RowResult, failed, table, to_json
from chaos.traffic import Answer


def test_a_row_that_lost_nothing_and_converged_passes():
    row = RowResult("R2", "restart RabbitMQ", submitted=10, completed=10, converge_seconds=3.2)
    assert row.verdict == "PASS"
    assert not failed([row])


def test_a_row_that_lost_work_fails_the_run():
    rows = [
        RowResult("R1", "kill relays", submitted=5, completed=5, converge_seconds=1.0),
        RowResult("R2", "restart RabbitMQ", submitted=5, completed=4, lost=1, converge_seconds=2),
    ]
    assert rows[1].verdict == "FAIL"
    assert failed(rows)


def test_a_row_that_never_converged_fails_even_without_losses_counted():
    row = RowResult("R3", "restart PostgreSQL", submitted=3, completed=3)
    assert row.verdict == "FAIL"


def test_a_broken_promise_fails_a_row_that_lost_nothing():
    row = RowResult("R7", "restart Redis", converge_seconds=1.0, problems=["fail open"])
    assert row.verdict == "FAIL"


def test_a_skipped_row_neither_passes_nor_fails_the_run():
    row = RowResult("R9", "sagas", skipped="not selected (--rows)")
    assert row.verdict == "SKIP"
    assert not failed([row])


def test_the_table_has_one_line_per_row_then_problems_skips_and_the_result():
    rows = [
        RowResult(
            "R1", "kill relays", submitted=12, completed=12, duplicates=3, converge_seconds=4
        ),
        RowResult("R3", "restart PostgreSQL", client_5xx=2, problems=["2 answers were a 500"]),
        RowResult("R9", "sagas", skipped="not selected (--rows)"),
    ]
    lines = table(rows).splitlines()
    assert lines[0].split() == [
        "row", "fault", "submitted", "completed", "lost", "dups", "converge", "s", "5xx", "503",
        "verdict",
    ]  # fmt: skip
    assert lines[2].split() == "R1 kill relays 12 12 0 3 4.0 0 0 PASS".split()
    assert lines[3].split()[-4:] == ["-", "2", "0", "FAIL"]
    assert "R3: 2 answers were a 500" in lines
    assert "R9: not run: not selected (--rows)" in lines
    assert lines[-1] == "RESULT: FAIL"


def test_the_json_carries_each_rows_verdict_and_the_runs_result():
    rows = [RowResult("R2", "restart RabbitMQ", submitted=1, completed=1, converge_seconds=0.5)]
    document = json.loads(to_json(rows, profile="ci"))
    assert document["result"] == "PASS"
    assert document["profile"] == "ci"
    assert document["rows"][0]["verdict"] == "PASS"
    assert document["rows"][0]["submitted"] == 1


def test_an_explicit_503_is_not_a_server_error_but_a_500_is():
    assert Answer(0, "me", 200, ("SERVICE_UNAVAILABLE",)).unavailable
    assert not Answer(0, "me", 200, ("SERVICE_UNAVAILABLE",)).server_error
    assert Answer(0, "me", 500, ()).server_error
    assert Answer(0, "me", 200, ("INTERNAL_SERVER_ERROR",)).server_error
    assert not Answer(0, "me", 200, ()).server_error


def test_the_duplicate_tally_sums_what_every_consumer_logged_it_dropped():
    logs = [
        '{"level": "INFO", "message": "dropped 4 duplicate(s)", "consumer": "files.users"}\n'
        '{"level": "INFO", "message": "consumer started"}\n'
        '{"level": "INFO", "message": "dropped 1 duplicate(s)", "consumer": "files.search"}\n',
        '{"level": "INFO", "message": "dropped 7 duplicate(s)", "consumer": "tasks.users"}\n',
    ]
    assert DuplicateTally(lambda: logs).total() == 12


def test_a_rows_wait_ends_only_after_its_timeout_without_progress(monkeypatch):
    from chaos.__main__ import Deadline, Probe

    now, arrived = [100.0], [0]
    monkeypatch.setattr("chaos.__main__.time.monotonic", lambda: now[0])
    deadline = Deadline(10, Probe(total=1000, arrived=lambda: arrived[0]))
    now[0], arrived[0] = 109.0, 400  # progress: pushed back to 119
    assert not deadline.passed()
    now[0] = 118.0
    assert not deadline.passed()
    now[0] = 119.5  # ten seconds without one more event
    assert deadline.passed()
