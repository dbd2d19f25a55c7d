"""The README's run command, as a person runs it: no external services, SQLite and the file broker."""
import json
import os
import shutil
import signal
import subprocess
import urllib.request

import pytest

from tests.helpers import REPO, corrupt_png, free_port, post_images, real_xray_bytes, service_env, wait_until


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@pytest.mark.skipif(shutil.which("make") is None or not (REPO / ".venv" / "bin" / "honcho").exists(),
                    reason="needs make and the project's .venv (make install)")
def test_make_run_serves_the_whole_round_trip_and_ctrl_c_stops_it(tmp_path, tiny_model):
    port = free_port()
    env = service_env(XRAY_VAR_DIR=str(tmp_path / "var"), XRAY_MODEL_DIR=str(tiny_model),
                      XRAY_BIND=f"127.0.0.1:{port}")
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=REPO, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def ready():
            try:
                return _get_json(base + "/healthz")["status"] == "ok" and " serves " in log_path.read_text()
            except OSError:
                return False

        wait_until(ready, 180, message="the web and the worker to start")
        assert f"Open http://127.0.0.1:{port}" in log_path.read_text()

        files = real_xray_bytes(2) + [("broken.png", corrupt_png())]
        status, headers, body = post_images(base + "/api/v1/batches", files)
        assert status == 202
        location = base + headers["Location"]
        batch = wait_until(lambda: (b := _get_json(location))["finished"] and b, 60, message="the batch")
        assert batch["counts"]["succeeded"] == 2 and batch["counts"]["failed"] == 1
        assert (tmp_path / "var" / "xray.db").exists()  # SQLite, the embedded default
    finally:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail("Ctrl-C did not stop `make run` within 60 s")
    leftovers = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], f"processes left running after Ctrl-C: {leftovers}"
