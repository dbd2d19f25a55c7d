"""The one configuration object.

Defaults give the embedded deployment (SQLite and a file-backed Celery broker under ``var/``); the
environment switches to Postgres and Redis; a test passes overrides. Nothing else reads os.environ.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


@dataclasses.dataclass(frozen=True)
class Settings:
    var_dir: Path
    database_url: str
    broker_url: str
    storage_dir: Path
    model_dir: Path
    # Requests and images: generous enough for a batch of hundreds of full-resolution X-rays,
    # bounded so that one request cannot fill the disk or one image the memory.
    max_request_bytes: int = 1024 * 1024 * 1024
    max_file_bytes: int = 64 * 1024 * 1024
    max_image_pixels: int = 50_000_000
    max_files_per_batch: int = 1000
    queue_name: str = "xray"
    owner: str = "local"
    secret_key: str = "dev-only-change-me"
    # Celery: soft < hard time limit; the broker's visibility timeout must stay above both.
    task_soft_time_limit: int = 120
    task_time_limit: int = 180
    publish_timeout: float = 2.0
    file_broker_polling_interval: float = 0.05
    history_page_size: int = 20

    @property
    def uses_file_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def broker_folder(self) -> Path:
        return self.var_dir / "broker"

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)


def load_settings(**overrides) -> Settings:
    var_dir = Path(os.environ.get("XRAY_VAR_DIR", REPO_ROOT / "var")).resolve()
    values = dict(
        var_dir=var_dir,
        database_url=os.environ.get("DATABASE_URL") or f"sqlite:///{var_dir / 'xray.db'}",
        broker_url=os.environ.get("CELERY_BROKER_URL") or "filesystem://localhost/",
        storage_dir=Path(os.environ.get("XRAY_STORAGE_DIR", var_dir / "storage")).resolve(),
        # The starter model committed under models/ (see models/starter/MODEL_CARD.md).
        model_dir=Path(os.environ.get("XRAY_MODEL_DIR", REPO_ROOT / "models" / "starter")).resolve(),
        max_request_bytes=_int("XRAY_MAX_REQUEST_BYTES", Settings.max_request_bytes),
        max_file_bytes=_int("XRAY_MAX_FILE_BYTES", Settings.max_file_bytes),
        max_image_pixels=_int("XRAY_MAX_IMAGE_PIXELS", Settings.max_image_pixels),
        max_files_per_batch=_int("XRAY_MAX_FILES_PER_BATCH", Settings.max_files_per_batch),
        queue_name=os.environ.get("XRAY_QUEUE", Settings.queue_name),
        owner=os.environ.get("XRAY_OWNER", Settings.owner),
        secret_key=os.environ.get("XRAY_SECRET_KEY", Settings.secret_key),
        task_soft_time_limit=_int("XRAY_TASK_SOFT_TIME_LIMIT", Settings.task_soft_time_limit),
        task_time_limit=_int("XRAY_TASK_TIME_LIMIT", Settings.task_time_limit),
        publish_timeout=_float("XRAY_PUBLISH_TIMEOUT", Settings.publish_timeout),
        file_broker_polling_interval=_float("XRAY_FILE_BROKER_POLLING", Settings.file_broker_polling_interval),
    )
    values.update(overrides)
    settings = Settings(**values)
    if not settings.task_soft_time_limit < settings.task_time_limit:
        raise ValueError(
            f"XRAY_TASK_SOFT_TIME_LIMIT ({settings.task_soft_time_limit}) must be below "
            f"XRAY_TASK_TIME_LIMIT ({settings.task_time_limit})"
        )
    return settings
