"""The Postman collection of the GraphQL API (examples/postman) passes under newman against a
gateway served as in production, in front of the real auth, files and tasks services."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.conftest import REPO

POSTMAN = REPO / "examples/postman"
COLLECTION = POSTMAN / "dockyard.postman_collection.json"


def newman() -> Path:
    """The pinned newman of examples/postman, installed from its lock (`npm ci`) when missing."""
    executable = POSTMAN / "node_modules/.bin/newman"
    if not executable.exists():
        npm = shutil.which("npm")
        assert npm, "npm is missing: deploy/provision.sh installs nodejs and npm"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=POSTMAN, check=True)
    return executable


def test_the_postman_collection_passes_under_newman_against_the_gateway(served_gateway, tmp_path):
    report = tmp_path / "newman.json"
    done = subprocess.run(
        [
            str(newman()), "run", str(COLLECTION),
            "--env-var", f"baseUrl={served_gateway}",
            "--reporters", "cli,json", "--reporter-json-export", str(report),
            "--timeout-request", "30000", "--color", "off",
        ],
        cwd=POSTMAN,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    run = json.loads(report.read_text())["run"]
    assert run["failures"] == []
    stats = run["stats"]
    assert stats["assertions"]["failed"] == 0 and stats["requests"]["failed"] == 0
    # Every request ran, and each asserted something.
    assert stats["requests"]["total"] == 16
    assert stats["assertions"]["total"] >= 2 * stats["requests"]["total"]
