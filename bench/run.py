"""Run every benchmark in turn (`make bench`), then print one table and keep it in bench/results/.

Each benchmark prints its figures next to the baselines it measured in the same run and records
them (`results.record`); this runner gathers the records into one table (figure, baseline,
ratio, target, met?), writes them as JSON to `bench/results/<UTC time>.json`, and shows the
previous results file's value beside each row so a run can be compared with the last one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import RESULTS_ENV, Result

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
#: Modules here that are not benchmarks: this runner and the helpers the benchmarks share.
NOT_BENCHMARKS = {"run.py", "support.py", "results.py", "__init__.py"}
BENCHMARKS = sorted(p for p in HERE.glob("*.py") if p.name not in NOT_BENCHMARKS)
#: Benchmarks run only when named (`make overload`, `make bench BENCH=overload`): they take long.
NAMED_ONLY = {"overload"}


def read_rows(path: Path) -> list[Result]:
    """The results recorded as JSON lines in `path` (none if it does not exist)."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Result.from_json(json.loads(line)) for line in lines if line.strip()]


def previous_values(results_dir: Path) -> dict[tuple[str, str], float]:
    """Each (benchmark, metric)'s value in the newest results file, to compare a run with."""
    files = sorted(results_dir.glob("*.json"))
    if not files:
        return {}
    rows = json.loads(files[-1].read_text(encoding="utf-8"))["results"]
    return {(row["benchmark"], row["metric"]): row["value"] for row in rows}


def format_table(rows: list[Result], previous: dict[tuple[str, str], float]) -> str:
    """One aligned table: figure, baseline, ratio or difference, target, met?, last run."""
    header = ("benchmark", "metric", "figure", "baseline", "value", "target", "met?", "last run")
    body = []
    for row in rows:
        last = previous.get((row.benchmark, row.metric))
        body.append(
            (
                row.benchmark,
                row.metric,
                f"{row.figure:,.1f} {row.unit}",
                f"{row.baseline:,.1f} ({row.baseline_label})",
                row.value_text(),
                row.target_text(),
                "yes" if row.met else "NO",
                "-" if last is None else f"{last:.2f}",
            )
        )
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=True)) for line in body
    ]
    rule = "  ".join("-" * w for w in widths)
    title = "  ".join(cell.ljust(w) for cell, w in zip(header, widths, strict=True))
    return "\n".join([title, rule, *lines])


def write_results(rows: list[Result], failed: list[str], results_dir: Path) -> Path:
    """Store this run's rows as bench/results/<UTC time>.json and return the file's path."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = results_dir / f"{stamp}.json"
    document = {
        "run_at": stamp,
        "machine": {"cpus": os.cpu_count(), "platform": sys.platform},
        "failed": failed,
        "results": [row.to_json() for row in rows],
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def selected(names: list[str]) -> list[Path]:
    """The benchmarks `names` asks for: those named, or without names all but NAMED_ONLY."""
    return [p for p in BENCHMARKS if p.stem in names or (not names and p.stem not in NAMED_ONLY)]


def main(argv: list[str]) -> int:
    """Run the named benchmarks (file stems), or all but NAMED_ONLY; print and store the table."""
    chosen = selected(argv)
    unknown = set(argv) - {p.stem for p in BENCHMARKS}
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    failed = []
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as scratch:
        collected = Path(scratch) / "results.jsonl"
        env = {**os.environ, RESULTS_ENV: str(collected)}
        for script in chosen:
            print(f"\n=== {script.stem} ===", flush=True)
            if subprocess.run([sys.executable, str(script)], env=env, check=False).returncode:
                failed.append(script.stem)
        rows = read_rows(collected)
    previous = previous_values(RESULTS_DIR)
    print("\n" + format_table(rows, previous))
    path = write_results(rows, failed, RESULTS_DIR)
    print(f"\n{sum(r.met for r in rows)} of {len(rows)} targets met; results in {path}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
