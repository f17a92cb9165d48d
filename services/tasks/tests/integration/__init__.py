"""Integration tests: real PostgreSQL, Redis and a real auth service."""
