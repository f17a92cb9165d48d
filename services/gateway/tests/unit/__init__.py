"""Unit tests: the schema, limits and errors over a fake auth client."""
