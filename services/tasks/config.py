"""Settings of the tasks service, from the environment."""

from __future__ import annotations

from shared.config import CommonSettings, database_url_var


class TasksSettings(CommonSettings):
    """Everything the tasks service reads from its environment."""

    DATABASE_URL = database_url_var("tasks")
