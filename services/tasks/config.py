"""Settings of the tasks service, from the environment."""

from __future__ import annotations

from shared.config import CommonSettings, EnvVar, database_url_var, parse_bool, parse_list


class TasksSettings(CommonSettings):
    """Everything the tasks service reads from its environment."""

    DATABASE_URL = database_url_var("tasks")
    MAX_TIMEOUT_SECONDS = EnvVar(
        "TASKS_MAX_TIMEOUT_SECONDS",
        int,
        default=24 * 3600,
        doc="Longest timeout a task may ask for (seconds, counted from the container's start).",
    )
    DEFAULT_TIMEOUT_SECONDS = EnvVar(
        "TASKS_DEFAULT_TIMEOUT_SECONDS",
        int,
        default=3600,
        doc="Timeout of a task that gives none (seconds).",
    )
    MAX_CPU = EnvVar("TASKS_MAX_CPU", float, default=4.0, doc="Most CPU cores a task may ask for.")
    DEFAULT_CPU = EnvVar(
        "TASKS_DEFAULT_CPU", float, default=1.0, doc="CPU cores of a task that gives no limit."
    )
    MAX_MEMORY_MB = EnvVar(
        "TASKS_MAX_MEMORY_MB", int, default=4096, doc="Most memory a task may ask for (MiB)."
    )
    DEFAULT_MEMORY_MB = EnvVar(
        "TASKS_DEFAULT_MEMORY_MB",
        int,
        default=512,
        doc="Memory limit of a task that gives none (MiB).",
    )
    MAX_RETRIES = EnvVar(
        "TASKS_MAX_RETRIES", int, default=5, doc="Most retries a task may ask for."
    )
    DEFAULT_RETRIES = EnvVar(
        "TASKS_DEFAULT_RETRIES", int, default=0, doc="Retries of a task that gives none."
    )
    ALLOW_NETWORK = EnvVar(
        "TASKS_ALLOW_NETWORK",
        parse_bool,
        default=False,
        doc="Whether a task may ask for network access (`network: true`); off by default.",
    )
    IMAGE_ALLOWLIST = EnvVar(
        "TASKS_IMAGE_ALLOWLIST",
        parse_list,
        default=[],
        doc="Comma-separated shell-style patterns (e.g. `busybox*,registry.example.com/ci/*`) "
        "matched against a task's image as written and against its repository (the reference "
        "without tag or digest); empty allows every image.",
    )
    LOG_MAX_BYTES = EnvVar(
        "TASKS_LOG_MAX_BYTES",
        int,
        default=1024 * 1024,
        doc="Bytes of output kept per task and stream (stdout, stderr); older output is dropped "
        "and the logs say so.",
    )
