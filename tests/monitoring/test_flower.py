"""Flower, the optional Celery dashboard (`make run FLOWER=1`): the Procfile entry starts it on loopback
only, behind a password when FLOWER_BASIC_AUTH is set; the embedded file broker refuses it clearly."""
from __future__ import annotations

import base64
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import REDIS_URL, REPO, free_port, multipart, real_xray_bytes, service_env, wait_until

sys.path.insert(0, str(REPO / "deploy"))
import run_local  # noqa: E402

from shared.jobs.queue import ANALYSE_TASK  # noqa: E402


def status(url: str, headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def outward_address() -> str | None:
    """This machine's address on its network (not loopback), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def _listening_addresses(port: int) -> set[str]:
    """The local addresses a TCP socket listens on at ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                if width == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                    found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


@pytest.mark.slow  # starts Flower
def test_flower_runs_on_loopback_behind_basic_auth(tmp_path):
    command = run_local.read_procfile(run_local.FLOWER_PROCFILE)["flower"]
    port = free_port()
    env = service_env(CELERY_BROKER_URL=REDIS_URL, XRAY_VAR_DIR=str(tmp_path), FLOWER_PORT=str(port),
                      FLOWER_BASIC_AUTH="ops:a-long-test-password")
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # `celery` of this venv, as `make run` has it
    process = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until(lambda: status(url) == 401, 60, message="Flower to answer")
        password = base64.b64encode(b"ops:a-long-test-password").decode()
        assert status(url, {"Authorization": f"Basic {password}"}) == 200
        # Bound to loopback: Flower's own answer names the address it listens on, and an outward address
        # (where the machine has one) reaches nothing.
        assert _listening_addresses(port) == {"127.0.0.1"}
        outward = outward_address()
        assert outward is None or status(f"http://{outward}:{port}/") == 0
    finally:
        process.terminate()
        process.wait(20)


def test_flower_needs_the_redis_broker(monkeypatch, capsys):
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    with pytest.raises(SystemExit) as stopped:
        run_local.main(["--flower"])
    assert "file broker" in str(stopped.value) and "CELERY_BROKER_URL" in str(stopped.value)


@pytest.mark.slow  # starts Flower beside the real worker
def test_flower_lists_the_tasks_the_worker_finished(pg_stack, pg_client, tmp_path):
    """Workers send task events (the settings `-E` turns on, in shared/jobs/queue.py), so Flower's API lists
    each analysis task the worker finished, with the job id it was given."""
    import json

    from tests.web.test_api import wait_for_batch

    command = run_local.read_procfile(run_local.FLOWER_PROCFILE)["flower"]
    port = free_port()
    env = service_env(CELERY_BROKER_URL=pg_stack["broker_url"], XRAY_QUEUE=pg_stack["queue_name"],
                      XRAY_VAR_DIR=str(tmp_path), FLOWER_PORT=str(port), FLOWER_BASIC_AUTH="ops:a-long-test-password")
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    process = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.STDOUT)
    auth = {"Authorization": "Basic " + base64.b64encode(b"ops:a-long-test-password").decode()}

    def finished() -> dict:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/tasks?state=SUCCESS", headers=auth)
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)

    try:
        wait_until(lambda: status(f"http://127.0.0.1:{port}/api/workers", auth) == 200, 60, message="Flower's API")
        submitted: list[str] = []

        def listed() -> bool:
            """Flower follows events from when it subscribed, which its API does not tell: send an image, and
            another on the next check, until one of them is listed as finished."""
            answer = pg_client.post("/api/v1/batches", data=multipart(real_xray_bytes(1)),
                                    content_type="multipart/form-data")
            submitted.append(wait_for_batch(pg_client, answer.headers["Location"])["jobs"][0]["id"])
            return any(job_id in str(task.get("args")) for task in finished().values() for job_id in submitted)

        wait_until(listed, 90, message="Flower to list a finished task")
        task = next(task for task in finished().values() if any(job_id in str(task.get("args")) for job_id in submitted))
        assert task["state"] == "SUCCESS" and task["name"] == ANALYSE_TASK and task["worker"]
    finally:
        process.terminate()
        process.wait(20)
