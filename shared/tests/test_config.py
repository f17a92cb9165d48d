"""Settings parse typed values, name what is wrong, and never print secrets."""

from __future__ import annotations

import pytest

from shared.config import ConfigError, EnvVar, Settings, markdown_table, parse_bool, parse_list


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
