"""docker-compose.yml against the Compose Specification's schema (no Docker engine here, so `docker compose
config` cannot run), the `gpu` and `monitoring` profiles, the images' health checks and user, and what the
build context leaves out."""
import importlib.resources
import json
import re

import jsonschema
import pytest
import yaml

from tests.helpers import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (REPO / "deploy" / "Dockerfile").read_text()
METRICS_PORTS = {"web": "9101", "worker": "9102", "worker-gpu": "9102", "recovery": "9103"}


def stage(name: str) -> str:
    return DOCKERFILE.split(f" AS {name}\n", 1)[1].split("\nFROM ", 1)[0]


def test_the_file_follows_the_compose_specification():
    schema = json.loads(importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
                        .joinpath("compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(COMPOSE)]
    assert errors == []
    broken = {**COMPOSE, "services": {**SERVICES, "worker": {**SERVICES["worker"], "stop_grace_periode": "4m"}}}
    assert any("stop_grace_periode" in e.message for e in validator.iter_errors(broken))  # it does check


def test_the_gpu_profile_adds_one_worker_process_per_gpu():
    gpu = SERVICES["worker-gpu"]
    assert gpu["profiles"] == ["gpu"] and "profiles" not in SERVICES["worker"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    assert gpu["build"]["target"] == "worker" and gpu["build"]["args"] == {"WORKER_EXTRA": "gpu"}
    assert gpu["environment"]["KERAS_BACKEND"] == "${KERAS_BACKEND:-tensorflow}"  # configurable, TensorFlow by default
    assert '".[${WORKER_EXTRA}]"' in stage("worker") and "ARG WORKER_EXTRA=worker" in stage("worker")
    assert "--concurrency=1" in stage("worker")
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^gpu = \[\n    "keras==[\d.]+",\n    "tensorflow\[and-cuda\]==2\.21\.0",\n\]', pyproject, re.M)
    # The same database, broker, storage and grace period as the CPU workers; found by Prometheus as "worker".
    for key in ("volumes", "depends_on", "stop_grace_period"):
        assert gpu[key] == SERVICES["worker"][key]
    assert gpu["networks"]["default"]["aliases"] == ["worker"]


def test_workers_get_longer_to_stop_than_their_longest_task():
    from shared.ops.config import load_settings

    minutes = int(SERVICES["worker"]["stop_grace_period"].removesuffix("m"))
    assert minutes * 60 > load_settings().task_time_limit


def test_the_monitoring_profile_runs_prometheus_with_the_repo_rules_and_flower_behind_auth():
    prometheus, flower = SERVICES["prometheus"], SERVICES["flower"]
    assert prometheus["profiles"] == flower["profiles"] == ["monitoring"]
    assert "./deploy/monitoring/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    assert "./deploy/monitoring/alerts.yml:/etc/prometheus/alerts.yml:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    for service in (prometheus, flower):
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])  # this machine only
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")  # refuses to start without
    assert "--broker=redis://redis:6379/0" in flower["command"]
    assert flower["command"][-2:] == ["flower", "--port=5555"]


@pytest.mark.parametrize("name", sorted(METRICS_PORTS))
def test_each_process_serves_metrics_on_its_own_unpublished_port(name):
    env = SERVICES[name]["environment"]
    assert env["XRAY_METRICS_PORT"] == METRICS_PORTS[name] and env["XRAY_METRICS_HOST"] == "0.0.0.0"
    published = [p for s in SERVICES.values() for p in s.get("ports", [])]
    assert not any(METRICS_PORTS[name] in port for port in published)


def test_images_run_unprivileged_with_health_checks():
    assert re.search(r"^RUN useradd .*--uid 1000 xray", DOCKERFILE, re.M)
    for name in ("web", "worker"):
        body = stage(name)
        assert "\nUSER xray\n" in body and "HEALTHCHECK" in body, name
        assert body.index("USER xray") < body.index("\nCMD ")
    assert "/healthz" in stage("web").split("HEALTHCHECK", 1)[1]
    assert 'inspect ping -d "celery@$HOSTNAME"' in stage("worker")  # the node name Celery gives by default
    # Services that reuse the web image without a web server check something else, or nothing.
    assert "9103/metrics" in " ".join(SERVICES["recovery"]["healthcheck"]["test"])
    for name in ("migrate", "pacs-bridge"):
        assert SERVICES[name]["healthcheck"] == {"disable": True}


def test_the_build_context_leaves_out_local_state_and_test_output():
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {"var", ".venv", "test-artifacts", "tests/js/node_modules", ".git", ".env"} <= ignored
