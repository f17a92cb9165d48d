"""The Celery app Celery Flower runs with: `celery -A shared.celery_monitor flower`.

It sees the workers and jobs of every service (they share the namespace's event and control
exchanges, shared/celery.py) and needs only the broker and the namespace: no service's settings,
database or secrets.
"""

from __future__ import annotations

from celery import Celery

from shared.celery import celery_config
from shared.config import CommonSettings

app = Celery("dockyard-monitor")
app.config_from_object(celery_config(CommonSettings()))
