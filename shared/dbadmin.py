"""Provisioning: the database, one least-privilege role per service, and its own schema."""

from __future__ import annotations

import logging

import psycopg2
from psycopg2 import errors, sql
from sqlalchemy.engine import make_url

from shared.config import EnvVar, Settings

log = logging.getLogger(__name__)


class AdminSettings(Settings):
    """Settings of the provisioning commands."""

    ADMIN_URL = EnvVar(
        "DATABASE_ADMIN_URL",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        doc="Superuser URL used only by `dockyard db bootstrap` to create the database and roles.",
        secret=True,
    )


def _connect(url: str, dbname: str | None = None):
    parsed = make_url(url)
    conn = psycopg2.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        dbname=dbname or parsed.database or "postgres",
        connect_timeout=5,
    )
    conn.autocommit = True
    return conn


def create_database(admin_url: str, name: str) -> None:
    """Create the database unless it exists."""
    conn = _connect(admin_url)
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone() is None:
            try:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except errors.DuplicateDatabase:
                pass
    conn.close()


def drop_database(admin_url: str, name: str) -> None:
    """Drop a database, disconnecting its sessions first."""
    conn = _connect(admin_url)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    conn.close()


def provision_service(admin_url: str, service_url: str, *, schema: str) -> None:
    """Create the service's role and schema; the role may use that schema and nothing else."""
    parsed = make_url(service_url)
    role, password, dbname = parsed.username, parsed.password, parsed.database
    conn = _connect(admin_url)
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        if cur.fetchone() is None:
            try:
                cur.execute(
                    sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(
                        sql.Identifier(role)
                    )
                )
            except (errors.DuplicateObject, errors.UniqueViolation):
                pass
        if password:
            cur.execute(
                sql.SQL("ALTER ROLE {} PASSWORD %s").format(sql.Identifier(role)), (password,)
            )
        cur.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(dbname)))
        cur.execute(
            sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
                sql.Identifier(dbname), sql.Identifier(role)
            )
        )
    conn.close()
    conn = _connect(admin_url, dbname)
    with conn.cursor() as cur:
        cur.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        cur.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
                sql.Identifier(schema), sql.Identifier(role)
            )
        )
        cur.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(schema)))
    conn.close()


def bootstrap(admin_url: str, service_urls: dict[str, str]) -> None:
    """Create the database(s), roles and schemas for every service (idempotent)."""
    for schema, url in service_urls.items():
        create_database(admin_url, make_url(url).database)
        provision_service(admin_url, url, schema=schema)
        log.info("provisioned schema %s for role %s", schema, make_url(url).username)
