"""Integration tests: the REST clients over real HTTP."""
