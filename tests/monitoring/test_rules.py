"""Alert rules, the compose Prometheus config and the Grafana dashboard, checked offline with promtool;
the web's request metrics counted in-process (the live scrape is tests/monitoring/test_stack.py)."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from shared.ops import metrics, metrics_http
from tests.helpers import corrupt_png, multipart, real_xray_bytes
from tests.monitoring.prometheus import MONITORING, installed, names_in

pytestmark = pytest.mark.skipif(not installed(), reason="Prometheus is not installed (Debian package prometheus; "
                                                         "tests/run.sh installs it)")
sys.path.insert(0, str(MONITORING))
import dashboard  # noqa: E402  (deploy/monitoring/dashboard.py, a script)

ALERTS = {"XrayNoWorkerWhileJobsQueued", "XrayQueueOldestJobTooOld", "XrayJobFailureRatioHigh", "XrayRecoveryLoopAbsent",
          "XrayPacsBridgeAbsent", "XrayPacsBridgeStuck"}


def promtool(*args: str) -> str:
    result = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_alert_rules_pass_promtool_and_name_the_six_alerts():
    assert "SUCCESS: 6 rules found" in promtool("check", "rules", str(MONITORING / "alerts.yml"))
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"][0]["rules"]
    assert {rule["alert"] for rule in rules} == ALERTS


def test_alert_rules_fire_and_stay_quiet_as_their_unit_tests_expect():
    assert "SUCCESS" in promtool("test", "rules", str(MONITORING.parent.parent / "tests" / "monitoring" / "alerts_test.yml"))


def test_compose_prometheus_config_is_valid_and_scrapes_the_four_metrics_ports():
    promtool("check", "config", str(MONITORING / "prometheus.yml"))
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    targets = {job["job_name"]: (job["dns_sd_configs"][0]["names"], job["dns_sd_configs"][0]["port"])
               for job in config["scrape_configs"]}
    assert targets == {"xray-web": (["web"], 9101), "xray-worker": (["worker"], 9102),
                       "xray-recovery": (["recovery"], 9103), "xray-pacs": (["pacs-bridge"], 9104)}
    assert metrics_http.DEFAULT_PORTS == {"web": 9101, "worker": 9102, "recovery": 9103, "pacs": 9104}


def exported_names() -> set[str]:
    """Every sample name the service's processes can expose, from the metric definitions."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    names = {"xray_queue_depth", "xray_queue_oldest_age_seconds"}  # worker/queue_metrics.py, at scrape time
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names.update(family.name + suffix for suffix in suffixes[family.type])
    return names


def test_dashboard_file_is_what_the_script_writes_and_covers_the_issue():
    assert (MONITORING / "grafana" / "xray-dashboard.json").read_text() == dashboard.render()
    board = json.loads(dashboard.render())
    titles = " / ".join(p["title"] for p in board["panels"])
    for needed in ("Throughput", "p50 / p95", "Queue depth", "Oldest queued job age", "Failures",
                   "Worker busy fraction", "Speed per runtime"):
        assert needed in titles


def test_every_dashboard_query_parses_and_names_only_exported_metrics(tmp_path):
    expressions = dashboard.expressions(dashboard.dashboard())
    unknown = {name for expr in expressions for name in names_in(expr)} - exported_names()
    assert not unknown, f"the dashboard queries metrics no process exports: {sorted(unknown)}"
    # promtool parses each expression as a recording rule: a PromQL syntax error fails the check.
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:query{i}", "expr": expr}
                                                         for i, expr in enumerate(expressions)]}]}
    (tmp_path / "queries.yml").write_text(yaml.safe_dump(rules))
    assert f"SUCCESS: {len(expressions)} rules found" in promtool("check", "rules", str(tmp_path / "queries.yml"))


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_web_counts_requests_by_url_rule_and_rejected_uploads_by_reason(pg_client):
    job_id = uuid.uuid4()
    route = "/api/v1/jobs/<job_id>"
    before = sample("xray_http_requests_total", route=route, method="GET", status="404")
    assert pg_client.get(f"/api/v1/jobs/{job_id}").status_code == 404
    assert sample("xray_http_requests_total", route=route, method="GET", status="404") == before + 1
    assert sample("xray_http_request_duration_seconds_count", route=route) >= 1

    damaged, upload_bytes = sample("xray_uploads_rejected_total", reason="damaged"), sample("xray_upload_bytes_total")
    strange = sample("xray_uploads_rejected_total", reason="not_an_image")
    files = [*real_xray_bytes(1), ("half.png", corrupt_png()), ("notes.txt", b"not an image at all")]
    response = pg_client.post("/api/v1/batches", data=multipart(files), content_type="multipart/form-data")
    assert response.status_code == 202
    assert sample("xray_uploads_rejected_total", reason="damaged") == damaged + 1
    assert sample("xray_uploads_rejected_total", reason="not_an_image") == strange + 1
    assert sample("xray_upload_bytes_total") == upload_bytes + sum(len(data) for _, data in files)

    nothing = sample("xray_uploads_rejected_total", reason="no_files")
    assert pg_client.post("/api/v1/batches", data={}, content_type="multipart/form-data").status_code == 400
    assert sample("xray_uploads_rejected_total", reason="no_files") == nothing + 1


def test_metrics_are_not_served_on_the_public_port(pg_client):
    assert pg_client.get("/metrics").status_code == 404
