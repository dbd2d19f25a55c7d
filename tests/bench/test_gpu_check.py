"""bench/gpu_check.sh on a machine without a GPU (this one, and CI): it stops at once and says why, and its
Python part refuses a backend that sees no GPU. Neither may hang or print figures measured on a CPU."""
import os
import subprocess
import sys

from tests.helpers import REPO


def test_the_gpu_check_stops_at_once_without_a_gpu_and_says_why(tmp_path):
    (tmp_path / "nvidia-smi").write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed: no devices were found' >&2\nexit 9\n")
    (tmp_path / "nvidia-smi").chmod(0o755)
    for path in (os.environ["PATH"], f"{tmp_path}:{os.environ['PATH']}"):  # none at all; a driver without a device
        done = subprocess.run(["bash", "bench/gpu_check.sh"], cwd=REPO, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PATH": path, "GPU_CHECK_DIR": str(tmp_path / "envs")})
        assert done.returncode == 2, done.stderr
        assert "no NVIDIA GPU here" in done.stderr and "|" not in done.stdout  # no table, no figures
        assert not (tmp_path / "envs").exists()  # nothing installed


def test_its_measuring_part_refuses_a_backend_that_sees_no_gpu():
    done = subprocess.run([sys.executable, "bench/gpu_check.py"], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KERAS_BACKEND": "tensorflow", "PYTHONPATH": str(REPO),
                               "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 3, done.stderr
    assert "sees no GPU" in done.stderr and "|" not in done.stdout
