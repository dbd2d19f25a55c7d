"""Every Prometheus metric the service exports, in one place (names fixed by deploy/monitoring/ and the
contract with the Kubernetes manifests; README "Monitoring" lists them).

Labels carry only routes (the URL rule, never a path with ids), methods, statuses, stages, outcomes,
reasons, runtimes and model versions: never a file name, an owner or anything about a patient.

Under gunicorn and the Celery pool each process writes its values to files (prometheus-client's
multiprocess mode, shared/ops/metrics_http.py); the ``multiprocess_mode`` of a gauge says how the
processes' values combine.
"""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()  # no *_created series: nothing here reads them, and they double every counter

# Web (web/metrics.py, web/uploads.py).
HTTP_REQUESTS = Counter("xray_http_requests", "HTTP requests answered, by URL rule, method and status",
                        ["route", "method", "status"])
HTTP_SECONDS = Histogram("xray_http_request_duration_seconds", "Time to answer an HTTP request, by URL rule",
                         ["route"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
UPLOAD_BYTES = Counter("xray_upload_bytes", "Bytes of image files received in uploads")
REJECT_REASONS = ("too_large", "not_an_image", "damaged", "too_many_files", "no_files", "quota")
UPLOADS_REJECTED = Counter("xray_uploads_rejected", "Files or whole uploads refused, by reason", ["reason"])

# Worker (worker/telemetry.py; the pool processes write, the worker's main process serves).
OUTCOMES = ("succeeded", "failed")
INPUT_CHECKS = Counter("xray_input_checks", "Images the input gate checked, by result (ok, not_a_radiograph, ...)",
                       ["result"])
JOBS = Counter("xray_jobs", "Jobs a worker brought to a final state, by outcome", ["outcome"])
STAGES = ("decode", "model", "maps")
STAGE_SECONDS = Histogram("xray_stage_seconds", "Worker time per image: decode (read, check, decode, preprocess), "
                          "model (its share of the forward pass), maps (encoding its class activation maps)",
                          ["stage"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
BATCH_SIZE = Histogram("xray_batch_size", "Images per forward pass", buckets=(1, 2, 4, 8, 16, 32, 64, 128))
# Each pool process reports its own share; the scrape averages them into one (shared/ops/metrics_http.py).
BUSY_RATIO = Gauge("xray_worker_busy_ratio", "Share of the last minute the worker's pool processes spent on jobs",
                   multiprocess_mode="liveall")
WORKER_INFO = Gauge("xray_worker_info", "The runtime (Keras backend) and model version a worker serves; always 1",
                    ["runtime", "model_version"], multiprocess_mode="livemax")
WORKERS_ALIVE = Gauge("xray_workers_alive", "Pool processes alive with their model loaded",
                      multiprocess_mode="livesum")
# The registry's versions in the workers (worker/models.py): loaded now (per pool process, summed), how long
# a load took, and the jobs and shadow/rerun results each version produced.
MODEL_LOADED = Gauge("xray_model_loaded", "Pool processes holding the model version loaded now", ["version"],
                     multiprocess_mode="livesum")
MODEL_LOAD_SECONDS = Histogram("xray_model_load_seconds", "Time to load a model version in a pool process",
                               ["version"], buckets=(0.5, 1, 2.5, 5, 10, 20, 40, 80, 160))
MODEL_JOBS = Counter("xray_model_jobs", "Jobs a worker brought to a final state, by model version and outcome",
                     ["version", "outcome"])
VERSION_RESULTS = Counter("xray_version_results", "Shadow and rerun results a worker finished, by kind and outcome",
                          ["kind", "outcome"])

# Recovery (worker/recovery.py).
RECOVERY_REQUEUED = Counter("xray_recovery_requeued", "Jobs whose lease ran out, returned to the queue")
RECOVERY_RELAYED = Counter("xray_recovery_relayed", "Queued jobs (re)sent to the broker by the recovery loop")
RECOVERY_FAILED = Counter("xray_recovery_failed", "Jobs failed for good after their last attempt's lease ran out")
RECOVERY_LAST_RUN = Gauge("xray_recovery_last_run_timestamp_seconds", "When a recovery round last completed",
                          multiprocess_mode="max")
# The PACS bridge (pacs/bridge.py), per PACS (source). Labels never hold an instance or a UID.
PACS_INSTANCES = Counter("xray_pacs_instances", "PACS instances the bridge moved on, by outcome: seen, submitted, "
                         "stored_back, skipped, failed", ["source", "outcome"])
PACS_LAST_ROUND = Gauge("xray_pacs_last_round_timestamp_seconds", "When a bridge round last completed", ["source"],
                        multiprocess_mode="max")
PACS_OLDEST_PENDING = Gauge("xray_pacs_oldest_pending_age_seconds", "Age of the oldest instance the bridge has seen "
                            "and not yet finished (0: none): how far it lags behind the PACS", ["source"],
                            multiprocess_mode="max")
# xray_queue_depth and xray_queue_oldest_age_seconds are read from Postgres at scrape time:
# worker/queue_metrics.py, served by the recovery process.
QUEUE = ("xray_queue_depth", "xray_queue_oldest_age_seconds")


def _names(*metrics) -> frozenset[str]:
    return frozenset(family.name for metric in metrics for family in metric.describe())


# Each process serves its own: every process imports this module, so every process has every metric.
SERVED_BY = {
    "web": _names(HTTP_REQUESTS, HTTP_SECONDS, UPLOAD_BYTES, UPLOADS_REJECTED),
    "worker": _names(JOBS, INPUT_CHECKS, STAGE_SECONDS, BATCH_SIZE, BUSY_RATIO, WORKER_INFO, WORKERS_ALIVE,
                     MODEL_LOADED, MODEL_LOAD_SECONDS, MODEL_JOBS, VERSION_RESULTS),
    "recovery": _names(RECOVERY_REQUEUED, RECOVERY_RELAYED, RECOVERY_FAILED, RECOVERY_LAST_RUN) | frozenset(QUEUE),
    "pacs": _names(PACS_INSTANCES, PACS_LAST_ROUND, PACS_OLDEST_PENDING),
}
