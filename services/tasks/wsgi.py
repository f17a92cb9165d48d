"""WSGI entry point: `gunicorn services.tasks.wsgi:app`."""

from services.tasks.app import create_app

app = create_app()
