"""Dockyard's shared kernel: config, database, outbox, messaging, token verification, web helpers."""
