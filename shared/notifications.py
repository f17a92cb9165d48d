"""Telling users what became of their things: a Notifier interface, channels and their registry.

A service builds one notifier at start-up with `notifier_from_settings(settings)` and hands it
`Notification`s, from a task that retries on failure (so a channel may be called more than
once for one notification: delivery is at-least-once). Channels come from the entry-point
group `dockyard.notifiers` (`log` below is declared there, in Dockyard's pyproject.toml) and
from `register_channel(name, factory)` calls made before that; NOTIFICATION_CHANNELS switches
them on. A channel plugin that fails to load is listed as failed; naming it fails start-up.

A notifier whose `inline` attribute is true only writes locally and cannot block (`log`): a
caller may then send through it inside a database transaction instead of from a retried task.
Plugins leave it unset, so their channels always go through the task.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared import plugins
from shared.config import ConfigError, EnvVar, parse_list

log = logging.getLogger("dockyard.notifications")

NOTIFICATION_CHANNELS = EnvVar(
    "NOTIFICATION_CHANNELS",
    parse_list,
    default=["log"],
    doc="Channels that deliver user notifications, comma-separated (`log` writes one log line "
    "per notification; others are `dockyard.notifiers` plugins, docs/plugins.md). They deliver "
    "what a user's rules send to LOG.",
)

_CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class Notification:
    """Something a user should hear about: `<subject_type> <subject_name>` reached `status`."""

    user_id: str
    subject_type: str
    subject_id: str
    subject_name: str
    status: str
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """One line saying who is told what, e.g. for the log channel."""
        return (
            f"Notification sent to user {self.user_id} about {self.subject_type} "
            f"{self.subject_name}: {self.status}"
        )


class NotificationFailed(Exception):
    """A channel could not deliver now; the caller retries later."""


class Notifier(Protocol):
    """A channel that delivers notifications (raises NotificationFailed when it cannot)."""

    def send(self, notification: Notification) -> None:
        """Deliver one notification."""


class LogNotifier:
    """Delivers a notification as one INFO line on the `dockyard.notifications` logger."""

    #: A log line: local, cheap, never blocks (see the module's note on `inline`).
    inline = True

    def send(self, notification: Notification) -> None:
        """Log the notification's summary."""
        log.info(
            notification.summary(),
            extra={
                "user_id": notification.user_id,
                "subject_type": notification.subject_type,
                "subject_id": notification.subject_id,
                "status": notification.status,
            },
        )


class FanOutNotifier:
    """Sends each notification through several channels, in order."""

    def __init__(self, channels: Sequence[Notifier]) -> None:
        self.channels = list(channels)
        self.inline = all(getattr(channel, "inline", False) for channel in self.channels)

    def send(self, notification: Notification) -> None:
        """Deliver through every channel; the first failure propagates (a retry resends all)."""
        for channel in self.channels:
            channel.send(notification)


_channels: dict[str, Callable[[], Notifier]] = {}


def register_channel(name: str, factory: Callable[[], Notifier]) -> None:
    """Make a channel available under `name` (for NOTIFICATION_CHANNELS); a later one wins."""
    if not _CHANNEL_NAME.match(name):
        raise ValueError(f"channel name {name!r}: use [a-z0-9_-], start with a letter")
    _channels[name] = factory


def _all_channels() -> dict[str, Callable[[], Notifier]]:
    return {**plugins.loaded("notifier"), **_channels}


def available_channels() -> list[str]:
    """The names NOTIFICATION_CHANNELS may list."""
    return sorted(_all_channels())


def build_notifier(names: Sequence[str]) -> Notifier:
    """A notifier sending through the named channels; ConfigError names an unknown one."""
    found = _all_channels()
    failed = {p.name: p.error for p in plugins.plugins("notifier") if p.status != plugins.OK}
    broken = [name for name in names if name in failed and name not in found]
    if broken:
        raise ConfigError(
            "NOTIFICATION_CHANNELS names channels whose plugin failed to load: "
            + "; ".join(f"{name}: {failed[name]}" for name in broken)
        )
    unknown = [name for name in names if name not in found]
    if unknown:
        raise ConfigError(
            f"NOTIFICATION_CHANNELS names unknown channels {unknown}; "
            f"available: {', '.join(available_channels())}"
        )
    if not names:
        raise ConfigError("NOTIFICATION_CHANNELS lists no channel")
    channels = [found[name]() for name in names]
    return channels[0] if len(channels) == 1 else FanOutNotifier(channels)


def is_inline(notifier: Notifier) -> bool:
    """Whether the notifier may send inside a caller's transaction (local, never blocks)."""
    return bool(getattr(notifier, "inline", False))


def notifier_from_settings(settings: Any) -> Notifier:
    """The notifier settings.NOTIFICATION_CHANNELS asks for."""
    return build_notifier(settings.NOTIFICATION_CHANNELS)
