"""Writes grafana/xray-dashboard.json, the Grafana dashboard of the service (import it, or provision it
from this folder): ``python deploy/monitoring/dashboard.py``.

Generated so that the panels stay few lines each; tests/monitoring/ checks that the file is what this
script writes, that every query names only metrics the processes export, and that Prometheus parses it.
"""
from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "grafana" / "xray-dashboard.json"
RATE = "5m"
# Worker series carry the runtime through xray_worker_info of the same scrape target.
BY_RUNTIME = "* on(instance, job) group_left(runtime) xray_worker_info"

# (title, unit, [(PromQL, legend)], description)
PANELS = [
    ("Throughput (images/s)", "ops", [
        (f'sum by (outcome) (rate(xray_jobs_total[{RATE}]))', "{{outcome}}"),
    ], "Jobs workers brought to a final state."),
    ("HTTP latency p50 / p95", "s", [
        (f'histogram_quantile(0.5, sum by (le) (rate(xray_http_request_duration_seconds_bucket[{RATE}])))', "p50"),
        (f'histogram_quantile(0.95, sum by (le) (rate(xray_http_request_duration_seconds_bucket[{RATE}])))', "p95"),
    ], "Time the web takes to answer, all routes."),
    ("Request latency p95 by route", "s", [
        (f'histogram_quantile(0.95, sum by (le, route) (rate(xray_http_request_duration_seconds_bucket[{RATE}])))',
         "{{route}}"),
    ], "Slowest routes first; uploads include storing the files."),
    ("Queue depth", "short", [
        ("max(xray_queue_depth)", "queued jobs"),
    ], "Jobs queued in Postgres, not yet claimed (read by the recovery process)."),
    ("Oldest queued job age", "s", [
        ("max(xray_queue_oldest_age_seconds)", "age"),
    ], "Since the upload of the job that has waited longest. Alert XrayQueueOldestJobTooOld at 10 minutes."),
    ("Failures", "ops", [
        (f'sum(rate(xray_jobs_total{{outcome="failed"}}[{RATE}]))', "failed jobs/s"),
        (f'sum by (reason) (rate(xray_uploads_rejected_total[{RATE}]))', "rejected: {{reason}}"),
        (f'sum(rate(xray_http_requests_total{{status=~"5.."}}[{RATE}]))', "HTTP 5xx/s"),
    ], "Failed jobs, refused uploads by reason, server errors."),
    ("Input checks by result", "ops", [
        (f'sum by (result) (rate(xray_input_checks_total[{RATE}]))', "{{result}}"),
    ], "What the input gate said of each image: ok, or why it is not a frontal chest radiograph "
       "(not_a_radiograph, not_a_chest, not_frontal, inverted, rotated)."),
    ("Failure ratio", "percentunit", [
        (f'sum(rate(xray_jobs_total{{outcome="failed"}}[{RATE}])) / sum(rate(xray_jobs_total[{RATE}]))', "failed"),
    ], "Alert XrayJobFailureRatioHigh above 10%."),
    ("Worker busy fraction", "percentunit", [
        ("avg(xray_worker_busy_ratio)", "mean"),
        ("max(xray_worker_busy_ratio)", "busiest worker"),
    ], "Share of the last minute the pool processes spent on jobs. Near 1: add workers."),
    ("Jobs by model version", "ops", [
        (f'sum by (version) (rate(xray_model_jobs_total[{RATE}]))', "{{version}}"),
    ], "Jobs finished per second by the registry version that produced them: a promotion shows as one "
       "version taking over from another (README, \"Models\")."),
    ("Model versions loaded", "short", [
        ("sum by (version) (xray_model_loaded)", "{{version}}"),
        (f'histogram_quantile(0.95, sum by (le) (rate(xray_model_load_seconds_bucket[{RATE}])))', "load time p95 (s)"),
    ], "Pool processes holding each version (at most XRAY_MAX_LOADED_MODELS each), and how long a cold load takes: "
       "the first job of a cold version waits for it."),
    ("Shadow and rerun results", "ops", [
        (f'sum by (kind, outcome) (rate(xray_version_results_total[{RATE}]))', "{{kind}} {{outcome}}"),
    ], "Images also analysed by another version (the shadow alias's share of default traffic, reruns)."),
    ("Workers alive", "short", [
        ("sum(xray_workers_alive)", "pool processes"),
    ], "Pool processes with their model loaded."),
    ("Speed per runtime (images/s)", "ops", [
        (f'sum by (runtime) (rate(xray_jobs_total{{outcome="succeeded"}}[{RATE}]) {BY_RUNTIME})', "{{runtime}}"),
    ], "Images analysed per second, by the runtime that computed them (tensorflow-float32, openvino-bf16, ...: worker/runtimes.py)."),
    ("Model time per image by runtime", "s", [
        (f'sum by (runtime) (rate(xray_stage_seconds_sum{{stage="model"}}[{RATE}]) {BY_RUNTIME}) / '
         f'sum by (runtime) (rate(xray_stage_seconds_count{{stage="model"}}[{RATE}]) {BY_RUNTIME})', "{{runtime}}"),
    ], "Each image's share of its forward pass."),
    ("Worker stage p95", "s", [
        (f'histogram_quantile(0.95, sum by (le, stage) (rate(xray_stage_seconds_bucket[{RATE}])))', "{{stage}}"),
    ], "Decode, model and map encoding per image."),
    ("Images per forward pass", "short", [
        (f'sum(rate(xray_batch_size_sum[{RATE}])) / sum(rate(xray_batch_size_count[{RATE}]))', "mean batch"),
    ], "Queued jobs claimed together share a pass (up to XRAY_BATCH_SIZE)."),
    ("Recovery", "ops", [
        (f'sum(rate(xray_recovery_requeued_total[{RATE}]))', "requeued"),
        (f'sum(rate(xray_recovery_relayed_total[{RATE}]))', "relayed"),
        (f'sum(rate(xray_recovery_failed_total[{RATE}]))', "failed for good"),
        ("time() - max(xray_recovery_last_run_timestamp_seconds)", "seconds since last round"),
    ], "Jobs returned from dead workers, messages resent, jobs out of attempts."),
    ("Upload volume", "Bps", [
        (f'sum(rate(xray_upload_bytes_total[{RATE}]))', "bytes/s"),
        (f'sum by (route, status) (rate(xray_http_requests_total[{RATE}]))', "{{route}} {{status}}"),
    ], "Bytes received in image files; requests by route and status."),
]


def panel(index: int, title: str, unit: str, queries: list[tuple[str, str]], description: str) -> dict:
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [{"refId": chr(ord("A") + n), "expr": expr, "legendFormat": legend,
                     "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                    for n, (expr, legend) in enumerate(queries)],
    }


def dashboard() -> dict:
    return {
        "title": "X-ray service",
        "uid": "xray-service",
        "tags": ["xray"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "label": "Prometheus"}]},
        "panels": [panel(i, *spec) for i, spec in enumerate(PANELS)],
    }


def expressions(board: dict) -> list[str]:
    return [target["expr"] for p in board["panels"] for target in p["targets"]]


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT} ({len(PANELS)} panels)")
