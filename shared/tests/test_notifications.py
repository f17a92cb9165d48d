"""Notifications go through pluggable channels; the log channel writes one exact line."""

from __future__ import annotations

import logging

import pytest

from shared import notifications
from shared.config import ConfigError
from shared.notifications import Notification, build_notifier

NOTE = Notification(
    user_id="u-1",
    subject_type="file",
    subject_id="f-1",
    subject_name="report.csv",
    status="PROCESSED",
)


def test_the_log_channel_logs_who_is_told_about_what(caplog):
    caplog.set_level(logging.INFO, logger="dockyard.notifications")
    build_notifier(["log"]).send(NOTE)
    assert [r.getMessage() for r in caplog.records] == [
        "Notification sent to user u-1 about file report.csv: PROCESSED"
    ]


def test_registered_channels_receive_notifications_next_to_the_log(caplog):
    received = []

    class Collecting:
        def send(self, notification):
            received.append(notification)

    notifications.register_channel("collect", Collecting)
    try:
        build_notifier(["log", "collect"]).send(NOTE)
    finally:
        notifications._channels.pop("collect")
    assert received == [NOTE]


def test_unknown_channels_are_refused_at_start_up():
    with pytest.raises(ConfigError, match="carrier-pigeon"):
        build_notifier(["log", "carrier-pigeon"])
    with pytest.raises(ConfigError):
        build_notifier([])
