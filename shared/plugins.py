"""Plugins: load an entry-point group, and report each plugin's name, version and status.

Dockyard has four kinds of plugin, each an entry-point group of installed distributions; the
built-ins are declared in Dockyard's own pyproject.toml the same way a third party declares its
own (docs/plugins.md). Loading one group never raises: a plugin whose import or `load()` fails
is logged once and listed as `failed` with its error, and the others still load. Whether a
failed plugin matters is the caller's call: one the operator configured fails start-up
(`require`), an unconfigured one is only listed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from shared.config import ConfigError

log = logging.getLogger("dockyard.plugins")

#: Each kind of plugin and its entry-point group.
GROUPS = {
    "executor": "dockyard.executors",
    "notifier": "dockyard.notifiers",
    "storage": "dockyard.storage",
    "processor": "dockyard.files.processors",
}
OK = "ok"
FAILED = "failed"


@dataclass(frozen=True)
class Plugin:
    """One entry point of a group: what it loaded to, or why it did not."""

    kind: str
    name: str
    distribution: str | None
    version: str | None
    status: str
    error: str | None = None
    value: Any = None

    def listing(self) -> dict[str, Any]:
        """What `GET /v1/plugins` and `dockyard plugins` show of it."""
        return {
            "kind": self.kind,
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "error": self.error,
        }


def _load_one(kind: str, entry: EntryPoint) -> Plugin:
    dist = getattr(entry, "dist", None)
    distribution = dist.name if dist is not None else None
    version = dist.version if dist is not None else None
    try:
        value = entry.load()
    except Exception as exc:  # noqa: BLE001 - a third party's import may fail any way
        error = f"{type(exc).__name__}: {exc}"
        log.error("plugin %s %r (%s) failed to load: %s", kind, entry.name, entry.value, error)
        return Plugin(kind, entry.name, distribution, version, FAILED, error)
    return Plugin(kind, entry.name, distribution, version, OK, value=value)


def load_entry_points(kind: str, entries: Iterable[EntryPoint]) -> list[Plugin]:
    """Load each entry point of `kind`, sorted by name; a failure is a `failed` Plugin."""
    return sorted((_load_one(kind, entry) for entry in entries), key=lambda p: p.name)


_loaded: dict[str, list[Plugin]] = {}
_lock = threading.Lock()


def plugins(kind: str) -> list[Plugin]:
    """The installed plugins of `kind`, loaded once per process (so a failure is logged once)."""
    with _lock:
        if kind not in _loaded:
            _loaded[kind] = load_entry_points(kind, entry_points(group=GROUPS[kind]))
        return _loaded[kind]


def loaded(kind: str) -> dict[str, Any]:
    """The objects of the plugins of `kind` that loaded, by name."""
    return {plugin.name: plugin.value for plugin in plugins(kind) if plugin.status == OK}


def require(kind: str, name: str, *, setting: str) -> Any:
    """The plugin `setting` names; ConfigError when it is not installed or failed to load."""
    found = {plugin.name: plugin for plugin in plugins(kind)}
    plugin = found.get(name)
    if plugin is None:
        available = ", ".join(sorted(found)) or "none"
        raise ConfigError(
            f"{setting} names the {kind} {name!r}, which is not installed "
            f"(entry-point group {GROUPS[kind]}; installed: {available}; entry points are read "
            "from installed metadata: after a pyproject.toml changes, reinstall with make venv)"
        )
    if plugin.status != OK:
        raise ConfigError(
            f"{setting} names the {kind} {name!r}, whose plugin failed to load: {plugin.error}"
        )
    return plugin.value


def listing(kinds: Iterable[str] = GROUPS) -> list[dict[str, Any]]:
    """Every plugin of `kinds`, as listed by `GET /v1/plugins` and `dockyard plugins`."""
    return [plugin.listing() for kind in kinds for plugin in plugins(kind)]
