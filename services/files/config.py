"""Settings of the files service, from the environment."""

from __future__ import annotations

from shared.config import CommonSettings, database_url_var


class FilesSettings(CommonSettings):
    """Everything the files service reads from its environment."""

    DATABASE_URL = database_url_var("files")
