"""Tasks service: container task execution through the Docker Engine API."""
