"""The `dockyard` command: provisioning, migrations, relays, consumers, dead letters, plugins.

`main` runs it for the services of a registry (shared.registry) it is handed: the console
script is services.registry:main, which hands it Dockyard's.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from shared import dbadmin, migrations
from shared.config import ConfigError, Settings, database_url_var, markdown_table
from shared.registry import Service, ServiceRegistry

#: Subcommands whose modules parse their own arguments.
DELEGATED = ("relay", "consume", "dlq", "sagas")


def _service_urls(services: list[Service]) -> dict[Service, str]:
    class _Urls(Settings):
        pass

    for service in services:
        setattr(_Urls, service.name, database_url_var(service.schema))
    urls = _Urls()
    return {service: getattr(urls, service.name) for service in services}


def cmd_db_bootstrap(args: argparse.Namespace) -> int:
    """Create the database, roles and schemas (needs DATABASE_ADMIN_URL)."""
    admin = dbadmin.AdminSettings()
    urls = _service_urls(args.registry.with_database(args.services))
    dbadmin.bootstrap(admin.ADMIN_URL, {service.schema: url for service, url in urls.items()})
    return 0


def cmd_db_migrate(args: argparse.Namespace) -> int:
    """Run every service's migrations (each as its own role)."""
    for service, url in _service_urls(args.registry.with_database(args.services)).items():
        migrations.upgrade(service.migrations, url)
        print(f"migrated {service.name}")
    return 0


def cmd_config_table(_args: argparse.Namespace | None = None) -> int:
    """Print the configuration table of every variable (for the README).

    Every variable is registered when its settings class is defined: the registry the command
    was handed imported every service's settings, and this module imported dbadmin's.
    """
    print(markdown_table())
    return 0


#: Settings `make up` runs with that production must not: each written unless the file sets it.
DEVELOPMENT_SETTINGS = {
    # Webhook receivers a developer runs are on this machine; production refuses loopback.
    "TASKS_WEBHOOK_ALLOW_PRIVATE": "true",
}


def cmd_dev_env(args: argparse.Namespace) -> int:
    """Write development secrets (a signing key) and settings to an env file unless it has them."""
    from shared.testing import generate_private_key_pem

    path = args.path
    existing = open(path).read() if os.path.exists(path) else ""
    # A commented-out line (as .env.example has them) does not count as set.
    assigned = {line.partition("=")[0].strip() for line in existing.splitlines() if "=" in line}
    lines = []
    if "AUTH_JWT_PRIVATE_KEY=" not in existing:
        pem = generate_private_key_pem().replace("\n", "\\n")
        lines.append(f'AUTH_JWT_PRIVATE_KEY="{pem}"')
        print(f"wrote a development signing key to {path}")
    for name, value in DEVELOPMENT_SETTINGS.items():
        if name not in assigned:
            lines.append(f"{name}={value}")
            print(f"wrote the development setting {name}={value} to {path}")
    if lines:
        with open(path, "a") as fh:
            fh.write("".join(f"{line}\n" for line in lines))
        os.chmod(path, 0o600)
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    """List the installed plugins of every kind; exit 1 when one failed to load."""
    from shared import plugins

    listed = plugins.listing()
    if args.json:
        print(json.dumps(listed, indent=2))
    else:
        columns = ("kind", "name", "version", "status", "error")
        rows = [[str(item[c] or "") for c in columns] for item in listed]
        widths = [max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(columns)]
        for row in [list(columns), *rows]:
            print(
                "  ".join(
                    cell.ljust(width) for cell, width in zip(row, widths, strict=True)
                ).rstrip()
            )
    return 1 if any(item["status"] != plugins.OK for item in listed) else 0


def cmd_supervise(args: argparse.Namespace) -> int:
    """Run the Procfile's processes (those named, or all) under supervisord in the foreground."""
    from shared import supervise

    run_dir = Path(args.run_dir)
    if args.status:
        socket = run_dir.resolve() / "supervisor.sock"
        command = ["supervisorctl", "-s", f"unix://{socket}", "status", *args.names]
        shown = subprocess.run(command, stdout=subprocess.PIPE, text=True)
        print(shown.stdout, end="")
        return 0 if supervise.all_running(shown.stdout) else shown.returncode or 1
    try:
        config = supervise.write_config(Path(args.procfile), args.names, run_dir=run_dir)
    except ValueError as exc:
        print(f"dockyard supervise: {exc}", file=sys.stderr)
        return 2
    sys.stdout.flush()
    os.execvp("supervisord", ["supervisord", "-c", str(config)])


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
    plug = sub.add_parser("plugins", help="list installed plugins: kind, name, version, status")
    plug.add_argument("--json", action="store_true", help="print JSON instead of a table")
    plug.set_defaults(func=cmd_plugins)
    dev = sub.add_parser("dev-env", help="write development secrets to an env file")
    dev.add_argument("--path", default=".env")
    dev.set_defaults(func=cmd_dev_env)

    sup = sub.add_parser(
        "supervise", help="run the Procfile under supervisord: crashed processes restart"
    )
    sup.add_argument("names", nargs="*", help="Procfile entries to run (default: all)")
    sup.add_argument("--procfile", default="Procfile")
    sup.add_argument("--run-dir", default="var/run", help="config, pid file and control socket")
    sup.add_argument(
        "--status", action="store_true", help="show the running processes (supervisorctl)"
    )
    sup.set_defaults(func=cmd_supervise)

    for name, text in (
        ("relay", "publish a service's outbox to RabbitMQ"),
        ("consume", "run a service's event consumers"),
        ("dlq", "inspect and replay dead-lettered messages"),
        ("sagas", "list, show, retry and sweep sagas"),
    ):
        sub.add_parser(name, help=text, add_help=False)
    return parser


def _delegate(command: str, argv: list[str], registry: ServiceRegistry) -> int:
    """Run a subcommand whose module parses its own arguments, --help included."""
    if command == "relay":
        from shared.outbox import relay

        return relay.main(argv, registry=registry)
    if command == "consume":
        from shared.messaging import consume

        return consume.main(argv, registry=registry)
    if command == "sagas":
        from shared.sagas import cli as sagas_cli

        return sagas_cli.main(argv, registry=registry)
    from shared.messaging import dlq

    return dlq.main(argv)


def main(argv: list[str] | None = None, *, registry: ServiceRegistry) -> int:
    """Run the `dockyard` command for the services of `registry`."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] in DELEGATED:
            return _delegate(argv[0], argv[1:], registry) or 0
        args = build_parser().parse_args(argv)
        args.registry = registry
        return args.func(args)
    except ConfigError as exc:
        print(f"dockyard: {exc}", file=sys.stderr)
        return 2
