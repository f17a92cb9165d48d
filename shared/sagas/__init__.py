"""Sagas: long-running work across services, advanced by events and timeouts (see docs/sagas.md)."""
