"""The chart's ``postgresql.mode: cloudnativepg``: a CloudNativePG Cluster, PgBouncer
Poolers for -rw and -ro, the wiring of DATABASE_URL / DATABASE_READ_URL and the PG*
variables to the operator's ``<cluster>-app`` Secret, and migrations in an initContainer
against the -rw Service.

Rendering and validation share ``test_chart.py``'s helpers: its OVERRIDES include the
cloudnativepg variants, so ``helm lint --strict``, the values schema and the validation
of every rendered object (core objects by ``kubernetes-validate``, the CloudNativePG ones
by the CRD schemas in ``tests/data/cloudnative-pg``) cover them; this module checks what
is rendered.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from tests.data import cloudnative_pg_schema
from tests.unit.charts.test_chart import (
    CHART,
    NAMESPACE,
    OVERRIDES,
    RELEASE,
    Manifest,
    env_of,
    helm,
    notes,
    of_kind,
    one,
    render,
    server_container,
)

CLUSTER = f"{RELEASE}-db"
APP_SECRET = f"{CLUSTER}-app"
CNPG: dict[str, Any] = {"postgresql": {"mode": "cloudnativepg"}}


def cnpg(**cloudnativepg: Any) -> dict[str, Any]:
    return {"postgresql": {"mode": "cloudnativepg", "cloudnativepg": cloudnativepg}}


def host(service: str) -> str:
    return f"{CLUSTER}-{service}.{NAMESPACE}.svc"


def url(service: str) -> str:
    return f"postgresql://app@{host(service)}:5432/app?sslmode=require"


def init_container(docs: list[Manifest]) -> Manifest:
    (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["initContainers"]
    assert isinstance(container, dict)
    return container


def by_name(docs: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {d["metadata"]["name"]: d for d in of_kind(docs, kind)}


@pytest.fixture(scope="module")
def docs() -> list[Manifest]:
    return render(CNPG)


def test_external_mode_is_the_default_and_renders_no_database() -> None:
    docs = render()
    assert not [d for d in docs if d["apiVersion"].startswith("postgresql.cnpg.io/")]
    assert of_kind(docs, "PodMonitor") == []
    assert one(docs, "Job")["metadata"]["name"] == f"{RELEASE}-migrate"
    assert "initContainers" not in one(docs, "Deployment")["spec"]["template"]["spec"]
    assert "DATABASE_READ_URL" not in env_of(server_container(docs))


def test_cloudnativepg_renders_the_cluster_poolers_and_monitors(docs: list[Manifest]) -> None:
    assert sorted((d["kind"], d["metadata"]["name"]) for d in docs
                  if d["kind"] in {"Cluster", "Pooler", "PodMonitor", "ScheduledBackup", "Job"}
                  ) == [("Cluster", CLUSTER), ("PodMonitor", CLUSTER),
                        ("PodMonitor", f"{CLUSTER}-pooler"), ("Pooler", f"{CLUSTER}-pooler-ro"),
                        ("Pooler", f"{CLUSTER}-pooler-rw")]
    for doc in docs:
        assert doc["metadata"]["namespace"] == NAMESPACE
    assert one(docs, "Cluster")["metadata"]["labels"]["app.kubernetes.io/component"] == (
        "database")


def test_the_cluster(docs: list[Manifest]) -> None:
    spec = one(docs, "Cluster")["spec"]
    assert spec == {
        "instances": 3,
        "imageName": "ghcr.io/cloudnative-pg/postgresql:15",
        "primaryUpdateStrategy": "unsupervised",
        "primaryUpdateMethod": "switchover",
        "bootstrap": {"initdb": {"database": "app", "owner": "app", "dataChecksums": True}},
        "postgresql": {"parameters": {
            "max_connections": "200", "shared_buffers": "512MB",
            "effective_cache_size": "1536MB", "work_mem": "16MB",
            "maintenance_work_mem": "256MB", "random_page_cost": "1.1",
            "idle_in_transaction_session_timeout": "5min"}},
        "storage": {"size": "20Gi"},
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"},
                      "limits": {"cpu": "2", "memory": "2Gi"}},
        "affinity": {"enablePodAntiAffinity": True, "topologyKey": "kubernetes.io/hostname",
                     "podAntiAffinityType": "preferred"},
    }


def test_the_poolers_are_session_mode_and_sized_to_the_connection_budget(
        docs: list[Manifest]) -> None:
    poolers = by_name(docs, "Pooler")
    # 10 replicas (HPA maximum) + 1 surge, 1 worker: rw 11 x (10 + 5), ro 11 x 10.
    for service, budget in (("rw", "165"), ("ro", "110")):
        spec = poolers[f"{CLUSTER}-pooler-{service}"]["spec"]
        assert spec["cluster"] == {"name": CLUSTER}
        assert spec["type"] == service
        assert spec["instances"] == 2
        assert spec["pgbouncer"] == {"poolMode": "session", "parameters": {
            "default_pool_size": budget, "max_client_conn": budget}}
        assert spec["template"]["spec"]["containers"] == [{"name": "pgbouncer", "resources": {
            "requests": {"cpu": "100m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": "128Mi"}}}]
    tuned = by_name(render(cnpg(pooler={"parameters": {"default_pool_size": 50,
                                                       "server_lifetime": "600"}})), "Pooler")
    assert tuned[f"{CLUSTER}-pooler-rw"]["spec"]["pgbouncer"]["parameters"] == {
        "default_pool_size": "50", "max_client_conn": "165", "server_lifetime": "600"}


def _secret_refs(container: Manifest) -> dict[str, tuple[str, str]]:
    return {name: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
            for name, e in env_of(container).items() if "valueFrom" in e}


def test_the_server_writes_through_the_rw_pooler_and_reads_through_the_ro_pooler(
        docs: list[Manifest]) -> None:
    container = server_container(docs)
    env = env_of(container)
    assert env["DATABASE_URL"] == {"name": "DATABASE_URL", "value": url("pooler-rw")}
    assert env["DATABASE_READ_URL"] == {"name": "DATABASE_READ_URL", "value": url("pooler-ro")}
    # The runbook's PG* variables stay true: psql in a pod reaches the same database.
    assert env["PGHOST"]["value"] == host("pooler-rw")
    assert env["PGPORT"]["value"] == "5432"
    assert env["PGSSLMODE"]["value"] == "require"
    assert _secret_refs(container) == {
        "PGUSER": (APP_SECRET, "username"), "PGPASSWORD": (APP_SECRET, "password"),
        "PGDATABASE": (APP_SECRET, "dbname"),
        # Redis and object storage still come from the existing Secret.
        "REDIS_URL": ("hospital-secrets", "REDIS_URL"),
        "AWS_ACCESS_KEY_ID": ("hospital-secrets", "AWS_ACCESS_KEY_ID"),
        "AWS_SECRET_ACCESS_KEY": ("hospital-secrets", "AWS_SECRET_ACCESS_KEY")}
    names = [e["name"] for e in container["env"]]
    assert len(names) == len(set(names)), names
    # The password is only ever a Secret reference, never in a URL.
    for name in ("DATABASE_URL", "DATABASE_READ_URL"):
        assert ":" not in env[name]["value"].split("//", 1)[1].split("@", 1)[0]


def test_migrations_run_in_an_init_container_straight_against_rw(docs: list[Manifest]) -> None:
    assert of_kind(docs, "Job") == []
    container = init_container(docs)
    assert container["name"] == "migrate"
    assert container["command"] + container["args"] == [
        "fhir-server", "migrate", "--allow-compatible-ahead"]
    assert container["image"] == server_container(docs)["image"]
    env = env_of(container)
    assert env["DATABASE_URL"]["value"] == url("rw")
    assert env["PGHOST"]["value"] == host("rw")
    assert "DATABASE_READ_URL" not in env
    assert _secret_refs(container) == {
        "PGUSER": (APP_SECRET, "username"), "PGPASSWORD": (APP_SECRET, "password"),
        "PGDATABASE": (APP_SECRET, "dbname")}
    assert container["envFrom"] == [{"configMapRef": {"name": RELEASE}}]
    assert container["securityContext"] == server_container(docs)["securityContext"]
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert set(container["resources"]) == {"requests", "limits"}
    off = render({**cnpg(), "migrations": {"enabled": False}})
    assert "initContainers" not in one(off, "Deployment")["spec"]["template"]["spec"]
    assert of_kind(off, "Job") == []


def test_without_the_pooler_the_server_uses_the_cluster_services() -> None:
    docs = render(cnpg(pooler={"enabled": False}))
    assert of_kind(docs, "Pooler") == []
    env = env_of(server_container(docs))
    assert env["DATABASE_URL"]["value"] == url("rw")
    assert env["DATABASE_READ_URL"]["value"] == url("ro")
    assert [m["metadata"]["name"] for m in of_kind(docs, "PodMonitor")] == [CLUSTER]


def test_without_read_replicas_there_is_no_read_url_nor_ro_pooler() -> None:
    docs = render(cnpg(readFromReplicas=False))
    assert "DATABASE_READ_URL" not in env_of(server_container(docs))
    assert list(by_name(docs, "Pooler")) == [f"{CLUSTER}-pooler-rw"]
    monitor = by_name(docs, "PodMonitor")[f"{CLUSTER}-pooler"]["spec"]["selector"]
    assert monitor["matchExpressions"][0]["values"] == [f"{CLUSTER}-pooler-rw"]


def test_pod_monitors_select_the_operators_pods(docs: list[Manifest]) -> None:
    monitors = by_name(docs, "PodMonitor")
    assert monitors[CLUSTER]["spec"] == {
        "selector": {"matchLabels": {"cnpg.io/cluster": CLUSTER, "cnpg.io/podRole": "instance"}},
        "namespaceSelector": {"matchNames": [NAMESPACE]},
        "podMetricsEndpoints": [{"port": "metrics"}]}
    assert monitors[f"{CLUSTER}-pooler"]["spec"]["selector"] == {
        "matchLabels": {"cnpg.io/podRole": "pooler"},
        "matchExpressions": [{"key": "cnpg.io/poolerName", "operator": "In",
                              "values": [f"{CLUSTER}-pooler-rw", f"{CLUSTER}-pooler-ro"]}]}
    assert of_kind(render(cnpg(monitoring={"podMonitor": False})), "PodMonitor") == []


def test_backup_to_object_storage() -> None:
    docs = render(OVERRIDES["cloudnativepg-backup"])
    spec = one(docs, "Cluster")["spec"]
    assert spec["instances"] == 1
    assert spec["walStorage"] == {"size": "5Gi", "storageClass": "fast"}
    keys = "backup-keys"
    assert spec["backup"] == {
        "retentionPolicy": "30d",
        "barmanObjectStore": {
            "destinationPath": "s3://hospital-backups/fhir",
            "endpointURL": "http://minio.storage.svc:9000",
            "s3Credentials": {"accessKeyId": {"name": keys, "key": "ACCESS_KEY_ID"},
                              "secretAccessKey": {"name": keys, "key": "ACCESS_SECRET_KEY"},
                              "region": {"name": keys, "key": "REGION"}},
            "wal": {"compression": "gzip"}, "data": {"compression": "gzip"}}}
    assert one(docs, "ScheduledBackup")["spec"] == {
        "schedule": "0 0 2 * * *", "cluster": {"name": CLUSTER}, "method": "barmanObjectStore",
        "backupOwnerReference": "self", "immediate": True}
    # One instance, no pooler: writes and reads go to -rw; the monitor carries the labels.
    env = env_of(server_container(docs))
    assert env["DATABASE_URL"]["value"] == url("rw")
    assert "DATABASE_READ_URL" not in env
    assert one(docs, "PodMonitor")["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    values = OVERRIDES["cloudnativepg-backup"]["postgresql"]["cloudnativepg"]
    unscheduled = render(cnpg(**{**values, "backup": {**values["backup"], "schedule": ""}}))
    assert of_kind(unscheduled, "ScheduledBackup") == []
    assert "backup" in one(unscheduled, "Cluster")["spec"]


@pytest.mark.parametrize(("values", "message"), [
    (cnpg(instances=1), "readFromReplicas needs instances >= 2"),
    (cnpg(backup={"enabled": True}), "needs backup.destinationPath"),
    (cnpg(backup={"enabled": True, "destinationPath": "s3://b/p"}),
     "needs backup.s3Credentials.secretName"),
    # 21 pods x 15 + 10 reserved + 2 pooler instances = 327 > 200.
    ({**cnpg(), "autoscaling": {"maxReplicas": 20}},
     r"connection budget: 21 pods .* = 315, .* is 327, above .*max_connections \(200\)"),
    ({**cnpg(), "config": {"WORKERS": "4"}}, r"is 672, above"),
    ({**cnpg(), "autoscaling": {"enabled": False}, "replicaCount": 14}, r"is 237, above"),
])
def test_configurations_that_cannot_work_are_refused(values: dict[str, Any],
                                                     message: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=message):
        render(values)


def test_a_budget_that_fits_renders() -> None:
    docs = render({**cnpg(parameters={"max_connections": "400"}),
                   "autoscaling": {"maxReplicas": 20}})
    rw = by_name(docs, "Pooler")[f"{CLUSTER}-pooler-rw"]
    assert rw["spec"]["pgbouncer"]["parameters"]["default_pool_size"] == "315"
    fixed = render({**cnpg(), "autoscaling": {"enabled": False}, "replicaCount": 4})
    rw = by_name(fixed, "Pooler")[f"{CLUSTER}-pooler-rw"]
    assert rw["spec"]["pgbouncer"]["parameters"]["default_pool_size"] == "75"


@pytest.mark.parametrize("bad", [
    {"postgresql": {"mode": "rds"}},
    cnpg(instances=0),
    cnpg(clusterName="Hospital_DB"),
    cnpg(pooler={"parameters": {"pool_mode": "transaction"}}),
    cnpg(backup={"retentionPolicy": "30 days"}),
    cnpg(backup={"walCompression": "lz5"}),
    cnpg(backup={"destinationPath": "/var/backups"}),
    cnpg(backup={"schedule": "0 2 * * *"}),
    cnpg(parameters={"max_connections": "lots"}),
    cnpg(storage={"size": "twenty"}),
    cnpg(unknown=True),
])
def test_values_schema_rejects_nonsense(bad: dict[str, Any]) -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema(bad)


@pytest.mark.parametrize(("kind", "change"), [
    ("Cluster", {"instance": 3}),
    ("Cluster", {"instances": 0}),
    ("Cluster", {"primaryUpdateMethod": "failover"}),
    ("Cluster", {"backup": {"retentionPolicy": "30d", "barmanObjectStore": {}}}),
    ("Pooler", {"pgbouncer": {"poolMode": "statement"}}),
    ("Pooler", {"type": "r"}),
    ("ScheduledBackup", {"backupOwnerReference": "pooler"}),
])
def test_the_crd_schemas_catch_what_the_operator_would_refuse(
        kind: str, change: dict[str, Any]) -> None:
    docs = render(cnpg(backup={"enabled": True, "destinationPath": "s3://b/p",
                               "s3Credentials": {"secretName": "k"}}))
    doc = of_kind(docs, kind)[0]
    validator = jsonschema.Draft202012Validator(cloudnative_pg_schema(kind))
    validator.validate(doc)
    broken = {**doc, "spec": {**doc["spec"], **change}}
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


def test_notes_name_the_cluster_and_the_migrations() -> None:
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(CNPG, name=RELEASE, namespace=NAMESPACE, is_install=True)
    text = next(t for p, t in rendered.items() if p.endswith("NOTES.txt"))
    assert f'CloudNativePG Cluster "{CLUSTER}" (3 instances)' in text
    assert f"kubectl -n {NAMESPACE} get cluster {CLUSTER}" in text
    assert f"logs deploy/{RELEASE} -c migrate" in text
    assert host("pooler-ro") in text
    assert "hook Job" not in text
    assert "hook Job" in notes()


def test_the_docs_state_the_budget_the_chart_computes(docs: list[Manifest]) -> None:
    """docs/scaling.md and docs/operations.md quote the default budget: keep them true."""
    root = CHART.parents[1]
    scaling = (root / "docs" / "scaling.md").read_text()
    operations = (root / "docs" / "operations.md").read_text()
    rw = by_name(docs, "Pooler")[f"{CLUSTER}-pooler-rw"]["spec"]["pgbouncer"]["parameters"]
    ro = by_name(docs, "Pooler")[f"{CLUSTER}-pooler-ro"]["spec"]["pgbouncer"]["parameters"]
    times = "\N{MULTIPLICATION SIGN}"
    assert f"(10 + 1) {times} 1 {times} (10 + 5) = {rw['default_pool_size']}" in scaling
    assert (f"pods {times} WORKERS {times} DB_READ_POOL_MAX = {ro['default_pool_size']}"
            in scaling)
    total = int(rw["default_pool_size"]) + 10 + 2
    max_connections = one(docs, "Cluster")["spec"]["postgresql"]["parameters"][
        "max_connections"]
    assert f"= {total} \N{LESS-THAN OR EQUAL TO} {max_connections}" in scaling
    assert f"({total} of {max_connections} at the defaults)" in operations
    assert "`docs/scaling.md`" in (root / "README.md").read_text()
