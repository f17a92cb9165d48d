"""Run every benchmark in turn (`make bench`); each prints its figures next to its baseline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Modules here that are not benchmarks: this runner and the helpers the benchmarks share.
NOT_BENCHMARKS = {"run.py", "support.py", "__init__.py"}
BENCHMARKS = sorted(p for p in HERE.glob("*.py") if p.name not in NOT_BENCHMARKS)


def main(argv: list[str]) -> int:
    """Run the named benchmarks (file stems), or all of them."""
    chosen = [p for p in BENCHMARKS if not argv or p.stem in argv]
    failed = []
    for script in chosen:
        print(f"\n=== {script.stem} ===", flush=True)
        if subprocess.run([sys.executable, str(script)], check=False).returncode != 0:
            failed.append(script.stem)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
