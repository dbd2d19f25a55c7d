"""deploy/k8s rendered by kustomize, validated against the Kubernetes and KEDA schemas, and the invariants
an operator relies on (README, "Kubernetes")."""
import copy
import uuid

import jsonschema
import kubernetes_validate
import pytest

from shared.jobs.queue import create_celery, dispatch
from shared.ops.config import load_settings
from tests.deploy.k8s import (K8S, KUBE_VERSIONS, OVERLAYS, containers, counts, env_of, load, named, of_kind, pod_specs,
                              render, validate)
from tests.helpers import REPO, forget_queue

APPS = {"xray-web": "web", "xray-worker": "worker", "xray-recovery": "recovery"}
METRICS_PORTS = {"xray-web": 9101, "xray-worker": 9102, "xray-recovery": 9103}  # the contract's defaults


def config(docs) -> dict:
    return named(docs, "ConfigMap", "xray-config")["data"]


def container(docs, deployment: str) -> dict:
    return named(docs, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_manifest_is_valid(overlay, version, record_property):
    docs = render(overlay)
    for doc in docs:
        validate(doc, version)
    kinds = counts(docs)
    record_property("validated", dict(kinds))
    print(f"\n{overlay} overlay, Kubernetes {version}: {len(docs)} manifests valid: "
          + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())))
    assert kinds == {"Namespace": 1, "ConfigMap": 1, "PersistentVolumeClaim": 1, "Job": 1, "Deployment": 3,
                     "Service": 1, "Ingress": 1, "HorizontalPodAutoscaler": 1, "PodDisruptionBudget": 3,
                     "ScaledObject": 1, "TriggerAuthentication": 1, "NetworkPolicy": 5}
    assert {doc["metadata"].get("namespace") for doc in docs if doc["kind"] != "Namespace"} == {"xray"}


def test_the_validation_refuses_what_a_cluster_would_refuse():
    docs = render("cpu")
    typo = copy.deepcopy(named(docs, "Deployment", "xray-web"))
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(typo, KUBE_VERSIONS[0])
    scaled = copy.deepcopy(named(docs, "ScaledObject", "xray-worker"))
    scaled["spec"]["cooldownPeriods"] = 300
    with pytest.raises(jsonschema.ValidationError, match="cooldownPeriods"):
        validate(scaled, KUBE_VERSIONS[0])
    scaled = copy.deepcopy(named(docs, "ScaledObject", "xray-worker"))
    scaled["spec"]["minReplicaCount"] = "none"
    with pytest.raises(jsonschema.ValidationError):
        validate(scaled, KUBE_VERSIONS[0])


def test_the_secret_example_is_valid_and_holds_no_secret():
    (secret,) = load(K8S / "base" / "secret.example.yaml")
    kubernetes_validate.validate(secret, KUBE_VERSIONS[0], strict=True)
    assert all("CHANGE-ME" in value for value in secret["stringData"].values())
    for overlay in OVERLAYS:  # never rendered: the real one is made by hand
        assert not of_kind(render(overlay), "Secret")
        for name, spec, _ in pod_specs(render(overlay)):
            for c in containers(spec):
                for value in env_of(c).values():
                    if isinstance(value, dict) and "secretKeyRef" in value:
                        ref = value["secretKeyRef"]
                        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"], name
    workloads = render("cpu")
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "XRAY_SECRET_KEY"} <= set(env_of(container(workloads, "xray-web")))
    assert "XRAY_SECRET_KEY" not in env_of(container(workloads, "xray-worker"))  # least privilege
    # Only the migration Job connects as the database's owner role (deploy/postgres/roles.sql).
    owners = [name for name, spec, _ in pod_specs(workloads) for c in containers(spec)
              for value in env_of(c).values() if isinstance(value, dict)
              and value.get("secretKeyRef", {}).get("key") == "MIGRATION_DATABASE_URL"]
    assert owners and set(owners) == {"xray-migrate"}, owners
    auth = named(workloads, "TriggerAuthentication", "xray-redis")["spec"]["secretTargetRef"]
    assert auth == [{"parameter": "password", "name": "xray-secrets", "key": "REDIS_PASSWORD"}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_configuration_is_one_the_service_accepts(overlay, monkeypatch):
    for name, value in config(render(overlay)).items():
        monkeypatch.setenv(name, value)
    settings = load_settings()  # parses and checks the time limits as the processes will
    assert settings.storage_dir.is_relative_to(settings.var_dir) and str(settings.var_dir) == "/data"
    assert settings.tls and settings.proxy_count == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_follow_the_registry_unless_the_pinned_overlay_fixes_a_version(overlay, monkeypatch):
    monkeypatch.delenv("XRAY_MODEL_DIR", raising=False)
    for name, value in config(render(overlay)).items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.model_pinned == (overlay == "pinned")
    assert str(settings.model_dir).endswith("models/starter")  # the image's starter: fallback, or the pinned one


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_non_root_read_only_with_resources(overlay):
    pods = list(pod_specs(render(overlay)))
    assert {name for name, _, _ in pods} == {*APPS, "xray-migrate"}  # every workload is checked, none is missing
    for name, spec, _ in pods:
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0, name
        assert spec["automountServiceAccountToken"] is False, name
        tmp = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for c in containers(spec):
            security = c["securityContext"]
            assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert security["capabilities"]["drop"] == ["ALL"]
            assert any(m["mountPath"] == "/tmp" and m["name"] in tmp for m in c["volumeMounts"]), (name, c["name"])
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][part]), (name, c["name"], part)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_ask_what_each_process_really_answers(overlay, tmp_path):
    docs = render(overlay)
    for deployment in APPS:
        c = container(docs, deployment)
        assert "readinessProbe" in c and "livenessProbe" in c, deployment
    web = container(docs, "xray-web")
    assert web["readinessProbe"]["httpGet"] == web["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert {"name": "http", "containerPort": 8000} in web["ports"]
    # The path is a route the real app answers 200 on (with a database that answers).
    from shared.db.migrate import upgrade
    from web import create_app

    url = f"sqlite:///{tmp_path / 'x.db'}"
    upgrade(url)
    app = create_app({"database_url": url, "var_dir": tmp_path, "storage_dir": tmp_path / "s", "TESTING": True})
    response = app.test_client().get(web["readinessProbe"]["httpGet"]["path"])
    assert response.status_code == 200 and response.json["status"] == "ok"
    # The worker's probes ping this pod's own Celery node, named in its command.
    worker = container(docs, "xray-worker")
    assert worker["command"][:4] == ["celery", "-A", "worker.main", "worker"]
    assert worker["command"][worker["command"].index("-n") + 1] == "xray@$(POD_NAME)"
    assert env_of(worker)["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = worker[probe]["exec"]["command"][-1]
        assert 'inspect ping -d "xray@$POD_NAME"' in command and '-b "$CELERY_BROKER_URL"' in command
        assert worker[probe]["timeoutSeconds"] > 10  # above the ping's own timeout


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_outlive_their_longest_task_when_stopped(overlay, monkeypatch):
    docs = render(overlay)
    for name, value in config(docs).items():
        monkeypatch.setenv(name, value)
    limit = load_settings().task_time_limit
    assert limit == 180
    spec = named(docs, "Deployment", "xray-worker")["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] > limit
    scaled = named(docs, "ScaledObject", "xray-worker")["spec"]
    assert scaled["cooldownPeriod"] > limit
    assert scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] > limit


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_scales_the_workers_on_the_list_celery_fills(overlay, redis_queue):
    docs = render(overlay)
    scaled = named(docs, "ScaledObject", "xray-worker")["spec"]
    assert scaled["scaleTargetRef"] == {"name": "xray-worker"} and scaled["minReplicaCount"] == 0
    assert scaled["maxReplicaCount"] >= 2
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "redis" and trigger["authenticationRef"] == {"name": "xray-redis"}
    queue = config(docs)["XRAY_QUEUE"]
    assert trigger["metadata"]["listName"] == queue == load_settings().queue_name
    assert "replicas" not in named(docs, "Deployment", "xray-worker")["spec"]  # KEDA owns it
    # For real: a job sent the way the web sends it lands in the Redis list of the queue's name, which is
    # what KEDA measures (LLEN listName). A queue name of this run's own stands in for "xray".
    import redis

    url, own_queue = redis_queue[0], f"k8s-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(url)
    try:
        assert dispatch(create_celery(load_settings(broker_url=url, queue_name=own_queue)), [uuid.uuid4()])
        assert client.type(own_queue) == b"list" and client.llen(own_queue) == 1
    finally:
        forget_queue(url, own_queue)


def test_only_the_gpu_overlay_asks_for_a_gpu_one_per_worker_pod():
    def gpus(docs):
        return {(name, c["name"]): c["resources"][part].get("nvidia.com/gpu")
                for name, spec, _ in pod_specs(docs) for c in containers(spec) for part in ("requests", "limits")
                if "nvidia.com/gpu" in c["resources"][part]}

    assert gpus(render("cpu")) == {}
    assert gpus(render("gpu")) == {("xray-worker", "worker"): 1}
    worker = container(render("gpu"), "xray-worker")
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == worker["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert env_of(worker)["KERAS_BACKEND"] == "tensorflow" and env_of(worker)["XRAY_RUNTIME"] == "float16"
    assert "--concurrency=1" in worker["command"]  # one process per GPU
    assert worker["image"].endswith(":latest-gpu") and container(render("cpu"), "xray-worker")["image"].endswith(":latest")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_xray_reaches_postgres_and_redis(overlay):
    docs = render(overlay)
    policies = {p["metadata"]["name"]: p["spec"] for p in of_kind(docs, "NetworkPolicy")}
    assert policies["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}

    def allowed(service_label: str, port: int):
        (spec,) = [s for s in policies.values() if s["podSelector"].get("matchLabels") == {"app.kubernetes.io/name": service_label}]
        (rule,) = spec["ingress"]
        assert rule["ports"] == [{"protocol": "TCP", "port": port}]
        in_namespace = [peer for peer in rule["from"] if "namespaceSelector" not in peer]
        (selector,) = in_namespace[0]["podSelector"]["matchExpressions"]
        assert selector["key"] == "app.kubernetes.io/component" and selector["operator"] == "In"
        return set(selector["values"]), [peer for peer in rule["from"] if "namespaceSelector" in peer]

    postgres, outside = allowed("postgresql", 5432)
    assert postgres == {"web", "worker", "recovery", "migrate"} and outside == []
    redis, outside = allowed("redis", 6379)
    assert redis == {"web", "worker", "recovery"}
    assert outside == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}},
                        "podSelector": {"matchLabels": {"app": "keda-operator"}}}]  # reads the queue length
    # The pods really carry the labels the policies name.
    components = {name: meta["labels"]["app.kubernetes.io/component"] for name, _, meta in pod_specs(docs)}
    assert components == {**APPS, "xray-migrate": "migrate"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_metrics_are_annotated_and_only_monitoring_scrapes_them(overlay):
    docs = render(overlay)
    for deployment, port in METRICS_PORTS.items():
        meta = named(docs, "Deployment", deployment)["spec"]["template"]["metadata"]
        assert meta["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
                                       "prometheus.io/path": "/metrics"}
        c = container(docs, deployment)
        assert {"name": "metrics", "containerPort": port} in c["ports"]
        assert env_of(c)["XRAY_METRICS_PORT"] == str(port)
    assert config(docs)["XRAY_METRICS_HOST"] == "0.0.0.0"
    spec = named(docs, "NetworkPolicy", "metrics-from-monitoring")["spec"]
    assert {p["port"] for p in spec["ingress"][0]["ports"]} == set(METRICS_PORTS.values())
    assert spec["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    web_policy = named(docs, "NetworkPolicy", "web-from-ingress")["spec"]["ingress"][0]
    assert web_policy["ports"] == [{"protocol": "TCP", "port": 8000}]  # the public port only, never metrics


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migrations_run_once_before_web_workers_and_recovery(overlay):
    docs = render(overlay)
    job = named(docs, "Job", "xray-migrate")["spec"]["template"]["spec"]
    assert job["containers"][0]["command"] == ["xray-db", "upgrade"] and job["restartPolicy"] == "OnFailure"
    for deployment in APPS:
        (init,) = named(docs, "Deployment", deployment)["spec"]["template"]["spec"]["initContainers"]
        assert init["command"] == ["sh", "-c", "until xray-db check; do sleep 5; done"], deployment
        assert "DATABASE_URL" in env_of(init)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_storage_is_one_shared_volume_and_disruptions_are_bounded(overlay):
    docs = render(overlay)
    assert named(docs, "PersistentVolumeClaim", "xray-data")["spec"]["accessModes"] == ["ReadWriteMany"]
    for deployment in APPS:
        spec = named(docs, "Deployment", deployment)["spec"]["template"]["spec"]
        (claim,) = [v for v in spec["volumes"] if "persistentVolumeClaim" in v]
        assert claim["persistentVolumeClaim"]["claimName"] == "xray-data"
        assert {"name": claim["name"], "mountPath": "/data"} in spec["containers"][0]["volumeMounts"]
        selector = named(docs, "Deployment", deployment)["spec"]["selector"]
        pdb = named(docs, "PodDisruptionBudget", deployment)["spec"]
        assert pdb["selector"] == selector
        assert ("maxUnavailable" in pdb) == (deployment == "xray-worker")  # workers may be scaled to zero
    assert named(docs, "Deployment", "xray-recovery")["spec"]["replicas"] == 2
    hpa = named(docs, "HorizontalPodAutoscaler", "xray-web")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "xray-web"}
    assert hpa["minReplicas"] >= 2
    ingress = named(docs, "Ingress", "xray-web")["spec"]
    assert ingress["tls"] and ingress["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "xray-web"
    assert named(docs, "Service", "xray-web")["spec"]["selector"] == selector_of(docs, "xray-web")


def selector_of(docs, deployment):
    return named(docs, "Deployment", deployment)["spec"]["selector"]["matchLabels"]


def test_the_base_and_overlays_are_all_in_the_repo():
    assert (REPO / "deploy" / "k8s" / "base" / "kustomization.yaml").exists()
    for overlay in OVERLAYS:
        assert (K8S / "overlays" / overlay / "kustomization.yaml").exists()


def test_the_keda_trigger_is_derived_from_the_broker_url_for_three_urls():
    """deploy/k8s/keda_trigger.py: host, port, database, TLS and username from CELERY_BROKER_URL, never the
    password; the committed patch is what it writes for the Secret example's URL, and kustomize applies it."""
    import subprocess
    import sys

    import yaml

    def rendered(url: str) -> dict:
        run = subprocess.run([sys.executable, str(K8S / "keda_trigger.py"), url, "xray"], capture_output=True,
                             text=True, timeout=30, check=False)
        assert run.returncode == 0, run.stderr
        assert "s3cret" not in run.stdout
        (trigger,) = yaml.safe_load(run.stdout)["spec"]["triggers"]
        return trigger["metadata"]

    plain = rendered("redis://:s3cret@redis:6379/0")
    assert (plain["address"], plain["databaseIndex"], plain["enableTLS"]) == ("redis:6379", "0", "false")
    assert "username" not in plain and plain["listName"] == "xray"
    managed = rendered("rediss://celery:s3cret@cache.example.com:6380/3")
    assert (managed["address"], managed["databaseIndex"], managed["enableTLS"], managed["username"]) == \
        ("cache.example.com:6380", "3", "true", "celery")
    bare = rendered("redis://10.0.0.5")
    assert (bare["address"], bare["databaseIndex"], bare["enableTLS"]) == ("10.0.0.5:6379", "0", "false")
    refused = subprocess.run([sys.executable, str(K8S / "keda_trigger.py"), "filesystem://localhost/"],
                             capture_output=True, text=True, timeout=30, check=False)
    assert refused.returncode == 1 and "redis:// or rediss://" in refused.stderr

    example = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())["stringData"]["CELERY_BROKER_URL"]
    committed = yaml.safe_load((K8S / "base" / "keda-trigger.yaml").read_text())["spec"]["triggers"][0]["metadata"]
    assert committed == rendered(example)
    (applied,) = named(render("cpu"), "ScaledObject", "xray-worker")["spec"]["triggers"]
    assert applied["metadata"] == committed
