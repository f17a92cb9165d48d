"""Settings of the files service, from the environment."""

from __future__ import annotations

from shared.config import CommonSettings, ConfigError, EnvVar, database_url_var

GIB = 1024**3
STORAGE_BACKENDS = ("local", "s3")


def parse_backend(raw: str) -> str:
    """`local` or `s3`."""
    backend = raw.strip().lower()
    if backend not in STORAGE_BACKENDS:
        raise ValueError(f"expected one of {', '.join(STORAGE_BACKENDS)}")
    return backend


def parse_byte_count(raw: str) -> int:
    """A positive number of bytes."""
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive number of bytes")
    return value


class FilesSettings(CommonSettings):
    """Everything the files service reads from its environment."""

    DATABASE_URL = database_url_var("files")
    STORAGE_BACKEND = EnvVar(
        "FILES_STORAGE_BACKEND",
        parse_backend,
        default="local",
        doc="Where uploaded content is stored: `local` (a directory) or `s3` (S3-compatible).",
    )
    STORAGE_DIR = EnvVar(
        "FILES_STORAGE_DIR",
        default="./var/files",
        doc="Directory of the `local` storage backend (created when missing).",
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

    def __init__(self, environ=None, **overrides) -> None:
        super().__init__(environ, **overrides)
        if self.STORAGE_BACKEND == "s3" and not self.S3_BUCKET:
            raise ConfigError("FILES_S3_BUCKET is required when FILES_STORAGE_BACKEND=s3")
