"""``make run``: the embedded service (web, one worker, the recovery loop) under one quiet command.

Each process of ``deploy/Procfile.local`` writes its full log to ``$XRAY_VAR_DIR/logs/<name>.log``
(``--verbose`` also copies them to the terminal). The address to open is printed once the web answers
and the worker has loaded its model, as the last thing on screen. Ctrl-C stops everything in order:
SIGTERM to each process (the worker finishes the images in hand), then the launcher exits 0.

Why a launcher of our own rather than honcho: honcho signals whole process groups, so Celery's pool
process died under the worker's feet during shutdown (an ERROR line and a respawn), and everything
shared the terminal's Ctrl-C with make, which then printed "Error 130" or "Interrupt". Here each
process runs in its own session, and when the terminal is ours the launcher takes the terminal's
foreground so Ctrl-C reaches only the launcher, which stops the rest.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROCFILE = REPO / "deploy" / "Procfile.local"
FLOWER_PROCFILE = REPO / "deploy" / "Procfile.flower"  # `make run FLOWER=1`
STOP_SECONDS = 60  # how long the worker may take to finish the images in hand
NO_LOCAL_ADMIN = ("This is not the embedded run (its database is not SQLite on loopback), so no local admin "
                  "was made and no sign-in link is printed. Make an account with a password:\n"
                  "    .venv/bin/xray-admin create-user NAME --admin")


def read_procfile(path: Path) -> dict[str, str]:
    commands = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, command = line.split(":", 1)
            commands[name.strip()] = command.strip()
    return commands


def _environment() -> dict[str, str]:
    """The processes find the tools of the environment this launcher runs in (gunicorn, celery,
    xray-recovery), also when it is started as `.venv/bin/python deploy/run_local.py` without make."""
    tools = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": os.pathsep.join([tools, os.environ.get("PATH", "")])}


class Process:
    def __init__(self, name: str, command: str, log_path: Path, verbose: bool):
        self.name, self.log_path = name, log_path
        self.log = open(log_path, "wb")
        # Its own session: the terminal's Ctrl-C must not reach it directly (we stop it in order).
        self.popen = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=REPO, env=_environment(), stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.copier = threading.Thread(target=self._copy, args=(verbose,), daemon=True)
        self.copier.start()

    def _copy(self, verbose: bool) -> None:
        for line in iter(self.popen.stdout.readline, b""):
            self.log.write(line)
            self.log.flush()
            if verbose:
                sys.stdout.write(f"{self.name:>8} | {line.decode(errors='replace')}")
                sys.stdout.flush()

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def terminate(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)

    def wait(self) -> None:
        self.popen.wait()
        self.copier.join(5)
        self.log.close()


class Terminal:
    """Takes the terminal's foreground process group for the launcher while it runs, and gives it back."""

    def __init__(self):
        self.fd, self.previous = None, None
        try:
            fd = sys.stdin.fileno()
            if os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp():
                self.fd, self.previous = fd, os.getpgrp()
        except (OSError, ValueError):
            pass

    def __enter__(self):
        if self.fd is not None:
            os.setpgid(0, 0)
            self._set(os.getpgrp())
        return self

    def __exit__(self, *_):
        if self.fd is not None:
            self._set(self.previous)

    def _set(self, group: int) -> None:
        # A process outside the foreground group that changes it gets SIGTTOU unless it ignores it.
        previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        try:
            os.tcsetpgrp(self.fd, group)
        except OSError:
            pass
        finally:
            signal.signal(signal.SIGTTOU, previous)


def _web_answers(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


LINK_VALID = 3600  # seconds a printed sign-in link stays usable (it is also spent on first use)


def _prepare() -> tuple[str, str | None]:
    """Migrate the database, check the model the worker will serve, make sure the secret key exists;
    returns a one-line model summary and, for the embedded run only, a one-time sign-in secret for the
    local admin. On Postgres (a shared deployment) no passwordless admin is made and no link printed:
    a link in a terminal ends up in logs, and there `xray-admin` makes accounts with passwords."""
    from shared.auth import accounts
    from shared.db.engine import Database
    from shared.db.migrate import upgrade
    from shared.model.manifest import ArtifactError, read_manifest
    from shared.ops.config import ConfigError, load_settings, web_secret_key

    settings = load_settings()
    try:
        web_secret_key(settings)  # generated once into var/ (0600) for the embedded run; else must be set
        manifest = read_manifest(settings.model_dir)
    except (ArtifactError, ConfigError) as exc:
        sys.exit(f"cannot start: {exc}")
    upgrade(settings.database_url)
    secret = None
    if settings.is_embedded:
        db = Database(settings.database_url)
        with db.session() as session:
            admin = accounts.ensure_local_admin(session)
            secret = accounts.create_sign_in_link(session, admin, valid_for=dt.timedelta(seconds=LINK_VALID))
        db.engine.dispose()
    trained = "" if manifest.trained else " (UNTRAINED: its predictions are meaningless)"
    return f"{manifest.name} {manifest.version}{trained}", secret


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--verbose", action="store_true", help="copy every process's log to the terminal")
    parser.add_argument("--flower", action="store_true", help="also run Flower, the Celery dashboard, on "
                        "http://127.0.0.1:5555 (needs the Redis broker)")
    args = parser.parse_args(argv)
    commands = read_procfile(PROCFILE)
    if args.flower:
        from shared.ops.config import load_settings

        if load_settings().uses_file_broker:
            sys.exit("cannot start Flower: it follows the workers' events, which the embedded file broker does not "
                     "carry; set CELERY_BROKER_URL to a Redis server (see README, Monitoring)")
        commands.update(read_procfile(FLOWER_PROCFILE))
    address = os.environ.get("XRAY_BIND") or "127.0.0.1:8000"
    log_dir = Path(os.environ.get("XRAY_VAR_DIR") or REPO / "var").resolve() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stopping.set())
    with Terminal():
        model, secret = _prepare()
        print(f"Starting the web, a worker and the recovery loop; model {model}; logs in {log_dir}/", flush=True)
        processes = [Process(name, command, log_dir / f"{name}.log", args.verbose) for name, command in commands.items()]
        sign_in = (f"Sign in as the local admin with this one-time link (valid for an hour):\n"
                   f"    http://{address}/signin/link/{secret}" if secret else NO_LOCAL_ADMIN)
        status = _supervise(processes, address, stopping, sign_in)
        _stop(processes, stopping)
    return status


def _supervise(processes: list[Process], address: str, stopping: threading.Event, sign_in: str) -> int:
    """Wait for readiness, print the address, then run until Ctrl-C or a process exits by itself."""
    worker = next(p for p in processes if p.name == "worker")
    announced = False
    while not stopping.wait(0.2):
        exited = [p for p in processes if p.popen.poll() is not None]
        if exited:
            for process in exited:
                print(f"\n{process.name} stopped unexpectedly (exit {process.popen.returncode}); the end of "
                      f"{process.log_path}:\n{process.tail()}", file=sys.stderr, flush=True)
            return 1
        if not announced and " serves " in worker.text() and _web_answers(address):
            announced = True
            print(f"\nReady at http://{address} (Ctrl-C stops it all). {sign_in}", flush=True)
    return 0


def _stop(processes: list[Process], stopping: threading.Event) -> None:
    print("\nStopping (the worker finishes the images in hand) ...", flush=True)
    stopping.clear()  # a second Ctrl-C from here on means: stop at once
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    while any(p.popen.poll() is None for p in processes):
        if stopping.is_set() or time.monotonic() > deadline:
            for process in processes:
                process.kill()
            break
        time.sleep(0.1)
    for process in processes:
        process.kill()  # anything the main processes left behind in their sessions
        process.wait()
    print("Stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
