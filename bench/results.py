"""One benchmark figure beside its baseline and target: printed now, collected by `bench/run.py`.

A benchmark calls `record(...)` once per figure. The row is printed at once and, when
`bench/run.py` runs the benchmark, appended as a JSON line to the file named by
`DOCKYARD_BENCH_RESULTS`, from which the runner prints one table and writes `bench/results/`.

How a figure is judged against its target (`compare`):
- "ratio": figure / baseline, e.g. tasks/s against the engine's own tasks/s;
- "difference": figure - baseline, e.g. milliseconds the gateway adds over auth;
- "absolute": the figure alone (the baseline is printed for context), e.g. events/s.
`better` says which way is good: "higher" means the value must be at least the target.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Literal

RESULTS_ENV = "DOCKYARD_BENCH_RESULTS"

Compare = Literal["ratio", "difference", "absolute"]
Better = Literal["higher", "lower"]


@dataclass(frozen=True)
class Result:
    """A measured figure, the baseline measured in the same run, and the issue's target."""

    benchmark: str
    metric: str
    figure: float
    unit: str
    baseline: float
    baseline_label: str
    target: float
    compare: Compare = "ratio"
    better: Better = "higher"

    @property
    def value(self) -> float:
        """What the target is compared with: a ratio, a difference or the figure itself."""
        if self.compare == "ratio":
            return self.figure / self.baseline if self.baseline else float("inf")
        if self.compare == "difference":
            return self.figure - self.baseline
        return self.figure

    @property
    def met(self) -> bool:
        """Whether the value reaches the target in the good direction."""
        if self.better == "higher":
            return self.value >= self.target
        return self.value <= self.target

    def target_text(self) -> str:
        """The target as a reader writes it: `>= 0.9x`, `<= 2 ms`, `>= 5000 events/s`."""
        sign = ">=" if self.better == "higher" else "<="
        if self.compare == "ratio":
            return f"{sign} {self.target:g}x"
        suffix = "" if self.compare == "absolute" else " over baseline"
        return f"{sign} {self.target:g} {self.unit}{suffix}"

    def value_text(self) -> str:
        """The judged value as the target states it."""
        if self.compare == "ratio":
            return f"{self.value:.2f}x"
        return f"{self.value:.1f} {self.unit}"

    def to_json(self) -> dict:
        """The row as stored in bench/results/ (with the derived value and verdict)."""
        return {**asdict(self), "value": self.value, "met": self.met}

    @classmethod
    def from_json(cls, row: dict) -> Result:
        """A row read back from a results file (derived fields dropped)."""
        fields = {k: v for k, v in row.items() if k not in ("value", "met")}
        return cls(**fields)


def record(
    benchmark: str,
    metric: str,
    figure: float,
    unit: str,
    *,
    baseline: float,
    baseline_label: str,
    target: float,
    compare: Compare = "ratio",
    better: Better = "higher",
) -> Result:
    """Print one figure with its baseline and verdict, and hand it to the runner if one runs."""
    result = Result(
        benchmark, metric, figure, unit, baseline, baseline_label, target, compare, better
    )
    verdict = "met" if result.met else "NOT met"
    print(
        f"  [{benchmark}] {metric}: {figure:,.1f} {unit} | {baseline_label}: "
        f"{baseline:,.1f} {unit} | {result.value_text()} (target {result.target_text()}: "
        f"{verdict})",
        flush=True,
    )
    path = os.environ.get(RESULTS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(result.to_json()) + "\n")
    return result
