"""Typed settings read from environment variables, each documented in one registry."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

_MISSING = object()

#: Every variable any Dockyard process reads, by name; the README table is generated from it.
REGISTRY: dict[str, EnvVar] = {}


class ConfigError(RuntimeError):
    """Raised at start-up when a variable is missing or cannot be parsed."""


def parse_bool(raw: str) -> bool:
    """Parse the usual spellings of a boolean."""
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {raw!r}")


def parse_positive_int(raw: str) -> int:
    """A whole number above zero."""
    value = int(raw)
    if value <= 0:
        raise ValueError("must be above zero")
    return value


def parse_readable_file(raw: str) -> str:
    """The path of a file this process can read."""
    if not os.path.isfile(raw) or not os.access(raw, os.R_OK):
        raise ValueError("not a readable file")
    return raw


def parse_list(raw: str) -> list[str]:
    """Parse a comma-separated list, ignoring blanks."""
    return [item.strip() for item in raw.split(",") if item.strip()]


@dataclass(frozen=True)
class EnvVar:
    """One environment variable: its name, parser, default and documentation."""

    name: str
    parse: Callable[[str], Any] = str
    default: Any = _MISSING
    doc: str = ""
    secret: bool = False
    #: A placeholder default that must be replaced outside development.
    dev_only_default: bool = False
    #: Raises ValueError (saying why, without the value) when a value is unsafe in production.
    production_check: Callable[[Any], None] | None = None

    def __post_init__(self) -> None:
        REGISTRY.setdefault(self.name, self)

    @property
    def required(self) -> bool:
        """Whether the variable has no default at all."""
        return self.default is _MISSING

    def read(self, environ: Mapping[str, str], *, production: bool) -> Any:
        """Return the parsed value, or raise ConfigError naming the variable."""
        raw = environ.get(self.name)
        if raw is None or raw == "":
            if self.default is _MISSING:
                raise ConfigError(f"{self.name} is required: {self.doc}")
            if production and self.dev_only_default:
                raise ConfigError(
                    f"{self.name} must be set outside development (its default is a placeholder)"
                )
            return self.default
        try:
            value = self.parse(raw)
        except (TypeError, ValueError) as exc:
            if self.secret:
                # Parser messages often quote their input; a secret's must not reach the logs.
                raise ConfigError(f"{self.name}=<secret> is invalid") from None
            raise ConfigError(f"{self.name}={raw!r} is invalid: {exc}") from None
        if production and self.production_check is not None:
            try:
                self.production_check(value)
            except ValueError as exc:
                raise ConfigError(f"{self.name} is unsafe in production: {exc}") from None
        return value


ENVIRONMENT = EnvVar(
    "DOCKYARD_ENV",
    default="development",
    doc="`development`, `test` or `production`; production refuses placeholder secrets.",
)


class Settings:
    """Base for a process's settings: class attributes that are EnvVars become typed values."""

    def __init__(self, environ: Mapping[str, str] | None = None, **overrides: Any) -> None:
        environ = os.environ if environ is None else environ
        self.environment = ENVIRONMENT.read(environ, production=False)
        production = self.environment == "production"
        errors = []
        for attr, var in self.variables().items():
            if attr in overrides:
                setattr(self, attr, overrides.pop(attr))
                continue
            try:
                setattr(self, attr, var.read(environ, production=production))
            except ConfigError as exc:
                errors.append(str(exc))
        if overrides:
            raise TypeError(f"unknown settings: {sorted(overrides)}")
        if errors:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))

    @classmethod
    def variables(cls) -> dict[str, EnvVar]:
        """The EnvVars declared on this class and its bases, by attribute name."""
        found: dict[str, EnvVar] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                if isinstance(value, EnvVar):
                    found[attr] = value
        return found

    def __repr__(self) -> str:
        shown = {
            attr: ("<secret>" if var.secret else getattr(self, attr))
            for attr, var in self.variables().items()
        }
        return f"{type(self).__name__}({shown})"


def markdown_table() -> str:
    """Render every registered variable as the README's configuration table."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name in sorted(REGISTRY):
        var = REGISTRY[name]
        if var.required:
            default = "*required*"
        elif var.default in ("", None, []):
            default = "(empty)"
        else:
            default = f"`{var.default}`"
            if var.dev_only_default:
                default += " (development only)"
        rows.append(f"| `{name}` | {default} | {var.doc} |")
    return "\n".join(rows)


def _url_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return unquote(parts.password)
    # redis-py also reads the password from the query (unix:///run/redis.sock?password=...).
    return parse_qs(parts.query).get("password", [""])[0]


def refuse_default_amqp_credentials(url: str) -> None:
    """Refuse RabbitMQ's well-known guest account, or no password (which means guest)."""
    parts = urlsplit(url)
    user = unquote(parts.username or "")
    password = _url_password(url)
    if not password or (user in ("", "guest") and password == "guest"):
        raise ValueError("connect as a user of your own with a password, not guest:guest")


def refuse_redis_without_password(url: str) -> None:
    """Refuse a Redis URL that carries no password."""
    if not _url_password(url):
        raise ValueError("Redis must require a password (redis://:<password>@host:6379/0)")


class CommonSettings(Settings):
    """Settings every Dockyard process shares: broker, cache, token verification, logging."""

    AMQP_URL = EnvVar(
        "AMQP_URL",
        default="amqp://guest:guest@127.0.0.1:5672//",
        doc="RabbitMQ URL for events and Celery (production refuses guest:guest and no password).",
        secret=True,
        dev_only_default=True,
        production_check=refuse_default_amqp_credentials,
    )
    REDIS_URL = EnvVar(
        "REDIS_URL",
        default="redis://127.0.0.1:6379/0",
        doc="Redis URL: rate limits and the token revocation list (production refuses one "
        "without a password).",
        secret=True,
        dev_only_default=True,
        production_check=refuse_redis_without_password,
    )
    NAMESPACE = EnvVar(
        "DOCKYARD_NAMESPACE",
        default="dockyard",
        doc="Prefix of every exchange, queue and Redis key (tests use a fresh one per run).",
    )
    EVENT_QUEUE_MAX_LENGTH = EnvVar(
        "EVENT_QUEUE_MAX_LENGTH",
        parse_positive_int,
        default=1_000_000,
        doc="Messages a subscription's event queue holds; beyond, the broker refuses publishes "
        "(the relay keeps the events in its outbox and retries), never drops. A queue declared "
        "with another bound keeps it (a warning says how to change it).",
    )
    JWKS_URL = EnvVar(
        "AUTH_JWKS_URL",
        default="http://127.0.0.1:8001/v1/.well-known/jwks.json",
        doc="Where services fetch the auth service's public signing keys.",
    )
    JWT_ISSUER = EnvVar("JWT_ISSUER", default="dockyard-auth", doc="`iss` of access tokens.")
    JWT_AUDIENCE = EnvVar("JWT_AUDIENCE", default="dockyard", doc="`aud` of access tokens.")
    JWKS_CACHE_SECONDS = EnvVar(
        "JWKS_CACHE_SECONDS", int, default=300, doc="How long fetched public keys are cached."
    )
    TLS_CA_FILE = EnvVar(
        "TLS_CA_FILE",
        parse_readable_file,
        default="",
        doc="PEM CA bundle trusted for HTTPS between Dockyard processes (the gateway's calls to "
        "the services, the JWKS fetch, deploy/wait_ready.py), e.g. for self-signed service "
        "certificates; empty means the system's.",
    )
    LOG_LEVEL = EnvVar(
        "LOG_LEVEL",
        default="INFO",
        doc="Python log level of every process (JSON lines on stderr). The access log (one line "
        "per request, at INFO) is written in batches, within 0.2 s; other lines at once.",
    )
    MAX_REQUEST_BYTES = EnvVar(
        "MAX_REQUEST_BYTES",
        int,
        default=64 * 1024,
        doc="Largest JSON request body a REST service accepts (413 above).",
    )


def database_url_var(service: str) -> EnvVar:
    """The `<SERVICE>_DATABASE_URL` variable: the service's own role on its own schema."""
    return EnvVar(
        f"{service.upper()}_DATABASE_URL",
        default=(
            f"postgresql+psycopg2://dockyard_{service}:dockyard_{service}@127.0.0.1:5432/dockyard"
        ),
        doc=f"PostgreSQL URL of the {service} service: role `dockyard_{service}`, schema "
        f"`{service}` (the password in the default is a development placeholder).",
        secret=True,
        dev_only_default=True,
    )


def service_url_var(service: str, port: int) -> EnvVar:
    """The `<SERVICE>_SERVICE_URL` variable: where the gateway and other services reach it."""
    return EnvVar(
        f"{service.upper()}_SERVICE_URL",
        default=f"http://127.0.0.1:{port}",
        doc=f"Base URL of the {service} service's internal REST API, as the gateway (and the "
        "services that call it) reach it.",
    )


class ServerTlsSettings(Settings):
    """TLS of a REST service's HTTP server (deploy/gunicorn.conf.py): serve HTTPS when set."""

    CERT_FILE = EnvVar(
        "TLS_CERT_FILE",
        parse_readable_file,
        default="",
        doc="PEM certificate (chain) the REST services serve HTTPS with; empty serves plain HTTP.",
    )
    KEY_FILE = EnvVar(
        "TLS_KEY_FILE",
        parse_readable_file,
        default="",
        doc="PEM private key of TLS_CERT_FILE.",
    )

    def __init__(self, environ: Mapping[str, str] | None = None, **overrides: Any) -> None:
        super().__init__(environ, **overrides)
        if bool(self.CERT_FILE) != bool(self.KEY_FILE):
            raise ConfigError("TLS_CERT_FILE and TLS_KEY_FILE must be set together")
