"""Helpers the tests share: real services, a real worker process, image bytes."""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
SHARED_DATA = REPO.parent / "shared" / "data" / "nih"
PG_SERVER = os.environ.get("XRAY_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("XRAY_TEST_REDIS", "redis://127.0.0.1:6379/0")


def real_xray_bytes(count: int = 2) -> list[tuple[str, bytes]]:
    """Real 64×64 NIH X-rays committed as fixtures."""
    paths = sorted((FIXTURES / "nih64").glob("*.png"))[:count]
    return [(p.name, p.read_bytes()) for p in paths]


def full_size_xray(index: int = 0) -> np.ndarray:
    """A real 1024x1024 NIH X-ray as 8-bit grey (the shared sample folder; the test skips without it)."""
    import pytest

    paths = sorted((SHARED_DATA / "nih-fullres-sample" / "images").glob("*.png"))
    if not paths:
        pytest.skip(f"no full-size NIH sample under {SHARED_DATA}")
    return cv2.imread(str(paths[index]), cv2.IMREAD_GRAYSCALE)


def real_xray_jpeg(quality: int = 88) -> bytes:
    """A real X-ray as a JPEG of about 100 KB, the size of the one an attacker cut short."""
    ok, encoded = cv2.imencode(".jpg", full_size_xray(), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return encoded.tobytes()


def png_bytes(pixels: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", pixels)
    assert ok
    return encoded.tobytes()


def corrupt_png() -> bytes:
    """A real PNG cut in half: the header is valid, the pixel data is not."""
    data = real_xray_bytes(1)[0][1]
    return data[: len(data) // 2]


def forget_queue(redis_url: str, queue: str) -> None:
    """A test queue's Redis keys: its list and what kombu keeps beside it (_kombu.binding.<queue>, ...)."""
    import redis

    server = redis.Redis.from_url(redis_url)
    leftovers = list(server.scan_iter(match=f"*{queue}*"))
    if leftovers:
        server.delete(*leftovers)
    server.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XRAY_") and k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env["XRAY_METRICS_PORT"] = "0"  # no metrics server unless a test asks for one on a free port
    env.update(settings)
    env["PYTHONPATH"] = str(REPO)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


class WorkerProcess:
    """A real ``celery -A worker.main worker`` process, its log in a file."""

    def __init__(self, env: dict[str, str], log_path: Path, name: str | None = None, app: str = "worker.main"):
        self.log_path = log_path
        self.name = name or f"test-{uuid.uuid4().hex[:6]}"
        self._log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", app, "worker", "--loglevel=INFO",
             "--concurrency=1", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-n", f"{self.name}@%h"],
            cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120) -> None:
        """Ready when the pool process has loaded the model (it logs 'serves') and the main process
        consumes from the queue (Celery logs 'ready.')."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if " serves " in log and " ready." in log:
                return
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            time.sleep(0.2)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.log()[-4000:]}")

    def stop(self, timeout: float = 30) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._log.close()


def wait_until(predicate, timeout: float, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


@contextlib.contextmanager
def quiet_cv2():
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)


def decode_image_bytes(data: bytes) -> np.ndarray:
    """PNG or JPEG bytes to pixels, asserting they decode."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None, "not a decodable image"
    return image


def post_images(url: str, files: list[tuple[str, bytes]], timeout: float = 30, token: str | None = None
                ) -> tuple[int, dict, dict]:
    """POST files as multipart/form-data ('files' field) over real HTTP; returns status, headers, JSON."""
    boundary = uuid.uuid4().hex
    body = b"".join(
        (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
         "Content-Type: image/png\r\n\r\n").encode() + data + b"\r\n" for name, data in files
    ) + f"--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, dict(response.headers), json.load(response)


def multipart(files: list[tuple[str, bytes]], field: str = "files") -> dict:
    """Flask test-client form data for several files in one field."""
    return {field: [(io.BytesIO(data), name) for name, data in files]}


TEST_SECRET_KEY = "test-secret-key-" + "x" * 40  # web apps in tests: long enough for web_secret_key


def ensure_user(session, username: str = "alice", role: str = "member", password: str | None = None):
    """The user of that name (created when missing): owners for batches made directly in the database."""
    from shared.auth import accounts
    from shared.db.models import Role

    user = accounts.find_user(session, username)
    if user is None:
        user = accounts.create_user(session, username, password, Role(role))
    elif password is not None:
        accounts.set_password(session, user, password)
    return user


def api_token(database_url: str, username: str = "alice", role: str = "member", days: float | None = 1) -> str:
    """A fresh API token for that user (created when missing)."""
    from shared.auth import accounts
    from shared.db.engine import Database

    database = Database(database_url)
    try:
        with database.session() as session:
            _, token = accounts.create_token(session, ensure_user(session, username, role), "tests", expires_in_days=days)
    finally:
        database.engine.dispose()
    return token


class TokenClient:
    """A Flask test client that sends an API token with every request."""

    def __init__(self, client, token: str):
        self.client, self.token = client, token

    def _headers(self, kwargs):
        return {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}

    def open(self, *args, **kwargs):
        return self.client.open(*args, headers=self._headers(kwargs), **kwargs)

    def get(self, *args, **kwargs):
        return self.client.get(*args, headers=self._headers(kwargs), **kwargs)

    def post(self, *args, **kwargs):
        return self.client.post(*args, headers=self._headers(kwargs), **kwargs)

    def delete(self, *args, **kwargs):
        return self.client.delete(*args, headers=self._headers(kwargs), **kwargs)


def submit_and_wait(client, files: list[tuple[str, bytes]], timeout: float = 120) -> dict:
    """POST files as one batch through the API (a TokenClient) and poll until every job is final; the batch."""
    answer = client.post("/api/v1/batches", data=multipart(files), content_type="multipart/form-data")
    assert answer.status_code == 202, answer.get_data(as_text=True)
    deadline = time.monotonic() + timeout
    while not (batch := client.get(answer.headers["Location"]).get_json())["finished"]:
        assert time.monotonic() < deadline, batch["counts"]
        time.sleep(0.2)
    return batch
