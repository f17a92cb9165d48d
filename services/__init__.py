"""Dockyard's services, one package per bounded context."""
