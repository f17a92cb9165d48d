"""Settings of the files service, from the environment."""

from __future__ import annotations

import re

from shared.config import (
    CommonSettings,
    ConfigError,
    EnvVar,
    database_url_var,
    parse_positive_int,
    service_url_var,
)
from shared.service_identity import (
    SERVICE_CREDENTIAL_REQUIRED,
    peer_secret_var,
    service_secret_var,
)

GIB = 1024**3
STORAGE_BACKENDS = ("local", "s3")
_BACKEND_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_PROCESSOR_ENTRY = re.compile(r"^([a-z][a-z0-9_.-]{0,63})=([\w.]+:[\w.]+)$")


def parse_backend(raw: str) -> str:
    """A storage plugin's name: `local`, `s3` or an installed `dockyard.storage` plugin's."""
    backend = raw.strip().lower()
    # Whether it is installed is checked when the backend is built (shared.plugins.require).
    if not _BACKEND_NAME.match(backend):
        raise ValueError(f"expected a storage plugin's name, e.g. {', '.join(STORAGE_BACKENDS)}")
    return backend


def parse_byte_count(raw: str) -> int:
    """A positive number of bytes."""
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive number of bytes")
    return value


def parse_seconds(raw: str) -> float:
    """A positive number of seconds."""
    value = float(raw)
    if not value > 0:
        raise ValueError("must be a positive number of seconds")
    return value


def parse_processors(raw: str) -> list[tuple[str, str]]:
    """`name=module:attribute` pairs, comma-separated."""
    pairs = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        match = _PROCESSOR_ENTRY.match(item)
        if match is None:
            raise ValueError(f"{item!r} is not name=module:attribute")
        pairs.append((match[1], match[2]))
    return pairs


class FilesSettings(CommonSettings):
    """Everything the files service reads from its environment."""

    DATABASE_URL = database_url_var("files")
    SERVICE_SECRET = service_secret_var("files")
    SERVICE_CREDENTIAL_REQUIRED = SERVICE_CREDENTIAL_REQUIRED
    # The tasks service's start jobs fetch input files here (internal_api.py), with this key.
    TASKS_TO_FILES_SECRET = peer_secret_var("tasks", "files")
    # The worker pulls a finished task's outputs from the tasks service (task_outputs.py),
    # signing its calls with a key of the files worker's own, never as the gateway.
    TASKS_SERVICE_URL = service_url_var("tasks", 8003)
    FILES_TO_TASKS_SECRET = peer_secret_var("files", "tasks")
    STORAGE_BACKEND = EnvVar(
        "FILES_STORAGE_BACKEND",
        parse_backend,
        default="local",
        doc="Where uploaded content is stored: `local` (a directory), `s3` (S3-compatible) or "
        "the name of an installed `dockyard.storage` plugin (docs/plugins.md).",
    )
    STORAGE_DIR = EnvVar(
        "FILES_STORAGE_DIR",
        default="./var/files",
        doc="Directory of the `local` storage backend. It must exist: `make up` creates it, the "
        "services never do, and while it is missing (an unmounted volume) storage is unavailable "
        "(uploads answer 503, processing retries).",
    )
    S3_ENDPOINT_URL = EnvVar(
        "FILES_S3_ENDPOINT_URL",
        default="",
        doc="Endpoint of an S3-compatible server (MinIO, Ceph...); empty means AWS S3.",
    )
    S3_BUCKET = EnvVar(
        "FILES_S3_BUCKET",
        default="",
        doc="Bucket of the `s3` storage backend (required with it; it must already exist).",
    )
    S3_REGION = EnvVar("FILES_S3_REGION", default="us-east-1", doc="Region of the S3 bucket.")
    S3_ACCESS_KEY_ID = EnvVar(
        "FILES_S3_ACCESS_KEY_ID",
        default="",
        doc="S3 access key id; empty uses boto3's default chain (AWS_ACCESS_KEY_ID, roles...).",
        secret=True,
    )
    S3_SECRET_ACCESS_KEY = EnvVar(
        "FILES_S3_SECRET_ACCESS_KEY",
        default="",
        doc="S3 secret access key; empty uses boto3's default credential chain.",
        secret=True,
    )
    MAX_UPLOAD_BYTES = EnvVar(
        "FILES_MAX_UPLOAD_BYTES",
        parse_byte_count,
        default=GIB,
        doc="Largest file one upload may carry (413 PAYLOAD_TOO_LARGE above).",
    )
    USER_QUOTA_BYTES = EnvVar(
        "FILES_USER_QUOTA_BYTES",
        parse_byte_count,
        default=10 * GIB,
        doc="Bytes of stored files each user may hold in total (413 QUOTA_EXCEEDED above).",
    )

    INTAKE_MAX_BACKLOG = EnvVar(
        "FILES_INTAKE_MAX_BACKLOG",
        int,
        default=200_000,
        doc="Uploads are refused (503 SERVICE_UNAVAILABLE with Retry-After) while this many files "
        "wait for processing (plus events wait in the outbox); 0 never refuses.",
    )
    INTAKE_RETRY_AFTER_SECONDS = EnvVar(
        "FILES_INTAKE_RETRY_AFTER_SECONDS",
        parse_positive_int,
        default=5,
        doc="Retry-After of an upload refused because processing is behind.",
    )
    PROCESSING_RATE_LIMIT = EnvVar(
        "FILES_PROCESSING_RATE_LIMIT",
        default="",
        doc="Celery rate limit of file processing per worker process, e.g. `280/s` (a throttle, "
        "as bench/overload.py uses to process at half the upload rate); empty means none.",
    )
    PROCESSING_LEASE_SECONDS = EnvVar(
        "FILES_PROCESSING_LEASE_SECONDS",
        parse_seconds,
        default=60.0,
        doc="How long a worker's claim on a file lasts unless renewed (it renews it every third "
        "of this while it reads); a crashed worker's file is processed again once it lapses.",
    )
    SEARCH_TEXT_MAX_BYTES = EnvVar(
        "FILES_SEARCH_TEXT_MAX_BYTES",
        parse_byte_count,
        default=1024 * 1024,
        doc="Bytes at the start of a text file whose words file search indexes, read again from "
        "storage by the indexing job after processing (the rest of a longer file is found by its "
        "name and those words only).",
    )
    PROCESSING_MAX_ATTEMPTS = EnvVar(
        "FILES_PROCESSING_MAX_ATTEMPTS",
        parse_positive_int,
        default=5,
        doc="Times processing of one file may start before the file is marked FAILED (a file "
        "that kills its worker every time must not be retried forever).",
    )
    RETRY_BACKOFF_SECONDS = EnvVar(
        "FILES_RETRY_BACKOFF_SECONDS",
        parse_positive_int,
        default=2,
        doc="First delay before retrying a task after a transient failure (storage or database "
        "unreachable); it doubles with every retry, with full jitter.",
    )
    RETRY_BACKOFF_MAX_SECONDS = EnvVar(
        "FILES_RETRY_BACKOFF_MAX_SECONDS",
        parse_positive_int,
        default=300,
        doc="Longest delay between two retries of a task.",
    )
    MAX_RETRIES = EnvVar(
        "FILES_MAX_RETRIES",
        parse_positive_int,
        default=10,
        doc="Retries of a processing or search indexing task before it gives up "
        "(the reaper still finds a file left unprocessed; a text file left unindexed is found by "
        "its name only).",
    )
    REAPER_INTERVAL_SECONDS = EnvVar(
        "FILES_REAPER_INTERVAL_SECONDS",
        parse_seconds,
        default=30.0,
        doc="How often the beat process sweeps for files whose processing claim lapsed.",
    )
    STALE_UPLOAD_SECONDS = EnvVar(
        "FILES_STALE_UPLOAD_SECONDS",
        parse_seconds,
        default=600.0,
        doc="An UPLOADED file still waiting after this long is queued for processing again by "
        "the sweep (normally its FileUploaded event starts processing within a second).",
    )
    INPUT_LEASE_SECONDS = EnvVar(
        "FILES_INPUT_LEASE_SECONDS",
        parse_seconds,
        default=86400.0,
        doc="How long a file leased to a task as its input stays leased unless the task ends "
        "first (the reaper then drops the lease of a task that vanished, and logs it). Keep it "
        "above TASKS_MAX_TIMEOUT_SECONDS x (TASKS_MAX_RETRIES + 1) plus the longest queueing.",
    )
    PROCESSORS = EnvVar(
        "FILES_PROCESSORS",
        parse_processors,
        default=[],
        doc="Extra content processors, `name=module:attribute` pairs, comma-separated; each "
        "result lands in the file's `extra` under its name (see services/files/processors.py).",
    )

    def __init__(self, environ=None, **overrides) -> None:
        super().__init__(environ, **overrides)
        if self.STORAGE_BACKEND == "s3" and not self.S3_BUCKET:
            raise ConfigError("FILES_S3_BUCKET is required when FILES_STORAGE_BACKEND=s3")
