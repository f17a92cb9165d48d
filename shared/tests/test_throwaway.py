"""The throwaway PostgreSQL and Redis: they start, answer, and come back after a restart."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import redis

from shared.throwaway import PostgresNode, RedisNode


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A directory the postgres user can reach (pytest's tmp_path parents are root's only)."""
    root = Path(tempfile.mkdtemp(prefix="dockyard-throwaway-"))
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_a_throwaway_postgres_answers_again_after_a_restart(reachable_dir):
    node = PostgresNode.configure(reachable_dir)
    node.start()
    try:
        with psycopg2.connect(node.admin_url) as connection, connection.cursor() as cursor:
            cursor.execute("CREATE TABLE kept (id int)")
        connection.close()
        node.stop()
        assert not node.process.running
        node.start()
        with psycopg2.connect(node.admin_url) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM kept")
            assert cursor.fetchone() == (0,)
        connection.close()
    finally:
        node.stop()


def test_a_throwaway_redis_comes_back_empty_after_a_restart(tmp_path):
    node = RedisNode.configure(tmp_path)
    node.start()
    try:
        redis.Redis.from_url(node.url).set("key", "value")
        node.stop()
        node.start()
        assert redis.Redis.from_url(node.url).get("key") is None
    finally:
        node.stop()
