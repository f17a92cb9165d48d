"""Dockyard's public Python package: the client of the GraphQL gateway (dockyard.client)."""
