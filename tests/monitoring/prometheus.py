"""A real Prometheus (Debian package) for tests: its own port, data folder and generated config."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from tests.helpers import REPO, free_port, wait_until

MONITORING = REPO / "deploy" / "monitoring"
NAME = re.compile(r"\bxray_[a-z_]+\b")


def installed() -> bool:
    return shutil.which("prometheus") is not None and shutil.which("promtool") is not None


def fast_rules(source: Path, target: Path) -> Path:
    """The real alert rules with every `for:` at 0 s, so that a test sees an alert fire in seconds;
    expressions, labels and annotations are the file's own."""
    rules = yaml.safe_load(source.read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "0s"
    target.write_text(yaml.safe_dump(rules, sort_keys=False))
    return target


def exposed_names(text: str) -> set[str]:
    """Sample names of a /metrics page (xray_http_requests_total, ..._bucket, ...)."""
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def names_in(expr: str) -> set[str]:
    return set(NAME.findall(expr))


class Prometheus:
    def __init__(self, workdir: Path, targets: dict[str, str], rules: Path | None = None):
        self.workdir, self.port = workdir, free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}
                               for job, target in targets.items()],
        }
        if rules is not None:
            config["rule_files"] = [str(rules)]
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log_path = workdir / "prometheus.log"
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            ["prometheus", f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self._log, stderr=subprocess.STDOUT)
        wait_until(self._ready, 30, message=f"Prometheus ready\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def api(self, path: str, **params) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:  # a query Prometheus cannot parse answers 400 with a JSON body
            return json.load(exc)

    def query(self, expr: str) -> list[dict]:
        answer = self.api("query", query=expr)
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def alerts(self) -> list[dict]:
        return self.api("alerts")["data"]["alerts"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
