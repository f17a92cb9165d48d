"""The React example app (examples/web), built with Vite and driven in headless Chromium against
the real stack: sign up, log in, token refreshes (in this tab, and in another while a
subscription runs), an upload followed live to PROCESSED, a task's logs and SUCCEEDED, a
workflow's steps.

The app is served by `vite preview`, which also proxies /graphql (HTTP and WebSocket) to the
gateway: the gateway sends no CORS headers, so the app reaches it on its own origin, as it would
behind the production reverse proxy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.tasks.tests.engine.conftest import TEST_IMAGE, docker_client  # noqa: F401 - fixture
from shared.processes import ManagedProcess
from tests.conftest import REPO, free_port
from tests.test_client import stack  # noqa: F401 - fixture: the whole stack behind a gateway

WEB = REPO / "examples/web"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
#: What the e2e script prints for each step it passed.
STEPS = (
    "sign up",
    "log out and log in",
    "refresh the session when the access token is refused",
    "upload a file with progress and see it reach PROCESSED live",
    "run a task and see its first log line live",
    "another tab refreshes the session: this one reopens its socket",
    "see the task's last log line once and SUCCEEDED live",
    "start a workflow and see its steps",
)


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's Chromium, which playwright-core drives (browsers cannot be downloaded here)."""
    assert CHROMIUM.exists(), (
        f"no Chromium at {CHROMIUM}: deploy/provision.sh must install the Debian package chromium"
    )
    return CHROMIUM


def node() -> str:
    """The node executable, with examples/web's pinned packages installed (`npm ci`) if missing."""
    executable, npm = shutil.which("node"), shutil.which("npm")
    assert executable and npm, "node or npm is missing: deploy/provision.sh installs nodejs, npm"
    if not (WEB / "node_modules/.bin/vite").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True, timeout=600)
    return executable


@pytest.fixture(scope="module")
def built_app(tmp_path_factory) -> Path:
    """The production build of the app (`vite build`), outside the work tree."""
    out = tmp_path_factory.mktemp("web-dist")
    done = subprocess.run(
        [node(), "node_modules/vite/bin/vite.js", "build", "--outDir", str(out), "--emptyOutDir"],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "index.html").exists()
    return out


@pytest.fixture(scope="module")
def served_app(built_app, stack) -> Iterator[str]:  # noqa: F811
    """`vite preview` of the build on loopback, /graphql proxied to the stack's gateway."""
    port = free_port()
    gateway = stack.removesuffix("/graphql")
    argv = [
        node(), "node_modules/vite/bin/vite.js", "preview", "--outDir", str(built_app),
        "--host", "127.0.0.1", "--port", str(port), "--strictPort",
    ]  # fmt: skip
    env = {**os.environ, "DOCKYARD_GATEWAY_URL": gateway}
    url = f"http://127.0.0.1:{port}/"
    with ManagedProcess("vite preview", argv, env=env, cwd=WEB) as preview:
        preview.wait_ready(url=url, timeout=30)
        yield url


def test_the_react_app_signs_up_uploads_runs_a_task_and_shows_a_workflow_live(chromium, served_app):
    done = subprocess.run(
        [node(), "e2e/app.e2e.mjs"],
        cwd=WEB,
        env={**os.environ, "APP_URL": served_app, "IMAGE": TEST_IMAGE, "CHROMIUM": str(chromium)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    passed = [line for line in done.stdout.splitlines() if line.startswith("ok - ")]
    assert [line[5:].rsplit(" (", 1)[0] for line in passed] == list(STEPS), done.stdout
