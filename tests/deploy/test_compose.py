"""docker-compose.yml cannot be run here (no Docker engine), so check that it is whole and consistent."""
import re

import pytest
import yaml

from tests.helpers import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (REPO / "deploy" / "Dockerfile").read_text()


def own_port_aside(env: dict) -> dict:
    """A service's environment less the one setting that differs by design (each process's metrics port)."""
    return {k: v for k, v in env.items() if k != "XRAY_METRICS_PORT"}


def test_the_stack_has_every_part():
    assert {"postgres", "redis", "migrate", "web", "worker", "recovery"} <= set(SERVICES)
    assert SERVICES["recovery"]["command"] == ["xray-recovery"]


@pytest.mark.parametrize("name", ["migrate", "web", "worker", "recovery"])
def test_app_services_share_one_configuration(name):
    env = own_port_aside(SERVICES[name]["environment"])
    assert env["DATABASE_URL"].startswith("postgresql+psycopg2://") and "@postgres:5432/" in env["DATABASE_URL"]
    assert env["CELERY_BROKER_URL"].startswith("redis://redis:6379/")
    assert env == own_port_aside(SERVICES["web"]["environment"])
    build = SERVICES[name]["build"]
    assert (REPO / build["dockerfile"]).exists()
    assert re.search(rf"^FROM .* AS {build['target']}$", DOCKERFILE, re.MULTILINE)


def test_web_and_workers_see_the_same_storage_and_model():
    def mount(service, path):
        return [v for v in SERVICES[service]["volumes"] if v.split(":")[1] == path]

    for service in ("web", "worker"):
        assert mount(service, "/data") == ["data:/data"]
    env = SERVICES["worker"]["environment"]
    assert env["XRAY_STORAGE_DIR"].startswith("/data/")
    # The registry decides which model serves; the starter in the image is the fallback (the default model_dir).
    assert "XRAY_MODEL_DIR" not in env and "COPY models models" in DOCKERFILE
    assert (REPO / "models" / "starter" / "manifest.json").exists()
    assert set(COMPOSE["volumes"]) == {"data", "pgdata", "redisdata", "orthancdata", "promdata"}


def test_workers_can_be_scaled_and_start_after_migrations():
    worker = SERVICES["worker"]
    assert "container_name" not in worker and "ports" not in worker  # both would break --scale
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["migrate"]["command"] == ["xray-db", "upgrade"]
    assert "worker.main" in DOCKERFILE and "web:create_app()" in DOCKERFILE


def test_redis_keeps_queued_jobs_and_never_evicts_them():
    command = " ".join(SERVICES["redis"]["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
    assert SERVICES["redis"]["volumes"] == ["redisdata:/data"]


def test_the_web_image_installs_no_tensorflow():
    web_stage = DOCKERFILE.split("AS web", 1)[1].split("FROM", 1)[0]
    assert "pip install -c constraints.txt ." in web_stage and "[worker]" not in web_stage


def test_the_stack_will_not_start_without_a_secret_key_and_recovery_reaches_the_files():
    env = SERVICES["web"]["environment"]
    assert env["XRAY_SECRET_KEY"].startswith("${XRAY_SECRET_KEY:?")  # compose refuses to start without it
    assert "data:/data" in SERVICES["recovery"]["volumes"]  # retention deletes files too
    assert "deploy/gunicorn.conf.py" in DOCKERFILE.split("AS web", 1)[1].split("FROM", 1)[0]


def test_the_pacs_profile_adds_orthanc_and_a_bridge_on_the_same_database_and_api():
    orthanc, bridge = SERVICES["orthanc"], SERVICES["pacs-bridge"]
    assert orthanc["profiles"] == bridge["profiles"] == ["pacs"]  # not started by a plain `docker compose up`
    assert "127.0.0.1:8042:8042" in orthanc["ports"]  # Orthanc's REST API is not published beyond this machine
    assert bridge["command"] == ["xray-pacs"] and bridge["depends_on"]["web"]["condition"] == "service_healthy"
    env = bridge["environment"]
    assert {k: v for k, v in env.items() if not k.startswith("XRAY_PACS_")} == own_port_aside(SERVICES["web"]["environment"])
    assert env["XRAY_PACS_URL"] == "http://orthanc:8042" and env["XRAY_PACS_API_URL"] == "http://web:8000"
    assert env["XRAY_PACS_TOKEN"].startswith("${XRAY_PACS_TOKEN:?")
    assert 'xray-pacs = "pacs.bridge:main"' in (REPO / "pyproject.toml").read_text()
    assert "COPY pacs pacs" in DOCKERFILE and "COPY client client" in DOCKERFILE  # the bridge uses the API client
