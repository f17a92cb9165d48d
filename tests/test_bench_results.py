"""The benchmark runner's table and stored results: verdicts, formatting, comparison."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import run  # noqa: E402
from results import RESULTS_ENV, Result, record  # noqa: E402


def test_ratio_target_is_met_only_at_or_above_it():
    fast = Result("tasks", "throughput", 9.0, "tasks/s", 10.0, "engine", 0.9)
    slow = Result("tasks", "throughput", 8.9, "tasks/s", 10.0, "engine", 0.9)
    assert fast.met and fast.value_text() == "0.90x"
    assert not slow.met


def test_lower_is_better_ratio_fails_above_target():
    result = Result("tasks", "latency", 420.0, "ms", 400.0, "docker run", 1.0, better="lower")
    assert result.value == 1.05 and not result.met
    assert result.target_text() == "<= 1x"


def test_difference_target_judges_what_the_figure_adds():
    result = Result(
        "gateway", "me p50", 6.5, "ms", 5.0, "auth", 2.0, compare="difference", better="lower"
    )
    assert result.value == 1.5 and result.met
    assert result.target_text() == "<= 2 ms over baseline"


def test_absolute_target_ignores_the_baseline():
    result = Result("outbox", "drain", 4999.0, "events/s", 15000.0, "broker", 5000, "absolute")
    assert not result.met and result.value_text() == "4999.0 events/s"


def test_record_appends_a_json_line_for_the_runner(tmp_path, monkeypatch, capsys):
    sink = tmp_path / "rows.jsonl"
    monkeypatch.setenv(RESULTS_ENV, str(sink))
    record("files", "text", 300.0, "MB/s", baseline=360.0, baseline_label="sha256sum", target=0.9)
    record("files", "binary", 200.0, "MB/s", baseline=360.0, baseline_label="sha256sum", target=0.5)
    rows = run.read_rows(sink)
    assert [(r.metric, r.met) for r in rows] == [("text", False), ("binary", True)]
    assert "NOT met" in capsys.readouterr().out


def test_results_are_written_and_compared_with_the_previous_run(tmp_path):
    rows = [Result("outbox", "drain", 6000.0, "events/s", 15000.0, "broker", 5000, "absolute")]
    first = run.write_results(rows, [], tmp_path)
    stored = json.loads(first.read_text())
    assert stored["results"][0]["met"] is True and stored["failed"] == []
    previous = run.previous_values(tmp_path)
    assert previous == {("outbox", "drain"): 6000.0}
    table = run.format_table(rows, previous)
    header, _rule, line = table.splitlines()
    assert header.split()[:3] == ["benchmark", "metric", "figure"]
    assert "6,000.0 events/s" in line and "yes" in line and line.rstrip().endswith("6000.00")


def test_the_overload_scenario_runs_only_when_named():
    assert "overload" not in {p.stem for p in run.selected([])}
    assert "gateway_me" in {p.stem for p in run.selected([])}
    assert [p.stem for p in run.selected(["overload"])] == ["overload"]
