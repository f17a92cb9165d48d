"""The download links' settings: a real secret in production, five minutes by default."""

from __future__ import annotations

import pytest

from services.gateway.config import GatewaySettings
from shared.config import ConfigError
from shared.testing import production_environ


def test_production_refuses_the_placeholder_download_secret():
    environ = production_environ()
    del environ["GATEWAY_DOWNLOAD_URL_SECRET"]
    with pytest.raises(ConfigError, match="GATEWAY_DOWNLOAD_URL_SECRET"):
        GatewaySettings(environ)


def test_a_short_download_secret_is_refused():
    with pytest.raises(ConfigError, match="GATEWAY_DOWNLOAD_URL_SECRET"):
        GatewaySettings({"GATEWAY_DOWNLOAD_URL_SECRET": "too-short"})


def test_links_live_five_minutes_unless_configured():
    assert GatewaySettings({}).DOWNLOAD_URL_TTL == 300
    assert GatewaySettings({"GATEWAY_DOWNLOAD_URL_TTL_SECONDS": "60"}).DOWNLOAD_URL_TTL == 60
    with pytest.raises(ConfigError, match="GATEWAY_DOWNLOAD_URL_TTL_SECONDS"):
        GatewaySettings({"GATEWAY_DOWNLOAD_URL_TTL_SECONDS": "0"})
