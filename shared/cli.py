"""The `dockyard` command: provisioning, migrations, relays, consumers and dead letters."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from shared import dbadmin, migrations
from shared.config import ConfigError, Settings, database_url_var, markdown_table

SERVICES = dbadmin.SERVICE_SCHEMAS
#: Subcommands whose modules parse their own arguments.
DELEGATED = {
    "relay": "shared.outbox.relay",
    "consume": "shared.messaging.consume",
    "dlq": "shared.messaging.dlq",
}


def _service_urls(names: list[str]) -> dict[str, str]:
    class _Urls(Settings):
        pass

    for name in names:
        setattr(_Urls, name, database_url_var(name))
    urls = _Urls()
    return {name: getattr(urls, name) for name in names}


def cmd_db_bootstrap(args: argparse.Namespace) -> int:
    """Create the database, roles and schemas (needs DATABASE_ADMIN_URL)."""
    admin = dbadmin.AdminSettings()
    dbadmin.bootstrap(admin.ADMIN_URL, _service_urls(args.services or list(SERVICES)))
    return 0


def cmd_db_migrate(args: argparse.Namespace) -> int:
    """Run every service's migrations (each as its own role)."""
    for name, url in _service_urls(args.services or list(SERVICES)).items():
        migrations.upgrade(f"services.{name}", url)
        print(f"migrated {name}")
    return 0


def cmd_config_table(_args: argparse.Namespace) -> int:
    """Print the configuration table of every variable (for the README)."""
    for module in (
        "shared.dbadmin",
        "services.auth.config",
        "services.files.config",
        "services.tasks.config",
        "services.gateway.config",
    ):
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    print(markdown_table())
    return 0


def cmd_dev_env(args: argparse.Namespace) -> int:
    """Write development secrets (a signing key) to an env file unless it already has them."""
    from shared.testing import generate_private_key_pem

    path = args.path
    existing = open(path).read() if os.path.exists(path) else ""
    if "AUTH_JWT_PRIVATE_KEY=" in existing:
        return 0
    pem = generate_private_key_pem().replace("\n", "\\n")
    with open(path, "a") as fh:
        fh.write(f'AUTH_JWT_PRIVATE_KEY="{pem}"\n')
    os.chmod(path, 0o600)
    print(f"wrote a development signing key to {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `dockyard`."""
    parser = argparse.ArgumentParser(prog="dockyard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database provisioning and migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    boot = db_sub.add_parser("bootstrap", help="create database, roles and schemas")
    boot.add_argument("services", nargs="*")
    boot.set_defaults(func=cmd_db_bootstrap)
    mig = db_sub.add_parser("migrate", help="run migrations")
    mig.add_argument("services", nargs="*")
    mig.set_defaults(func=cmd_db_migrate)

    sub.add_parser("config-table", help="print the config table").set_defaults(
        func=cmd_config_table
    )
    dev = sub.add_parser("dev-env", help="write development secrets to an env file")
    dev.add_argument("--path", default=".env")
    dev.set_defaults(func=cmd_dev_env)

    for name, text in (
        ("relay", "publish a service's outbox to RabbitMQ"),
        ("consume", "run a service's event consumers"),
        ("dlq", "inspect and replay dead-lettered messages"),
    ):
        sub.add_parser(name, help=text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `dockyard` command."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in DELEGATED:
        # Their own parsers own every option, --help included.
        return importlib.import_module(DELEGATED[argv[0]]).main(argv[1:]) or 0
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"dockyard: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
