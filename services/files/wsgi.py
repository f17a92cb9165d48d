"""WSGI entry point: `gunicorn services.files.wsgi:app`."""

from services.files.app import create_app

app = create_app()
