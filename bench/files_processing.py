"""Benchmark: files processing throughput next to wc -l, wc -w and sha256sum on the same files.

Run: `.venv/bin/python bench/files_processing.py [--cases text:100,text:1024,mixed:100]`
(`kind:MiB`). Provisions a throwaway TestEnvironment (database), generates each file in a
subprocess (`text`: ASCII words, spaces, line breaks and a UTF-8 paragraph with Unicode spaces
per MiB; `mixed`: the same plus every ASCII control, NUL and bytes that are not UTF-8; `binary`:
random bytes, as compressed formats look), stores each in a local storage directory, and times
`processing.process_file` (the Celery task's whole body: claim, one read of the stored object
computing size, sha256, lines, words, MIME type, encoding and the built-in processors, then
recording the results) against the GNU tools on the same file, page cache warm for everyone.
A text file's search indexing is not in it: it is a job of its own after FileProcessed.
`wc` runs in the C.UTF-8 locale, the convention the service follows (the C locale's `wc -w` is
printed too, for reference: it counts differently). Each figure is the best of `--repeat` runs;
process_file and `sha256sum` are run in turn, so both meet the same load. The peak RSS printed
is this process's: it stays flat from 100 MB to 1 GB.

Recorded (issue 8's targets): process_file's throughput over `sha256sum`'s alone, at least 0.9x
on text and 0.5x on mixed and binary content. Python's hashlib (OpenSSL, with the CPU's SHA
instructions where it has them) hashes several times faster than coreutils' `sha256sum`, so what
bounds a pass is the counting, which runs beside the hashing thread.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from results import record
from sqlalchemy import text
from support import ROOT

from services.files import processing
from services.files.analysis import tune_allocator
from services.files.app import create_app
from services.files.config import FilesSettings
from services.files.models import File
from services.registry import REGISTRY
from shared.testing import TestEnvironment

MIB = 1024 * 1024
KINDS = ("text", "mixed", "binary")
#: process_file's throughput over sha256sum's, at least (issue 8).
TARGETS = {"text": 0.9, "mixed": 0.5, "binary": 0.5}
TOOLS = {
    "wc -l": (["wc", "-l"], {"LC_ALL": "C.UTF-8"}),
    "wc -w": (["wc", "-w"], {"LC_ALL": "C.UTF-8"}),
    "sha256sum": (["sha256sum"], {"LC_ALL": "C.UTF-8"}),
    "wc -w (C locale)": (["wc", "-w"], {"LC_ALL": "C"}),
}


def generate(path: Path, size: int, kind: str) -> None:
    """Write a generated file in a child process, so its memory is not counted here."""
    code = (
        "import sys; from pathlib import Path;"
        "from services.files.tests.content import write_generated;"
        "write_generated(Path(sys.argv[1]), int(sys.argv[2]), seed=7, junk=sys.argv[3] == 'mixed',"
        " binary=sys.argv[3] == 'binary')"
    )
    subprocess.run([sys.executable, "-c", code, str(path), str(size), kind], cwd=ROOT, check=True)


def best_of(repeat: int, run) -> float:
    """The shortest of `repeat` timed runs of `run()`, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def alternating_best(repeat: int, first, second) -> tuple[float, float]:
    """Best times of `first()` and `second()` run in turn, so that both meet the same load."""
    best = [float("inf"), float("inf")]
    for _ in range(repeat):
        for index, run in enumerate((first, second)):
            start = time.perf_counter()
            run()
            best[index] = min(best[index], time.perf_counter() - start)
    return best[0], best[1]


def tool_run(argv: list[str], env: dict[str, str], path: Path):
    """A command reading `path`, output discarded, as a function to time."""
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}

    def run() -> None:
        subprocess.run([*argv, str(path)], env=full_env, stdout=subprocess.DEVNULL, check=True)

    return run


def store(app, path: Path) -> str:
    """Put the file into the app's storage and record it as UPLOADED; return its id."""
    ctx = app.extensions["files"]
    with path.open("rb") as source:
        stored = ctx.storage.put(source)
    owner = uuid.uuid4()
    with ctx.uow() as uow:
        file = File(
            id=uuid.uuid4(),
            owner_id=owner,
            filename=path.name,
            original_filename=path.name,
            content_type="text/plain",
            size=stored.size,
            storage_key=stored.key,
            sha256=stored.sha256,
        )
        uow.session.add(file)
        uow.commit()
        return str(file.id)


def processing_run(app, file_id: str):
    """processing.process_file on the file, reset to UPLOADED first, as a function to time."""
    ctx = app.extensions["files"]

    def run() -> None:
        with ctx.engine.begin() as conn:
            conn.execute(
                text("UPDATE files SET status = 'UPLOADED', attempts = 0 WHERE id = :id"),
                {"id": file_id},
            )
        outcome = processing.process_file(
            ctx.uow(), storage=ctx.storage, file_id=uuid.UUID(file_id), policy=ctx.processing
        )
        assert outcome is processing.ProcessingOutcome.PROCESSED, outcome

    return run


def file_row(app, file_id: str):
    """The file's row, with the results processing recorded."""
    with app.extensions["files"].engine.connect() as conn:
        return conn.execute(text("SELECT * FROM files WHERE id = :id"), {"id": file_id}).first()


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    """Generate, time, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases",
        default="text:100,text:1024,mixed:100,binary:100",
        help=f"kind:MiB, comma-separated; kinds: {', '.join(KINDS)}",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best is kept)")
    args = parser.parse_args(argv)
    cases = [(kind, int(size)) for kind, size in (c.split(":") for c in args.cases.split(","))]
    unknown = sorted({kind for kind, _ in cases} - set(KINDS))
    if unknown:
        parser.error(f"unknown kind(s) {', '.join(unknown)}; use {', '.join(KINDS)}")

    tune_allocator()  # as the worker's pool processes do
    with TestEnvironment(REGISTRY):
        work = Path(tempfile.mkdtemp(prefix="files-bench-"))
        app = None
        try:
            storage = work / "storage"
            # Provisioned like a deployment's volume: LocalStorage refuses to create its root.
            storage.mkdir()
            app = create_app(FilesSettings(STORAGE_BACKEND="local", STORAGE_DIR=str(storage)))
            print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; best of {args.repeat}")
            print(f"{'file':>14}  {'what':<26} {'seconds':>8} {'MB/s':>8}  {'ours/tool':>9}")
            for kind, size_mib in cases:
                path = work / f"generated-{kind}-{size_mib}MiB.txt"
                generate(path, size_mib * MIB, kind)
                file_id = store(app, path)
                subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
                size_mb = size_mib * MIB / 1e6
                # The recorded ratio's two sides are timed in turn; the other tools after them.
                ours, hashing = alternating_best(
                    args.repeat,
                    processing_run(app, file_id),
                    tool_run(*TOOLS["sha256sum"], path),
                )
                row = file_row(app, file_id)
                label = f"{kind} {size_mib} MiB"
                print(
                    f"{label:>14}  {'dockyard process_file':<26} {ours:8.3f} {size_mb / ours:8.1f}"
                )
                tool_total = 0.0
                tool_rates = {}
                for name, (tool, env) in TOOLS.items():
                    if name == "sha256sum":
                        seconds = hashing
                    else:
                        seconds = best_of(args.repeat, tool_run(tool, env, path))
                    tool_rates[name] = size_mb / seconds
                    if not name.endswith("(C locale)"):
                        tool_total += seconds
                    ratio = (size_mb / ours) / (size_mb / seconds)
                    print(
                        f"{'':>14}  {name:<26} {seconds:8.3f} {size_mb / seconds:8.1f}  "
                        f"{ratio:8.2f}x"
                    )
                print(
                    f"{'':>14}  {'wc -l + wc -w + sha256sum':<26} {tool_total:8.3f} "
                    f"{size_mb / tool_total:8.1f}  {tool_total / ours:8.2f}x"
                )
                print(
                    f"{'':>14}  results: {row.line_count} lines, {row.word_count} words, "
                    f"{row.mime_type}, {row.encoding}; peak RSS {peak_rss_mib():.0f} MiB"
                )
                record(
                    "files_processing",
                    f"process_file, {label}",
                    size_mb / ours,
                    "MB/s",
                    baseline=tool_rates["sha256sum"],
                    baseline_label="sha256sum",
                    target=TARGETS[kind],
                )
                path.unlink()
        finally:
            if app is not None:
                app.extensions["files"].engine.dispose()
            subprocess.run(["rm", "-rf", str(work)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
