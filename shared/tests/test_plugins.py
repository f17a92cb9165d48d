"""The plugin loader: every group loads, a broken plugin is listed failed, the others still load."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from importlib.metadata import EntryPoint, version

import pytest

from shared import notifications, plugins
from shared.config import ConfigError


class BrokenEntryPoint:
    """An entry point whose load() raises, as a plugin whose module raises on import does."""

    name = "broken"
    value = "broken_plugin:factory"
    dist = None

    def load(self):
        raise RuntimeError("boom at import")


def test_a_plugin_that_raises_on_load_is_reported_failed_and_the_others_still_load(caplog):
    caplog.set_level(logging.ERROR, logger="dockyard.plugins")
    good = EntryPoint("good", "shared.notifications:LogNotifier", plugins.GROUPS["notifier"])
    missing = EntryPoint("gone", "no_such_module_here:thing", plugins.GROUPS["notifier"])
    loaded = plugins.load_entry_points("notifier", [BrokenEntryPoint(), good, missing])
    by_name = {plugin.name: plugin for plugin in loaded}
    assert [plugin.name for plugin in loaded] == ["broken", "gone", "good"]
    assert by_name["good"].status == "ok"
    assert by_name["good"].value is notifications.LogNotifier
    assert (by_name["broken"].status, by_name["broken"].error) == (
        "failed",
        "RuntimeError: boom at import",
    )
    assert by_name["gone"].status == "failed"
    assert by_name["gone"].error.startswith("ModuleNotFoundError")
    assert by_name["broken"].listing() == {
        "kind": "notifier",
        "name": "broken",
        "distribution": None,
        "version": None,
        "status": "failed",
        "error": "RuntimeError: boom at import",
    }
    assert len([r for r in caplog.records if "'broken'" in r.getMessage()]) == 1


@pytest.fixture
def broken_notifier_installed():
    """The notifier group as if a broken `pager` plugin were installed next to the real ones."""
    real = plugins.plugins("notifier")
    plugins._loaded["notifier"] = real + plugins.load_entry_points("notifier", [_pager()])
    yield
    plugins._loaded["notifier"] = real


def _pager():
    entry = BrokenEntryPoint()
    entry.name = "pager"
    return entry


def test_an_unconfigured_broken_plugin_does_not_stop_the_configured_channels(
    broken_notifier_installed,
):
    assert "pager" not in notifications.available_channels()
    notifications.build_notifier(["log"])  # start-up goes on
    statuses = {(p["name"], p["status"]) for p in plugins.listing(["notifier"])}
    assert ("pager", "failed") in statuses and ("log", "ok") in statuses


def test_a_configured_broken_plugin_fails_start_up_naming_its_error(broken_notifier_installed):
    with pytest.raises(ConfigError, match="pager: RuntimeError: boom at import"):
        notifications.build_notifier(["log", "pager"])


def test_require_names_the_setting_and_what_is_installed():
    with pytest.raises(ConfigError, match=r"FILES_STORAGE_BACKEND names the storage 'ftp'.*local"):
        plugins.require("storage", "ftp", setting="FILES_STORAGE_BACKEND")
    assert plugins.require("storage", "local", setting="FILES_STORAGE_BACKEND") is not None


def test_the_built_ins_and_the_example_plugins_are_installed_entry_points():
    listed = {(p["kind"], p["name"]): p for p in plugins.listing()}
    dockyard = version("dockyard")
    example = version("dockyard-example-plugins")
    for key in (
        ("executor", "docker"),
        ("executor", "swarm"),
        ("notifier", "log"),
        ("storage", "local"),
        ("storage", "s3"),
        ("processor", "image"),
    ):
        assert (listed[key]["distribution"], listed[key]["version"]) == ("dockyard", dockyard)
        assert listed[key]["status"] == "ok"
    for key in (("notifier", "jsonl"), ("processor", "tsv")):
        assert listed[key]["distribution"] == "dockyard-example-plugins"
        assert (listed[key]["version"], listed[key]["status"]) == (example, "ok")


def _dockyard(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "services.registry", "plugins", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_dockyard_plugins_lists_kind_name_version_and_status():
    table = _dockyard()
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["kind", "name", "version", "status", "error"]
    example = version("dockyard-example-plugins")
    assert ["processor", "tsv", example, "ok"] in [row.split() for row in rows]
    listed = json.loads(_dockyard("--json").stdout)
    assert {"kind": "notifier", "name": "jsonl", "status": "ok"}.items() <= next(
        p for p in listed if p["name"] == "jsonl"
    ).items()
