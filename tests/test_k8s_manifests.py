"""deploy/k8s validates against the Kubernetes schema and runs every Procfile process safely."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from shared.supervise import parse_procfile

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "deploy/k8s"
#: The Kubernetes version the manifests are checked against (kubernetes-validate bundles it).
KUBERNETES_VERSION = "1.33.0"
#: Procfile entries that are not long-running processes.
NOT_DEPLOYED = {"ready"}
#: Processes that drive the Docker engine and so get DOCKER_HOST.
ENGINE_USERS = {"tasks-launcher", "tasks-worker", "tasks-monitor"}


def documents() -> list[tuple[str, dict]]:
    """(file name, document) of every Kubernetes manifest (kustomization.yaml is kustomize's)."""
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


DOCUMENTS = documents()
DEPLOYMENTS = {doc["metadata"]["name"]: doc for _, doc in DOCUMENTS if doc["kind"] == "Deployment"}
PROCFILE = {entry.name: entry.command for entry in parse_procfile((REPO / "Procfile").read_text())}


def pod_specs() -> list[tuple[str, dict]]:
    """(name, pod spec) of every Deployment and Job."""
    return [
        (doc["metadata"]["name"], doc["spec"]["template"]["spec"])
        for _, doc in DOCUMENTS
        if doc["kind"] in ("Deployment", "Job")
    ]


@pytest.mark.parametrize(
    "name, document",
    DOCUMENTS,
    ids=[f"{name}:{doc['kind']}/{doc['metadata']['name']}" for name, doc in DOCUMENTS],
)
def test_every_manifest_validates_strictly_against_the_kubernetes_schema(name, document):
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_strict_schema_check_refuses_an_unknown_field():
    deployment = yaml.safe_load(yaml.safe_dump(DEPLOYMENTS["auth"]))
    deployment["spec"]["template"]["spec"]["containers"][0]["runAsRoot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_template():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files - {"secret.template.yaml"}


def test_every_procfile_process_has_a_deployment():
    assert set(PROCFILE) - NOT_DEPLOYED <= set(DEPLOYMENTS)


def test_each_deployment_runs_its_procfile_command():
    for name, command in PROCFILE.items():
        if name in NOT_DEPLOYED:
            continue
        (container,) = DEPLOYMENTS[name]["spec"]["template"]["spec"]["containers"]
        # The Procfile's ${VAR:-default} become the default; K8s binds all interfaces.
        expected = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", command).split()
        expected = [part.replace("127.0.0.1:", "0.0.0.0:") for part in expected]
        actual = " ".join(container["command"])
        # Beat keeps its schedule file in /tmp: the root filesystem is read-only.
        actual = actual.replace(" --schedule /tmp/celerybeat-schedule", "").split()
        assert actual == expected, name


def test_every_container_has_limits_and_a_locked_down_security_context():
    for name, spec in pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            limits = container["resources"]["limits"]
            assert {"cpu", "memory"} <= set(limits), name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert "add" not in security["capabilities"], name
            assert not security.get("privileged", False), name


def test_every_container_runs_the_one_dockyard_image():
    images = {c["image"] for _, spec in pod_specs() for c in spec["containers"]}
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    (override,) = kustomization["images"]
    assert images == {f"{override['name']}:{override['newTag']}"}


def test_http_processes_have_health_and_readiness_probes():
    for name in ("auth", "files", "tasks", "gateway"):
        (container,) = DEPLOYMENTS[name]["spec"]["template"]["spec"]["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name


def test_no_pod_mounts_the_nodes_docker_socket_and_only_engine_users_get_docker_host():
    for name, spec in pod_specs():
        assert not any("hostPath" in volume for volume in spec.get("volumes", [])), name
        env = {var["name"] for c in spec["containers"] for var in c.get("env", [])}
        assert ("DOCKER_HOST" in env) == (name in ENGINE_USERS), name


def test_the_secret_template_holds_no_values():
    (secret,) = [doc for name, doc in DOCUMENTS if doc["kind"] == "Secret"]
    assert set(secret["stringData"].values()) == {""}


def test_only_the_gateways_public_port_is_open_outside_the_namespace():
    policies = {
        doc["metadata"]["name"]: doc for _, doc in DOCUMENTS if doc["kind"] == "NetworkPolicy"
    }
    deny = policies["default-deny-ingress"]["spec"]
    assert deny["podSelector"] == {} and deny["ingress"] == [{"from": [{"podSelector": {}}]}]
    public = policies["gateway-public"]["spec"]
    assert public["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "gateway"
    assert public["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8000}]}]
    services = [doc for _, doc in DOCUMENTS if doc["kind"] == "Service"]
    assert all(doc["spec"].get("type", "ClusterIP") == "ClusterIP" for doc in services)
