"""The images docker-compose.yml runs, built here once per test run by deploy/offline-images.sh."""

from __future__ import annotations

import fcntl
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: Seconds a test whose setup builds the images may take (pytest-timeout): the build itself
#: (deploy/offline-images.sh, 20 minutes at most) with room for the test.
OFFLINE_IMAGES_TIMEOUT = 1500


def offline_images(run_dir: Path) -> dict[str, str]:
    """Build (or reuse) every image compose runs; return its variables, e.g. POSTGRES_IMAGE.

    Parallel workers share one build: the first builds under a lock, the others read its answer.
    """
    answer = run_dir / "offline-images.env"
    with open(run_dir / "offline-images.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not answer.exists():
            built = subprocess.run(
                ["bash", str(REPO / "deploy" / "offline-images.sh")],
                capture_output=True,
                text=True,
                timeout=1200,  # within OFFLINE_IMAGES_TIMEOUT
            )
            if built.returncode:
                raise RuntimeError(f"deploy/offline-images.sh failed:\n{built.stderr[-4000:]}")
            answer.write_text(built.stdout)
    return dict(line.split("=", 1) for line in answer.read_text().splitlines() if "=" in line)
