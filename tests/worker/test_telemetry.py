"""The worker's busy ratio: a share of the last minute, rising while a task runs, falling while idle."""
from __future__ import annotations

import pytest

from shared.ops import metrics_http
from shared.ops.config import load_settings
from worker import telemetry


class FakeTime:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_busy_ratio_counts_a_running_task_and_falls_when_idle(monkeypatch):
    clock, time = telemetry.BusyClock(), FakeTime()
    monkeypatch.setattr(telemetry.time, "monotonic", time)
    assert clock.ratio() == 0.0
    clock.start()
    time.now += 30  # a task still running counts up to now
    assert clock.ratio() == pytest.approx(1.0)
    clock.stop()
    for _ in range(30):  # idle, read every second
        time.now += 1
        ratio = clock.ratio()
    assert ratio == pytest.approx(0.5)
    for _ in range(60):
        time.now += 1
        ratio = clock.ratio()
    assert ratio == 0.0  # the task is out of the one-minute window


def test_the_metrics_folder_must_be_chosen_before_the_metrics_are_made(tmp_path):
    # shared.ops.metrics is imported in this process: choosing a folder now could not move its values.
    with pytest.raises(RuntimeError, match="before the metrics folder was chosen"):
        metrics_http.use_multiprocess_dir(load_settings(var_dir=tmp_path), "worker")
    assert metrics_http.port(load_settings(metrics_port=-1), "recovery") == 9103
    assert metrics_http.port(load_settings(metrics_port=0), "web") == 0
