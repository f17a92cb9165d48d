"""Dockyard's shared kernel: config, database, outbox, messaging, token checks, web helpers."""
