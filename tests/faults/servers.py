"""Servers the fault tests own and may stop: a Redis and a PostgreSQL of their own, on free ports of
127.0.0.1, never the shared ones."""
from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.helpers import free_port, wait_until


class RedisServer:
    """redis-server without persistence: a restart loses every queued message, as the tests want."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)

        def up():
            try:
                return client.ping()
            except redis.RedisError:
                return False

        wait_until(up, 10, message="redis to start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed")
    return found[-1]


class PostgresServer:
    """A throw-away PostgreSQL cluster (initdb in a temp folder), run as the postgres user when root."""

    def __init__(self):
        # Not under pytest's tmp_path: its parents are private to root, and postgres must reach this.
        workdir = Path(tempfile.mkdtemp(prefix="xray-test-pg-"))
        self.workdir = workdir
        self.port = free_port()
        self.data = workdir / "pgdata"
        self.socket_dir = workdir / "pgsock"
        self.log = workdir / "postgres.log"
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run(self._as_postgres + list(args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def init(self) -> None:
        for path in (self.data, self.socket_dir):
            path.mkdir(parents=True)
        self.log.touch()
        if self._as_postgres:
            shutil.chown(self.workdir, "postgres")
            for path in (self.data, self.socket_dir, self.log):
                shutil.chown(path, "postgres")
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "start", "-o",
                  f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off")

    def stop(self, mode: str = "fast") -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self, down_for: float = 3.0) -> float:
        """Stop (fast: connections are cut), stay down a while, start again; returns the outage in seconds."""
        started = time.monotonic()
        self.stop("fast")
        time.sleep(down_for)
        self.start()
        return time.monotonic() - started
