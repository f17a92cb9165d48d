"""Integration tests: the files API against PostgreSQL and both storage backends."""
