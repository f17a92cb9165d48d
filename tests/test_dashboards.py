"""The Grafana dashboard asks only for metrics Dockyard exports; Prometheus scrapes every process.

Every metric name in every PromQL expression of deploy/grafana/dashboards/*.json must be served
by the real /metrics of auth, files and tasks (Flask test clients), by the registries of the
gateway, relay and consumer modules, or by Celery Flower; rabbitmq_* names come from RabbitMQ's
rabbitmq_prometheus plugin, which is not enabled on this machine, so they are an allow-list.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from services.gateway.config import GatewaySettings

REPO = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((REPO / "deploy/grafana/dashboards").glob("*.json"))
PROMETHEUS = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
PROCFILE = (REPO / "Procfile").read_text()

#: The rabbitmq_prometheus plugin's per-object queue metrics the dashboard uses
#: (https://www.rabbitmq.com/docs/prometheus, /metrics/per-object).
RABBITMQ_PLUGIN = {
    "rabbitmq_queue_messages_ready",
    "rabbitmq_queue_messages_unacked",
    "rabbitmq_queue_consumers",
}
#: PromQL functions, aggregations and keywords: identifiers that are not metric names.
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "rate", "irate", "increase", "delta",
    "histogram_quantile", "clamp_min", "clamp_max", "topk", "bottomk", "on", "ignoring",
    "group_left", "group_right", "and", "or", "unless", "offset", "abs", "time",
}  # fmt: skip
#: What prometheus_client appends to a family's name in the exposition.
SUFFIXES = ("", "_total", "_bucket", "_count", "_sum")
#: Metrics ports scraped but not yet given in the Procfile: docker-compose.yml runs consume-files
#: with the Procfile's exact command (tests/test_compose.py), so the flag lands in both at once.
PENDING_IN_PROCFILE = {9112}


def dashboard_expressions() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel of every dashboard."""
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                found.append((panel["title"], target["expr"]))
    return found


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects (labels, ranges and functions removed)."""
    stripped = re.sub(r'"[^"]*"', "", expression)
    stripped = re.sub(r"\{[^}]*\}", "", stripped)
    stripped = re.sub(r"\[[^\]]*\]", "", stripped)
    stripped = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", stripped)
    names = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b(?!\s*\()", stripped))
    return names - PROMQL_WORDS


def exposed(families) -> set[str]:
    """Every series name a set of metric families may appear under."""
    return {family.name + suffix for family in families for suffix in SUFFIXES}


@pytest.fixture(scope="module")
def exported(test_env, tmp_path_factory) -> set[str]:
    """The metric names the real processes export."""
    from flower.events import get_prometheus_metrics
    from prometheus_client import REGISTRY

    import shared.messaging.consumer  # noqa: F401  (registers the consumer counters)
    import shared.outbox.relay  # noqa: F401  (registers the relay counters)
    from services.auth.app import create_app as create_auth
    from services.auth.config import AuthSettings
    from services.files.app import create_app as create_files
    from services.files.config import FilesSettings
    from services.gateway.plumbing import RequestPlumbing
    from services.tasks.app import create_app as create_tasks
    from services.tasks.config import TasksSettings

    names: set[str] = set()
    storage = tmp_path_factory.mktemp("files")
    for app in (
        create_auth(AuthSettings()),
        create_files(FilesSettings(STORAGE_BACKEND="local", STORAGE_DIR=str(storage))),
        create_tasks(TasksSettings()),
    ):
        client = app.test_client()
        client.get("/healthz")  # so the request counters have a sample to show
        response = client.get("/metrics")
        assert response.status_code == 200
        names |= exposed(text_string_to_metric_families(response.get_data(as_text=True)))
    gateway = CollectorRegistry()
    RequestPlumbing(None, registry=gateway, endpoints=set())
    names |= exposed(gateway.collect())
    get_prometheus_metrics()  # Flower's metrics, registered on the default registry
    names |= exposed(REGISTRY.collect())
    return names


def test_every_dashboard_expression_uses_exported_metrics(exported):
    expressions = dashboard_expressions()
    assert expressions, "no dashboard panels found"
    missing = {
        (title, name)
        for title, expression in expressions
        for name in metric_names(expression)
        if name not in exported and name not in RABBITMQ_PLUGIN
    }
    assert not missing, f"metrics no process exports: {sorted(missing)}"


def test_the_dashboard_covers_what_operators_watch():
    used = set().union(*(metric_names(expression) for _, expression in dashboard_expressions()))
    for name in (
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "dockyard_outbox_pending",
        "dockyard_outbox_lag_seconds",
        "dockyard_consumer_retries_total",
        "dockyard_consumer_dead_lettered_total",
        "flower_task_runtime_seconds_bucket",
        "flower_events_total",
        "rabbitmq_queue_messages_ready",
        "dockyard_tasks",
        "dockyard_sagas",
        "dockyard_container_starts_per_second",
        "dockyard_file_processing_bytes_per_second",
    ):
        assert name in used, name


def test_metric_names_are_read_from_promql():
    expression = (
        "histogram_quantile(0.95, sum by (le, task) (rate(flower_task_runtime_seconds_bucket"
        '{type="x"}[$__rate_interval]))) / on (job) up'
    )
    assert metric_names(expression) == {"flower_task_runtime_seconds_bucket", "up"}


def scraped_ports(job: str) -> set[int]:
    """The ports of a scrape job's targets."""
    (config,) = [c for c in PROMETHEUS["scrape_configs"] if c["job_name"] == job]
    return {
        int(target.rsplit(":", 1)[1])
        for static in config["static_configs"]
        for target in static["targets"]
    }


def test_prometheus_scrapes_every_metrics_port_of_the_procfile():
    procfile_ports = {int(port) for port in re.findall(r"--metrics-port (\d+)", PROCFILE)}
    scraped = scraped_ports("dockyard-relay") | scraped_ports("dockyard-consumer")
    scraped |= scraped_ports("dockyard-sagas")
    assert procfile_ports and scraped == procfile_ports | PENDING_IN_PROCFILE


def test_prometheus_scrapes_the_rest_services_and_the_gateway_at_their_default_ports():
    rest = {int(port) for port in re.findall(r"\$\{(?:AUTH|FILES|TASKS)_PORT:-(\d+)\}", PROCFILE)}
    assert len(rest) == 3 and scraped_ports("dockyard-rest") == rest
    assert scraped_ports("dockyard-gateway") == {GatewaySettings.INTERNAL_PORT.default}


def test_the_grafana_provisioning_points_at_the_dashboards_and_prometheus():
    provisioning = REPO / "deploy/grafana/provisioning"
    datasource = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())
    uids = {source["uid"] for source in datasource["datasources"]}
    providers = yaml.safe_load((provisioning / "dashboards/dockyard.yml").read_text())
    assert providers["providers"][0]["type"] == "file"
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            if "datasource" in panel:
                assert panel["datasource"]["uid"] in uids, panel["title"]
