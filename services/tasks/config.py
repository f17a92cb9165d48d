"""Settings of the tasks service, from the environment."""

from __future__ import annotations

from shared import plugins
from shared.celery import parse_countdown
from shared.config import (
    CommonSettings,
    ConfigError,
    EnvVar,
    database_url_var,
    parse_bool,
    parse_list,
    parse_positive_int,
    service_url_var,
)
from shared.notifications import NOTIFICATION_CHANNELS
from shared.service_identity import (
    SERVICE_CREDENTIAL_REQUIRED,
    peer_secret_var,
    service_secret_var,
)

#: Longest executor name: a task keeps its executor's name in 32 characters (models.Task).
MAX_EXECUTOR_NAME = 32


def parse_executors(raw: str) -> list[str]:
    """A comma-separated list of installed executors (`dockyard.executors` plugins), at least one.

    Checked against what is installed, so a name nothing provides stops start-up.
    """
    names = parse_list(raw)
    if not names:
        raise ValueError("must name at least one executor, e.g. docker")
    if len(set(names)) != len(names):
        raise ValueError("names an executor twice")
    too_long = [name for name in names if len(name) > MAX_EXECUTOR_NAME]
    if too_long:
        raise ValueError(f"executor names must be at most {MAX_EXECUTOR_NAME} characters")
    for name in names:
        try:
            plugins.require("executor", name, setting="TASKS_EXECUTORS")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
    return names


class TasksSettings(CommonSettings):
    """Everything the tasks service reads from its environment."""

    DATABASE_URL = database_url_var("tasks")
    SERVICE_SECRET = service_secret_var("tasks")
    SERVICE_CREDENTIAL_REQUIRED = SERVICE_CREDENTIAL_REQUIRED
    # The files worker pulls finished tasks' outputs here (output_api.py), with this key.
    FILES_TO_TASKS_SECRET = peer_secret_var("files", "tasks")
    MAX_TIMEOUT_SECONDS = EnvVar(
        "TASKS_MAX_TIMEOUT_SECONDS",
        int,
        default=3600,
        doc="Longest timeout a task may ask for (seconds, counted from the container's start); "
        "with a few task slots shared by every user, long timeouts let one user hold them.",
    )
    DEFAULT_TIMEOUT_SECONDS = EnvVar(
        "TASKS_DEFAULT_TIMEOUT_SECONDS",
        int,
        default=900,
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
    EXECUTORS = EnvVar(
        "TASKS_EXECUTORS",
        parse_executors,
        default=["docker"],
        doc="Comma-separated executors a task may ask for (`executor`): `docker` (the engine at "
        "DOCKER_HOST), `swarm` (a replicated-job service on the Swarm that engine manages) or "
        "any installed `dockyard.executors` plugin (docs/executors.md, docs/plugins.md); a name "
        "that is not installed stops start-up. The first is the default of a task that names "
        "none.",
    )
    IMAGE_ALLOWLIST = EnvVar(
        "TASKS_IMAGE_ALLOWLIST",
        parse_list,
        default=[],
        doc="Comma-separated shell-style patterns (e.g. `busybox*,registry.example.com/ci/*`, or "
        "`registry.example.com/ci/tool@sha256:<64 hex>` to pin a digest) matched against a "
        "task's image as written, its repository (the reference without tag or digest) and its "
        "repository@digest; empty allows every image, which production refuses: set it there.",
        dev_only_default=True,
    )
    REGISTRY_PRIVATE_ALLOWLIST = EnvVar(
        "TASKS_REGISTRY_PRIVATE_ALLOWLIST",
        parse_list,
        default=[],
        doc="Comma-separated registry hosts (`host` or `host:port`) and address ranges (CIDR, "
        "e.g. `10.20.0.0/16`) images may be pulled from although they are IP addresses, "
        "`localhost`, or resolve to loopback, private or link-local addresses; every other such "
        "registry is refused (the engine would otherwise reach into the server's own network).",
    )
    MAX_ACTIVE_TASKS_PER_USER = EnvVar(
        "TASKS_MAX_ACTIVE_TASKS_PER_USER",
        parse_positive_int,
        default=100,
        doc="Tasks one user may have not yet finished (pending, queued or running); "
        "`createTask` beyond it is refused with CONFLICT until some finish.",
    )
    CREATE_LIMIT_PER_USER = EnvVar(
        "TASKS_CREATE_LIMIT_PER_USER",
        default="60/minute",
        doc="Tasks one user may create (flask-limiter syntax, e.g. `60/minute;600/hour`); "
        "beyond it RATE_LIMITED (HTTP 429 with Retry-After).",
    )
    LOG_MAX_BYTES = EnvVar(
        "TASKS_LOG_MAX_BYTES",
        int,
        default=1024 * 1024,
        doc="Bytes of output kept per task and stream (stdout, stderr); older output is dropped "
        "and the logs say so. The engine's own log of a task container is capped from it too "
        "(json-file, 2 files of 8x this: at most 16x this on the engine's disk per container), "
        "and every read of it keeps at most this much per stream.",
    )
    LOG_FOLLOW_POLL_SECONDS = EnvVar(
        "TASKS_LOG_FOLLOW_POLL_SECONDS",
        float,
        default=0.5,
        doc="How often a `logs?follow=true` stream looks for new output.",
    )
    LOG_FOLLOW_MAX_SECONDS = EnvVar(
        "TASKS_LOG_FOLLOW_MAX_SECONDS",
        parse_positive_int,
        default=300,
        doc="Longest a `logs?follow=true` stream stays open; it then ends even if the task runs "
        "on (clients read the task's status, and `logs/chunks?after=` resumes by chunk id).",
    )
    LOG_FOLLOW_MAX_STREAMS = EnvVar(
        "TASKS_LOG_FOLLOW_MAX_STREAMS",
        parse_positive_int,
        default=4,
        doc="`logs?follow=true` streams one process serves at once (each holds a request thread: "
        "keep it below GUNICORN_THREADS); more are answered 503 with Retry-After.",
    )

    # Workflows (workflows.py).
    WORKFLOW_MAX_STEPS = EnvVar(
        "TASKS_WORKFLOW_MAX_STEPS",
        parse_positive_int,
        default=200,
        doc="Steps one workflow may have; `createWorkflow` with more is BAD_USER_INPUT.",
    )

    # Recurring schedules (schedules.py; fired by `python -m services.tasks.scheduler`).
    SCHEDULES_MAX_PER_USER = EnvVar(
        "TASKS_SCHEDULES_MAX_PER_USER",
        parse_positive_int,
        default=20,
        doc="Schedules one user may have (paused ones included); `createSchedule` beyond it is "
        "refused with CONFLICT.",
    )
    SCHEDULE_MIN_INTERVAL_SECONDS = EnvVar(
        "TASKS_SCHEDULE_MIN_INTERVAL_SECONDS",
        parse_positive_int,
        default=60,
        doc="Shortest time between two runs of one schedule (seconds): a shorter "
        "`intervalSeconds`, or a cron expression firing more often, is BAD_USER_INPUT.",
    )
    SCHEDULE_MISFIRE_GRACE_SECONDS = EnvVar(
        "TASKS_SCHEDULE_MISFIRE_GRACE_SECONDS",
        float,
        default=60.0,
        doc="A fire time the scheduler reaches later than this (seconds; after downtime, say) is "
        "missed: the schedule's misfire policy decides whether it still runs.",
    )
    SCHEDULE_CATCH_UP_MAX = EnvVar(
        "TASKS_SCHEDULE_CATCH_UP_MAX",
        parse_positive_int,
        default=10,
        doc="Missed fire times a `RUN_ALL` schedule still runs after downtime (the latest ones); "
        "older ones are skipped and reported in its ScheduleMisfired event.",
    )
    SCHEDULER_SAFETY_POLL_SECONDS = EnvVar(
        "TASKS_SCHEDULER_SAFETY_POLL_SECONDS",
        float,
        default=30.0,
        doc="Longest the scheduler sleeps without looking for due schedules; it otherwise wakes "
        "at the next fire time, or when a schedule is created or resumed (LISTEN/NOTIFY).",
    )

    # The execution engine (worker, monitor).
    DOCKER_HOST = EnvVar(
        "DOCKER_HOST",
        default="",
        doc="Docker Engine API the worker and monitor drive (e.g. `unix:///var/run/docker.sock`); "
        "empty uses the Docker SDK's default socket.",
    )
    DOCKER_TIMEOUT_SECONDS = EnvVar(
        "TASKS_DOCKER_TIMEOUT_SECONDS",
        float,
        default=30.0,
        doc="Timeout of one Docker Engine API call (seconds), image pulls included.",
    )
    WORKER_CONCURRENCY = EnvVar(
        "TASKS_WORKER_CONCURRENCY",
        int,
        default=8,
        doc="Task containers running at once on the engine; further tasks wait QUEUED.",
    )
    SLOT_WAIT_SECONDS = EnvVar(
        "TASKS_SLOT_WAIT_SECONDS",
        float,
        default=10.0,
        doc="How long a start job waits for a free slot before it re-queues itself (keeps "
        "every Celery message acked well within RabbitMQ's consumer_timeout).",
    )
    ENGINE_RETRIES = EnvVar(
        "TASKS_ENGINE_RETRIES",
        int,
        default=3,
        doc="Retries of a start that failed on the engine's side (unreachable, 5xx) before the "
        "task fails with ENGINE_UNREACHABLE or ENGINE_ERROR.",
    )
    RETRY_BACKOFF_SECONDS = EnvVar(
        "TASKS_RETRY_BACKOFF_SECONDS",
        float,
        default=1.0,
        doc="First retry delay (seconds); each further retry waits twice as long.",
    )
    RETRY_BACKOFF_MAX_SECONDS = EnvVar(
        "TASKS_RETRY_BACKOFF_MAX_SECONDS",
        parse_countdown,
        default=60.0,
        doc="Longest retry delay (seconds, at most 900: a Celery countdown must end well within "
        "RabbitMQ's consumer_timeout).",
    )
    DEFAULT_PIDS_LIMIT = EnvVar(
        "TASKS_PIDS_LIMIT", int, default=256, doc="Most processes a task container may run."
    )
    TMPFS_SIZE_MB = EnvVar(
        "TASKS_TMPFS_SIZE_MB",
        int,
        default=64,
        doc="Size of the writable tmpfs at /tmp in a task container (MiB); the rest of the root "
        "filesystem is read-only.",
    )
    CONTAINER_USER = EnvVar(
        "TASKS_CONTAINER_USER",
        default="65534:65534",
        doc="User task containers run as (nobody); empty keeps the image's own user.",
    )
    # Task outputs (services/tasks/outputs.py and output_saga.py).
    OUTPUT_DIR = EnvVar(
        "TASKS_OUTPUT_DIR",
        default="./var/task-outputs",
        doc="Host directory holding each task attempt's /output (bind-mounted read-write into its "
        "container). Every tasks process (REST service, launcher, worker, monitor, consumer, "
        "saga sweep) must see it at this same path, which must also be its path on the Docker "
        "engine's host (a bind mount is the host's path). Created if missing.",
    )
    OUTPUT_MAX_FILES = EnvVar(
        "TASKS_OUTPUT_MAX_FILES",
        parse_positive_int,
        default=100,
        doc="Most regular files a task may leave under /output: a running task over it is "
        "killed (FAILED, OUTPUT_LIMIT_EXCEEDED), and no more than this many are ever stored.",
    )
    OUTPUT_MAX_BYTES = EnvVar(
        "TASKS_OUTPUT_MAX_BYTES",
        parse_positive_int,
        default=100 * 1024 * 1024,
        doc="Most bytes a task's /output files may hold together: a running task over it is "
        "killed (FAILED, OUTPUT_LIMIT_EXCEEDED), and no more than this many are ever stored.",
    )
    OUTPUT_STEP_TIMEOUT_SECONDS = EnvVar(
        "TASKS_OUTPUT_STEP_TIMEOUT_SECONDS",
        float,
        default=60.0,
        doc="How long the task_outputs saga waits for files to store a task's outputs before it "
        "asks again (files' side is idempotent).",
    )
    OUTPUT_STEP_ATTEMPTS = EnvVar(
        "TASKS_OUTPUT_STEP_ATTEMPTS",
        parse_positive_int,
        default=10,
        doc="How many times the task_outputs saga asks files to store a task's outputs before it "
        "fails (the outputs are then deleted and the task says why).",
    )
    LOG_FLUSH_SECONDS = EnvVar(
        "TASKS_LOG_FLUSH_SECONDS",
        float,
        default=0.5,
        doc="How often the monitor stores a running task's new output (one batch per stream) and "
        "looks at its container and cancel requests (the engine's die event ends a task at once; "
        "this look is the safety net of a missed event).",
    )
    USAGE_SAMPLE_SECONDS = EnvVar(
        "TASKS_USAGE_SAMPLE_SECONDS",
        float,
        default=2.0,
        doc="How often the monitor samples a running container's CPU and memory.",
    )
    RECONCILE_SECONDS = EnvVar(
        "TASKS_RECONCILE_SECONDS",
        float,
        default=15.0,
        doc="How often the monitor matches labelled containers to tasks and re-dispatches "
        "QUEUED tasks whose start job vanished.",
    )
    REDISPATCH_AFTER_SECONDS = EnvVar(
        "TASKS_REDISPATCH_AFTER_SECONDS",
        float,
        default=60.0,
        doc="A QUEUED task no start job touched for this long is dispatched again.",
    )

    # Input files (the task_input_file saga, input_files.py and input_staging.py).
    INPUT_DIR = EnvVar(
        "TASKS_INPUT_DIR",
        default="./var/task-inputs",
        doc="Host directory where the launcher and start jobs write each task's input file "
        "(one read-only directory per task, bind-mounted at /input). It must be the same path "
        "on the Docker engine's host as in these processes (see docker-compose.yml); created if "
        "missing.",
    )
    FILES_SERVICE_URL = service_url_var("files", 8002)
    # Signs the start jobs' calls to files as the tasks service's own, never as the gateway.
    TASKS_TO_FILES_SECRET = peer_secret_var("tasks", "files")
    INPUT_FETCH_TIMEOUT_SECONDS = EnvVar(
        "TASKS_INPUT_FETCH_TIMEOUT_SECONDS",
        float,
        default=30.0,
        doc="Timeout of each read while a start fetches a task's input file from files.",
    )
    INPUT_FILE_STEP_TIMEOUT_SECONDS = EnvVar(
        "TASKS_INPUT_FILE_STEP_TIMEOUT_SECONDS",
        parse_positive_int,
        default=30,
        doc="How long the task_input_file saga waits for files to lease (or refuse) the file "
        "before asking again.",
    )
    INPUT_FILE_STEP_ATTEMPTS = EnvVar(
        "TASKS_INPUT_FILE_STEP_ATTEMPTS",
        parse_positive_int,
        default=5,
        doc="Times the task_input_file saga asks files for the lease before the task ends FAILED.",
    )

    # Notification deliveries (the worker's `tasks.deliver_notification` job).
    NOTIFICATION_CHANNELS = NOTIFICATION_CHANNELS
    NOTIFY_RETRY_BACKOFF_SECONDS = EnvVar(
        "TASKS_NOTIFY_RETRY_BACKOFF_SECONDS",
        parse_positive_int,
        default=2,
        doc="First delay before a failed notification delivery is sent again (seconds); the "
        "bound doubles with every retry and the delay is drawn below it (full jitter).",
    )
    NOTIFY_RETRY_BACKOFF_MAX_SECONDS = EnvVar(
        "TASKS_NOTIFY_RETRY_BACKOFF_MAX_SECONDS",
        parse_countdown,
        default=300.0,
        doc="Longest delay between two tries of a notification delivery (seconds, at most 900).",
    )
    NOTIFY_MAX_RETRIES = EnvVar(
        "TASKS_NOTIFY_MAX_RETRIES",
        int,
        default=10,
        doc="Retries of a notification delivery whose channel fails before it ends FAILED.",
    )

    # User notifications (services/tasks/notifications/, docs/notifications.md).
    NOTIFY_SWEEP_AFTER_SECONDS = EnvVar(
        "TASKS_NOTIFY_SWEEP_AFTER_SECONDS",
        float,
        default=1800.0,
        doc="A delivery still PENDING this long after its last change is sent again by the "
        "monitor's reconcile pass (longer than the longest retry backoff).",
    )
    WEBHOOK_ALLOW_PRIVATE = EnvVar(
        "TASKS_WEBHOOK_ALLOW_PRIVATE",
        parse_bool,
        default=False,
        doc="Let webhook URLs resolve to loopback, private or link-local addresses (development "
        "and tests only: in production it lets users reach internal services).",
    )
    WEBHOOK_PRIVATE_ALLOWLIST = EnvVar(
        "TASKS_WEBHOOK_PRIVATE_ALLOWLIST",
        parse_list,
        default=[],
        doc="Webhook hosts (`host`, `host:port`) and address ranges (CIDR) allowed although "
        "they are not public, comma-separated.",
    )
    WEBHOOK_TIMEOUT_SECONDS = EnvVar(
        "TASKS_WEBHOOK_TIMEOUT_SECONDS",
        float,
        default=10.0,
        doc="Connect and read timeout of one webhook delivery.",
    )
    WEBHOOK_DISABLE_AFTER_FAILURES = EnvVar(
        "TASKS_WEBHOOK_DISABLE_AFTER_FAILURES",
        parse_positive_int,
        default=20,
        doc="Failed delivery attempts in a row after which a webhook is disabled (its owner is "
        "told by log line and mail).",
    )
    MAX_WEBHOOKS = EnvVar(
        "TASKS_MAX_WEBHOOKS", parse_positive_int, default=10, doc="Most webhooks one user may have."
    )
    SMTP_HOST = EnvVar(
        "TASKS_SMTP_HOST", default="127.0.0.1", doc="SMTP server of notification mail."
    )
    SMTP_PORT = EnvVar("TASKS_SMTP_PORT", int, default=25, doc="Port of that SMTP server.")
    SMTP_USERNAME = EnvVar(
        "TASKS_SMTP_USERNAME", default="", doc="SMTP login user of notification mail (empty: none)."
    )
    SMTP_PASSWORD = EnvVar(
        "TASKS_SMTP_PASSWORD",
        default="",
        doc="SMTP login password of notification mail.",
        secret=True,
    )
    SMTP_FROM = EnvVar(
        "TASKS_SMTP_FROM",
        default="Dockyard <notifications@dockyard.localhost>",
        doc="From address of notification mail; its domain also names the Message-IDs.",
    )
    SMTP_STARTTLS = EnvVar(
        "TASKS_SMTP_STARTTLS",
        parse_bool,
        default=False,
        doc="Upgrade the notification SMTP connection with STARTTLS before logging in.",
    )
    SMTP_TIMEOUT = EnvVar(
        "TASKS_SMTP_TIMEOUT_SECONDS", float, default=30.0, doc="SMTP connect and command timeout."
    )
