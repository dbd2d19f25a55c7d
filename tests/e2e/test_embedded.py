"""The README's run command, as a person runs it in a terminal: no external services, SQLite and the file
broker; the address printed last once everything is ready; Ctrl-C (a real ^C on a pseudo-terminal)
stops it all cleanly."""
import fcntl
import http.cookiejar
import json
import os
import pty
import select
import shutil
import subprocess
import termios
import time
import urllib.error
import urllib.request

import pytest

from tests.helpers import REPO, corrupt_png, free_port, post_images, real_xray_bytes, service_env, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("make") is None or not (REPO / ".venv" / ".installed").exists(),
                       reason="needs make and the project's .venv (make install)"),
]


def _get_json(url: str, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
        return json.load(response)


class Terminal:
    """`make run` on a pseudo-terminal that is its controlling terminal, as in a person's shell."""

    def __init__(self, env: dict):
        self.master, slave = pty.openpty()

        def take_terminal():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.process = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=REPO, env=env, stdin=slave,
                                        stdout=slave, stderr=slave, preexec_fn=take_terminal)
        os.close(slave)
        self.output = b""

    def read(self, seconds: float) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:  # the other side closed: everything has exited
                    break
        return self.text

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace").replace("\r\n", "\n")

    def ctrl_c(self) -> None:
        os.write(self.master, b"\x03")  # the terminal turns it into SIGINT for its foreground group


def test_make_run_serves_the_whole_round_trip_and_ctrl_c_stops_it_cleanly(tmp_path, tiny_model):
    port = free_port()
    env = service_env(XRAY_VAR_DIR=str(tmp_path / "var"), XRAY_MODEL_DIR=str(tiny_model), XRAY_BIND=f"127.0.0.1:{port}")
    env["TERM"] = "dumb"
    terminal = Terminal(env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: "/signin/link/" in terminal.read(0.5), 180, interval=0, message="make run to say it is ready")
        assert len(_processes_with(f"XRAY_VAR_DIR={tmp_path / 'var'}")) >= 4  # make, launcher, web, worker, ...
        screen = terminal.read(1.0).strip().splitlines()
        assert screen[-2].startswith(f"Ready at {base} ") and "one-time link" in screen[-2], screen
        link = screen[-1].strip()  # the last thing on screen: where to sign in
        assert link.startswith(f"{base}/signin/link/"), screen
        assert len(screen) <= 6, f"start-up should be quiet, got {len(screen)} lines:\n" + "\n".join(screen)
        assert _get_json(base + "/healthz")["status"] == "ok"  # it was true when printed

        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        with browser.open(link, timeout=10) as signed_in:  # the link signs the local admin in, once
            assert signed_in.url == base + "/" and "admin" in signed_in.read().decode()
        with pytest.raises(urllib.error.HTTPError) as reused:
            urllib.request.urlopen(link, timeout=10)
        assert reused.value.code == 401
        assert (tmp_path / "var" / "secret_key").stat().st_mode & 0o777 == 0o600

        created = subprocess.run([str(REPO / ".venv" / "bin" / "xray-admin"), "create-token", "admin", "--name", "test"],
                                 env=env, capture_output=True, text=True, check=True)
        token = created.stdout.strip().splitlines()[-1]
        files = real_xray_bytes(2) + [("broken.png", corrupt_png())]
        status, headers, _ = post_images(base + "/api/v1/batches", files, token=token)
        assert status == 202
        location = base + headers["Location"]
        batch = wait_until(lambda: (b := _get_json(location, token))["finished"] and b, 60, message="the batch")
        assert batch["counts"]["succeeded"] == 2 and batch["counts"]["failed"] == 1
        assert (tmp_path / "var" / "xray.db").exists()  # SQLite, the embedded default
        logs = tmp_path / "var" / "logs"
        assert " serves " in (logs / "worker.log").read_text()  # the full logs are kept, off screen
    finally:
        terminal.ctrl_c()
        try:
            terminal.process.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(terminal.process.pid, 9)
            pytest.fail("Ctrl-C did not stop `make run` within 90 s")
    after = terminal.read(1.0).split("/signin/link/", 1)[1]
    assert terminal.process.returncode == 0, terminal.text
    assert "Stopped." in after
    for noise in ("Error", "ERROR", "Interrupt", "Traceback"):
        assert noise not in after, f"{noise!r} after Ctrl-C:\n{after}"
    assert "ERROR" not in (logs / "worker.log").read_text().split("Warm shutdown", 1)[-1]
    assert _processes_with(f"XRAY_VAR_DIR={tmp_path / 'var'}") == [], "processes left running after Ctrl-C"


def _processes_with(variable: str) -> list[int]:
    """Pids whose environment holds this exact NAME=value (every process `make run` started has it)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as handle:
                    if variable.encode() in handle.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                pass
    return found
