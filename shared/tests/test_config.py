"""Settings parse typed values, name what is wrong, and never print secrets."""

from __future__ import annotations

import pytest

from shared.config import (
    CommonSettings,
    ConfigError,
    EnvVar,
    ServerTlsSettings,
    Settings,
    markdown_table,
    parse_bool,
    parse_list,
)
from shared.testing import production_environ


class ExampleSettings(Settings):
    PORT = EnvVar("EXAMPLE_PORT", int, default=8000, doc="port")
    DEBUG = EnvVar("EXAMPLE_DEBUG", parse_bool, default=False, doc="debug")
    HOSTS = EnvVar("EXAMPLE_HOSTS", parse_list, default=[], doc="hosts")
    TOKEN = EnvVar("EXAMPLE_TOKEN", doc="a required secret", secret=True)
    PASSWORD = EnvVar(
        "EXAMPLE_PASSWORD", default="dev", doc="placeholder", secret=True, dev_only_default=True
    )


def test_values_are_parsed_to_their_types():
    settings = ExampleSettings(
        {
            "EXAMPLE_PORT": "9000",
            "EXAMPLE_DEBUG": "yes",
            "EXAMPLE_HOSTS": "a, b,",
            "EXAMPLE_TOKEN": "t",
        }
    )
    assert (settings.PORT, settings.DEBUG, settings.HOSTS) == (9000, True, ["a", "b"])
    assert settings.PASSWORD == "dev"


def test_every_problem_is_reported_at_once_without_secret_values():
    with pytest.raises(ConfigError) as caught:
        ExampleSettings({"EXAMPLE_PORT": "eighty"})
    message = str(caught.value)
    assert "EXAMPLE_PORT='eighty' is invalid" in message
    assert "EXAMPLE_TOKEN is required" in message


def test_an_invalid_secret_is_not_echoed():
    class SecretNumber(Settings):
        VALUE = EnvVar("EXAMPLE_SECRET_NUMBER", int, secret=True)

    with pytest.raises(ConfigError) as caught:
        SecretNumber({"EXAMPLE_SECRET_NUMBER": "hunter2"})
    assert "hunter2" not in str(caught.value)
    assert "<secret>" in str(caught.value)


def test_production_refuses_placeholder_secrets():
    with pytest.raises(ConfigError, match="EXAMPLE_PASSWORD must be set outside development"):
        ExampleSettings({"DOCKYARD_ENV": "production", "EXAMPLE_TOKEN": "t"})


def test_repr_hides_secrets():
    settings = ExampleSettings({"EXAMPLE_TOKEN": "very-secret"})
    assert "very-secret" not in repr(settings)


def test_overrides_replace_values_and_unknown_ones_are_refused():
    assert ExampleSettings({"EXAMPLE_TOKEN": "t"}, PORT=1).PORT == 1
    with pytest.raises(TypeError):
        ExampleSettings({"EXAMPLE_TOKEN": "t"}, NOPE=1)


@pytest.mark.parametrize("raw", ["maybe", "2"])
def test_parse_bool_refuses_nonsense(raw):
    with pytest.raises(ValueError):
        parse_bool(raw)


def test_the_table_lists_each_variable_once():
    table = markdown_table()
    assert table.count("`EXAMPLE_PORT`") == 1
    assert "*required*" in table


@pytest.mark.parametrize(
    "url",
    [
        "amqp://guest:guest@rabbitmq:5672//",
        "amqp://rabbitmq:5672//",
        "amqp://dockyard@rabbitmq:5672//",
        "amqp://dockyard:@rabbitmq:5672//",
    ],
)
def test_production_refuses_rabbitmqs_guest_account_or_no_password(url):
    with pytest.raises(ConfigError) as caught:
        CommonSettings(production_environ(AMQP_URL=url))
    message = str(caught.value)
    assert "AMQP_URL is unsafe in production: connect as a user of your own" in message
    assert url not in message


@pytest.mark.parametrize(
    "url", ["redis://redis:6379/0", "redis://dockyard@redis:6379/0", "unix:///run/redis.sock"]
)
def test_production_refuses_redis_without_a_password(url):
    with pytest.raises(ConfigError, match="REDIS_URL is unsafe in production: Redis must require"):
        CommonSettings(production_environ(REDIS_URL=url))


def test_production_refuses_the_development_broker_and_cache_defaults():
    environ = production_environ()
    del environ["AMQP_URL"], environ["REDIS_URL"]
    with pytest.raises(ConfigError) as caught:
        CommonSettings(environ)
    assert "AMQP_URL must be set outside development" in str(caught.value)
    assert "REDIS_URL must be set outside development" in str(caught.value)


@pytest.mark.parametrize(
    ("amqp", "redis"),
    [
        ("amqp://dockyard:s3cret@rabbitmq:5672//", "redis://:s3cret@redis:6379/0"),
        ("amqps://guest:not-guest@rabbitmq//", "rediss://dockyard:s3cret@redis:6379/0"),
        ("amqp://dockyard:s3cret@rabbitmq//", "unix:///run/redis.sock?password=s3cret"),
    ],
)
def test_production_accepts_a_broker_and_cache_with_real_credentials(amqp, redis):
    settings = CommonSettings(production_environ(AMQP_URL=amqp, REDIS_URL=redis))
    assert (settings.AMQP_URL, settings.REDIS_URL) == (amqp, redis)


def test_development_still_accepts_the_local_guest_broker_and_open_redis():
    settings = CommonSettings({"DOCKYARD_ENV": "development"})
    assert settings.AMQP_URL.startswith("amqp://guest:guest@")
    assert settings.REDIS_URL == "redis://127.0.0.1:6379/0"


def test_tls_files_must_exist_and_come_in_pairs(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("pem")
    with pytest.raises(ConfigError, match="TLS_KEY_FILE='/nowhere/key.pem' is invalid"):
        ServerTlsSettings({"TLS_CERT_FILE": str(cert), "TLS_KEY_FILE": "/nowhere/key.pem"})
    with pytest.raises(ConfigError, match="must be set together"):
        ServerTlsSettings({"TLS_CERT_FILE": str(cert)})
    with pytest.raises(ConfigError, match="TLS_CA_FILE='/nowhere/ca.pem' is invalid"):
        CommonSettings({"TLS_CA_FILE": "/nowhere/ca.pem"})
    both = ServerTlsSettings({"TLS_CERT_FILE": str(cert), "TLS_KEY_FILE": str(cert)})
    assert (both.CERT_FILE, both.KEY_FILE) == (str(cert), str(cert))
    assert ServerTlsSettings({}).CERT_FILE == ""
