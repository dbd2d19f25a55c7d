"""The one configuration object.

Defaults give the embedded deployment (SQLite and a file-backed Celery broker under ``var/``); the
environment switches to Postgres and Redis; a test passes overrides. Nothing else reads os.environ.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
import secrets
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _parse(variable: str, raw: str, kind: type):
    if kind is bool:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    try:
        return kind(raw)
    except ValueError:
        expected = "a whole number" if kind is int else "a number"
        raise ValueError(f"{variable} must be {expected}, got {raw!r}") from None


@dataclasses.dataclass(frozen=True)
class Settings:
    var_dir: Path
    database_url: str
    broker_url: str
    storage_dir: Path
    model_dir: Path
    feature_cache_dir: Path  # training: frozen-base features computed once per image set (training/features.py)
    # Requests and images: generous enough for a batch of hundreds of full-resolution X-rays,
    # bounded so that one request cannot fill the disk or one image the memory.
    max_request_bytes: int = 1024 * 1024 * 1024
    max_file_bytes: int = 64 * 1024 * 1024
    max_image_pixels: int = 50_000_000
    max_decoded_bytes: int = 256 * 1024 * 1024  # memory one image may take to decode (16-bit colour is 8 B/pixel)
    decode_budget_bytes: int = 1024 * 1024 * 1024  # decodes in flight per worker process, together
    max_files_per_batch: int = 1000
    queue_name: str = "xray"
    # Accounts and security (web/security.py, SECURITY.md).
    secret_key: str = ""  # empty: the embedded run keeps a generated one in var/; anything else must set it
    bind: str = "127.0.0.1:8000"  # where `make run` listens; a non-loopback bind needs XRAY_SECRET_KEY
    tls: bool = False  # served over HTTPS (directly or behind a proxy): HSTS and Secure cookies
    proxy_count: int = 0  # reverse proxies in front of the web whose X-Forwarded-* headers are trusted
    api_rate_limit: str = "600 per minute"  # per user or token, all API calls
    upload_rate_limit: str = "120 per minute"  # per user or token, uploads
    signin_rate_limit: str = "10 per minute"  # per client address, sign-in attempts
    rate_limit_storage: str = ""  # empty: the Redis broker's server, or memory for the embedded run
    token_days: float = 90.0  # default lifetime of a new API token
    session_idle_hours: float = 12.0  # a browser session with no request for this long is signed out
    session_max_hours: float = 168.0  # and every session ends this long after sign-in (7 days)
    quota_queued_jobs: int = 5000  # a user's jobs waiting or running at once
    quota_stored_bytes: int = 20 * 1024**3  # a user's uploads on storage
    retention_days: float = 30.0  # batches older than this are deleted with their files; 0 keeps them
    keep_originals: bool = False  # store uploads as sent, metadata included (off: pixels only)
    keep_filenames: bool = True  # keep non-DICOM uploads' file names (off: every upload is named by position)
    dicom_captures: bool = False  # the PACS bridge also stores a JPEG Secondary Capture per shown heatmap
    # Webhooks (shared/jobs/webhooks.py): "batch finished" notifications, sent by the recovery loop.
    webhook_allow_private: bool = False  # let callbacks reach loopback and private addresses (tests, closed networks)
    webhook_max_attempts: int = 8
    # The PACS bridge (pacs/bridge.py, `xray-pacs`): follows a PACS's changes, sends its CR/DX images here.
    pacs_url: str = ""  # the PACS's REST root (Orthanc), e.g. http://127.0.0.1:8042
    pacs_dicomweb_url: str = ""  # any PACS's DICOMweb root (QIDO/WADO/STOW); when set, used instead of pacs_url
    pacs_username: str = ""  # HTTP basic auth for the PACS, if it asks
    pacs_password: str = ""
    pacs_source: str = "orthanc"  # the name the bridge's progress is kept under (one per PACS)
    pacs_api_url: str = "http://127.0.0.1:8000"  # this service's web, as the bridge reaches it
    pacs_token: str = ""  # an API token of the account the bridge submits as (`xray-admin create-token`)
    pacs_poll_seconds: float = 1.0
    webhook_first_pause: float = 10.0  # seconds before the first retry; each later pause is 3× longer (≤ 1 h)
    webhook_timeout: float = 10.0
    # Celery: soft < hard time limit; the broker's visibility timeout must stay above both.
    task_soft_time_limit: int = 120
    task_time_limit: int = 180
    publish_timeout: float = 2.0
    file_broker_polling_interval: float = 0.05
    # Inference (worker/engine.py, worker/pipeline.py).
    batch_size: int = 16  # images per forward pass: queued jobs are claimed together up to this
    io_threads: int = 4  # decode and overlay encoding run on these, beside the forward pass
    # A task goes on claiming queued jobs of its version for this long (at most a quarter of the soft time
    # limit), claiming and decoding each next group while the current one is in the forward pass; 0: one group.
    drain_seconds: float = 10.0
    tf_threads: int = 0  # TensorFlow intra-op threads per worker process; 0: TensorFlow decides
    mixed_precision: bool = False  # float16 compute on GPUs that support it (the same as runtime "float16")
    # auto: the fastest of float32 and the variants `xray-model optimize` verified, timed at start;
    # or one of float32, float16, tensorflow-bf16, openvino-float32, openvino-bf16 (worker/runtimes.py).
    runtime: str = "auto"
    latency_goal_ms: float = 0.0  # >0: no batch whose forward pass takes longer (worker/batching.py)
    # What the worker does with an image the input gate says is not a frontal chest radiograph
    # (shared/model/gate.py): "flag" analyses it and hides the findings until the owner asks for them,
    # "refuse" fails the job with the gate's reason and stores no findings.
    input_gate: str = "flag"
    # The model registry (shared/model/registry.py, worker/models.py). A worker serves the version each batch
    # resolved, loading it from the registry's storage; batches that resolved none (no 'default' alias) get the
    # worker's own folder, model_dir. model_pinned (XRAY_MODEL_DIR set, unless XRAY_MODEL_PINNED=0): the worker
    # serves model_dir's version only (air-gapped sites, a fixed version).
    model_pinned: bool = False
    max_loaded_models: int = 2  # versions loaded at once per worker process (least recently used goes first)
    model_versions: str = ""  # comma-separated versions this worker serves (a pool); empty: any
    version_queues: str = ""  # "queue=version,version;queue2=version": jobs of those versions go to that queue
    smoke_images_dir: str = ""  # real X-rays a pushed version must predict on; empty: the committed ones
    max_model_bytes: int = 1024 * 1024 * 1024  # a pushed artifact, unpacked
    # Recovery (Postgres is the system of record; see worker/recovery.py).
    lease_seconds: int = 0  # 0: the hard time limit + 30 s; a running job past its lease is returned
    relay_after_seconds: float = 60.0  # a dispatched job still queued this long is sent again (then 2×, 4×, ...)
    recovery_interval_seconds: float = 5.0
    max_attempts: int = 3
    history_page_size: int = 20  # batches per page of /history and GET /api/v1/batches
    batch_page_size: int = 100  # images per page of a batch's page
    db_retry_seconds: float = 120.0  # how long a worker keeps retrying Postgres before giving up
    worker_max_memory_mb: int = 6144  # a pool process above this is replaced after its task
    # Monitoring (shared/ops/metrics.py, shared/ops/metrics_http.py, shared/ops/logs.py; README "Monitoring").
    metrics_port: int = -1  # -1: the process's default (web 9101, worker 9102, recovery 9103); 0: no metrics server
    metrics_host: str = "127.0.0.1"  # containers set 0.0.0.0 (NetworkPolicies decide who scrapes)
    metrics_dir: str = ""  # multiprocess files (gunicorn, Celery pool); empty: var/metrics
    log_format: str = "text"  # or "json": one JSON object per line (containers)

    @property
    def lease(self) -> int:
        return self.lease_seconds or self.task_time_limit + 30

    @property
    def session_idle(self) -> dt.timedelta:
        return dt.timedelta(hours=self.session_idle_hours)

    @property
    def session_lifetime(self) -> dt.timedelta:
        return dt.timedelta(hours=self.session_max_hours)

    @property
    def visibility_timeout(self) -> int:
        return max(3600, self.task_time_limit * 4)

    @property
    def uses_file_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def broker_folder(self) -> Path:
        return self.var_dir / "broker"

    @property
    def is_embedded(self) -> bool:
        """The one-machine run: SQLite, listening on loopback only."""
        host = self.bind.rsplit(":", 1)[0].strip("[]")
        return self.database_url.startswith("sqlite") and host in ("127.0.0.1", "localhost", "::1")

    @property
    def limiter_storage(self) -> str:
        if self.rate_limit_storage:
            return self.rate_limit_storage
        return self.broker_url if self.broker_url.startswith(("redis://", "rediss://")) else "memory://"

    @property
    def served_versions(self) -> frozenset[str]:
        """The versions this worker serves (XRAY_MODEL_VERSIONS); empty: any."""
        return frozenset(v.strip() for v in self.model_versions.split(",") if v.strip())

    def queue_for(self, version: str | None) -> str:
        """The queue a job of this version goes to (XRAY_VERSION_QUEUES), else the default queue."""
        return parse_version_queues(self.version_queues).get(version or "", self.queue_name)

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)


# Settings read from the environment as they are (the type is the field's default's type).
ENVIRONMENT = {
    "max_request_bytes": "XRAY_MAX_REQUEST_BYTES",
    "max_file_bytes": "XRAY_MAX_FILE_BYTES",
    "max_image_pixels": "XRAY_MAX_IMAGE_PIXELS",
    "max_decoded_bytes": "XRAY_MAX_DECODED_BYTES",
    "decode_budget_bytes": "XRAY_DECODE_BUDGET_BYTES",
    "max_files_per_batch": "XRAY_MAX_FILES_PER_BATCH",
    "queue_name": "XRAY_QUEUE",
    "secret_key": "XRAY_SECRET_KEY",
    "bind": "XRAY_BIND",
    "tls": "XRAY_TLS",
    "proxy_count": "XRAY_PROXY_COUNT",
    "api_rate_limit": "XRAY_RATE_LIMIT_API",
    "upload_rate_limit": "XRAY_RATE_LIMIT_UPLOAD",
    "signin_rate_limit": "XRAY_RATE_LIMIT_SIGNIN",
    "rate_limit_storage": "XRAY_RATE_LIMIT_STORAGE",
    "token_days": "XRAY_TOKEN_DAYS",
    "session_idle_hours": "XRAY_SESSION_IDLE_HOURS",
    "session_max_hours": "XRAY_SESSION_MAX_HOURS",
    "quota_queued_jobs": "XRAY_QUOTA_QUEUED_JOBS",
    "quota_stored_bytes": "XRAY_QUOTA_STORED_BYTES",
    "retention_days": "XRAY_RETENTION_DAYS",
    "keep_originals": "XRAY_KEEP_ORIGINALS",
    "keep_filenames": "XRAY_KEEP_FILENAMES",
    "dicom_captures": "XRAY_DICOM_CAPTURES",
    "webhook_allow_private": "XRAY_WEBHOOK_ALLOW_PRIVATE",
    "webhook_max_attempts": "XRAY_WEBHOOK_MAX_ATTEMPTS",
    "pacs_url": "XRAY_PACS_URL",
    "pacs_dicomweb_url": "XRAY_PACS_DICOMWEB_URL",
    "pacs_username": "XRAY_PACS_USERNAME",
    "pacs_password": "XRAY_PACS_PASSWORD",
    "pacs_source": "XRAY_PACS_SOURCE",
    "pacs_api_url": "XRAY_PACS_API_URL",
    "pacs_token": "XRAY_PACS_TOKEN",
    "pacs_poll_seconds": "XRAY_PACS_POLL_SECONDS",
    "webhook_first_pause": "XRAY_WEBHOOK_FIRST_PAUSE",
    "webhook_timeout": "XRAY_WEBHOOK_TIMEOUT",
    "task_soft_time_limit": "XRAY_TASK_SOFT_TIME_LIMIT",
    "task_time_limit": "XRAY_TASK_TIME_LIMIT",
    "publish_timeout": "XRAY_PUBLISH_TIMEOUT",
    "file_broker_polling_interval": "XRAY_FILE_BROKER_POLLING",
    "batch_size": "XRAY_BATCH_SIZE",
    "io_threads": "XRAY_IO_THREADS",
    "drain_seconds": "XRAY_DRAIN_SECONDS",
    "tf_threads": "XRAY_TF_THREADS",
    "mixed_precision": "XRAY_MIXED_PRECISION",
    "runtime": "XRAY_RUNTIME",
    "latency_goal_ms": "XRAY_LATENCY_GOAL_MS",
    "input_gate": "XRAY_INPUT_GATE",
    "lease_seconds": "XRAY_LEASE_SECONDS",
    "relay_after_seconds": "XRAY_RELAY_AFTER_SECONDS",
    "recovery_interval_seconds": "XRAY_RECOVERY_INTERVAL_SECONDS",
    "max_attempts": "XRAY_MAX_ATTEMPTS",
    "db_retry_seconds": "XRAY_DB_RETRY_SECONDS",
    "worker_max_memory_mb": "XRAY_WORKER_MAX_MEMORY_MB",
    "history_page_size": "XRAY_HISTORY_PAGE_SIZE",
    "batch_page_size": "XRAY_BATCH_PAGE_SIZE",
    "metrics_port": "XRAY_METRICS_PORT",
    "metrics_host": "XRAY_METRICS_HOST",
    "metrics_dir": "XRAY_METRICS_DIR",
    "log_format": "XRAY_LOG_FORMAT",
    "model_pinned": "XRAY_MODEL_PINNED",
    "max_loaded_models": "XRAY_MAX_LOADED_MODELS",
    "model_versions": "XRAY_MODEL_VERSIONS",
    "version_queues": "XRAY_VERSION_QUEUES",
    "smoke_images_dir": "XRAY_SMOKE_IMAGES",
    "max_model_bytes": "XRAY_MAX_MODEL_BYTES",
}


def load_settings(**overrides) -> Settings:
    var_dir = Path(os.environ.get("XRAY_VAR_DIR", REPO_ROOT / "var")).resolve()
    values = dict(
        var_dir=var_dir,
        database_url=os.environ.get("DATABASE_URL") or f"sqlite:///{var_dir / 'xray.db'}",
        broker_url=os.environ.get("CELERY_BROKER_URL") or "filesystem://localhost/",
        storage_dir=Path(os.environ.get("XRAY_STORAGE_DIR", var_dir / "storage")).resolve(),
        # The starter model committed under models/ (see models/starter/MODEL_CARD.md).
        model_dir=Path(os.environ.get("XRAY_MODEL_DIR", REPO_ROOT / "models" / "starter")).resolve(),
        feature_cache_dir=Path(os.environ.get("XRAY_FEATURE_CACHE", Path.home() / ".cache" / "xray-features")),
        model_pinned=bool(os.environ.get("XRAY_MODEL_DIR")),
    )
    for field, variable in ENVIRONMENT.items():
        raw = os.environ.get(variable)
        if raw is not None and raw != "":
            values[field] = _parse(variable, raw, type(getattr(Settings, field)))
    if "model_dir" in overrides and "model_pinned" not in overrides:
        overrides = {**overrides, "model_pinned": True}  # a folder named in code is a fixed version, like the variable
    values.update(overrides)
    settings = Settings(**values)
    check_time_limits(settings)
    return settings


def parse_version_queues(raw: str) -> dict[str, str]:
    """ "gpu=v1,v2;cpu=v3" -> {"v1": "gpu", "v2": "gpu", "v3": "cpu"}; a malformed value stops the process."""
    routes: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in raw.split(";"))):
        queue, _, versions = part.partition("=")
        names = [v.strip() for v in versions.split(",") if v.strip()]
        if not queue.strip() or not names:
            raise ValueError(f"XRAY_VERSION_QUEUES must look like 'queue=version,version;queue2=version', got {raw!r}")
        for name in names:
            routes[name] = queue.strip()
    return routes


class ConfigError(RuntimeError):
    """A setting that makes the service unsafe or unable to start; the message says what to set."""


MIN_SECRET_LENGTH = 32
WEAK_SECRETS = {"dev-only-change-me", "changeme", "secret", "change-me"}
SECRET_HINT = "e.g. XRAY_SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"


def web_secret_key(settings: Settings) -> str:
    """The key that signs sessions and CSRF tokens. The embedded run generates one once and keeps it in
    var/secret_key (mode 0600); every other deployment must set XRAY_SECRET_KEY or the web refuses to start."""
    key = settings.secret_key
    if key:
        if len(key) < MIN_SECRET_LENGTH or key in WEAK_SECRETS:
            raise ConfigError(f"refusing to start: XRAY_SECRET_KEY is too weak (at least {MIN_SECRET_LENGTH} random "
                              f"characters); {SECRET_HINT}")
        return key
    if not settings.is_embedded:
        raise ConfigError("refusing to start: XRAY_SECRET_KEY is not set, and this is not the embedded run (SQLite "
                          f"on loopback: database {settings.database_url.split('://')[0]}, bind {settings.bind}). "
                          f"Sessions and CSRF tokens would be forgeable. Set it; {SECRET_HINT}")
    return _embedded_secret(settings.var_dir / "secret_key")


def _embedded_secret(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            raise ConfigError(f"refusing to start: {path} is readable by other users; chmod 600 it") from None
        for _ in range(50):  # another process may be writing it this very moment
            key = path.read_text().strip()
            if key:
                return key
            time.sleep(0.02)
        raise ConfigError(f"refusing to start: {path} is empty; delete it to generate a new key") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def check_time_limits(settings: Settings) -> None:
    """soft limit < hard limit < lease and broker visibility timeout: otherwise a slow job runs twice."""
    if not settings.task_soft_time_limit < settings.task_time_limit:
        raise ValueError(
            f"XRAY_TASK_SOFT_TIME_LIMIT ({settings.task_soft_time_limit}) must be below "
            f"XRAY_TASK_TIME_LIMIT ({settings.task_time_limit})"
        )
    if not settings.task_time_limit < settings.lease:
        raise ValueError(f"XRAY_LEASE_SECONDS ({settings.lease}) must exceed XRAY_TASK_TIME_LIMIT ({settings.task_time_limit})")
    if not settings.task_time_limit < settings.visibility_timeout:
        raise ValueError(f"the broker visibility timeout ({settings.visibility_timeout} s) must exceed the hard time limit")
    if settings.log_format not in ("text", "json"):
        raise ValueError(f"XRAY_LOG_FORMAT must be 'text' or 'json', got {settings.log_format!r}")
    if not (settings.session_idle_hours > 0 and settings.session_max_hours > 0):
        raise ValueError("XRAY_SESSION_IDLE_HOURS and XRAY_SESSION_MAX_HOURS must be above 0")
    if settings.input_gate not in ("flag", "refuse"):
        raise ValueError(f"XRAY_INPUT_GATE must be 'flag' or 'refuse', got {settings.input_gate!r}")
    if settings.max_loaded_models < 1:
        raise ValueError(f"XRAY_MAX_LOADED_MODELS must be at least 1, got {settings.max_loaded_models}")
    parse_version_queues(settings.version_queues)
    if settings.max_attempts < 1:
        raise ValueError(f"XRAY_MAX_ATTEMPTS must be at least 1, got {settings.max_attempts}")
    if not settings.drain_seconds >= 0:
        raise ValueError(f"XRAY_DRAIN_SECONDS must be 0 or more, got {settings.drain_seconds}")
