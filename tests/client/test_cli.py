"""The `xray` command-line client against the running service (real Postgres, Redis and a worker), with
real NIH X-rays from ../shared/data (the four 64×64 fixtures where that folder is absent): submit in
chunks, wait, write the CSV and the heatmaps; a run killed halfway and resumed sends every image once."""
import csv
import hashlib
import json
import signal
import subprocess
import sys

import httpx
import pytest
import sqlalchemy as sa

from client.service import Api, ServiceError
from shared.db.models import Batch, IdempotencyKey, Job, User
from tests.helpers import FIXTURES, SHARED_DATA, api_token, service_env, wait_until

FULLRES = SHARED_DATA / "nih-fullres-sample" / "images"


def images(tmp_path):
    """The real full-resolution X-rays (57), or the 64×64 fixtures (4)."""
    source = FULLRES if FULLRES.is_dir() else FIXTURES / "nih64"
    return sorted(source.glob("*.png"))


def xray(base, token, *args, cwd, timeout=600):
    env = {**service_env(), "XRAY_URL": base, "XRAY_TOKEN": token, "COLUMNS": "120"}
    return subprocess.run([sys.executable, "-m", "client.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def jobs_of(pg_url, username) -> list[tuple]:
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Job.content_sha256, Job.status).join(Batch).join(User, User.id == Batch.owner_id)
                            .where(User.username == username)).all()
    engine.dispose()
    return rows


def uploads_in_progress(pg_url, username) -> int:
    """Uploads of the user whose Idempotency-Key is reserved and whose batch is not recorded yet."""
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(IdempotencyKey)
                             .join(User, User.id == IdempotencyKey.owner_id)
                             .where(User.username == username, IdempotencyKey.batch_id.is_(None))).scalar()
    engine.dispose()
    return count


@pytest.mark.slow
def test_submit_waits_and_writes_every_probability_and_the_heatmaps(live_server, pg_url, tmp_path):
    paths = images(tmp_path)
    token = api_token(pg_url, "cli-user")
    run = xray(live_server, token, "submit", str(paths[0].parent), "--chunk", "20", "--name", "cli run",
               "--out", str(tmp_path / "results.csv"), "--heatmaps", str(tmp_path / "heatmaps"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    print(run.stderr[-1500:])  # the session, as a person sees it
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert [row["path"] for row in rows] == [str(p) for p in paths]
    assert all(row["status"] == "succeeded" and row["model_version"] for row in rows)
    assert all(0.0 <= float(row[f"prob_{label}"]) <= 1.0 for row in rows for label in ("Mass", "No Finding"))
    saved = sorted((tmp_path / "heatmaps").glob("*.jpg"))
    assert len(saved) == sum(len(filter_labels(row)) for row in rows)
    status = xray(live_server, token, "status", rows[0]["batch_id"], cwd=tmp_path)
    assert status.returncode == 0 and "done (" in status.stderr
    models = xray(live_server, token, "models", cwd=tmp_path)
    assert models.returncode == 0 and "tiny-test-model" in models.stderr
    wrong = xray(live_server, "xrt_nope_nope", "status", rows[0]["batch_id"], cwd=tmp_path)
    assert wrong.returncode == 2 and "HTTP 401" in wrong.stderr and "XRAY_TOKEN" in wrong.stderr


def filter_labels(row):
    return [label for label in row["findings_above_threshold"].split("|") if label]


@pytest.mark.slow
def test_a_run_killed_halfway_and_resumed_sends_each_image_exactly_once(live_server, pg_url, tmp_path):
    paths = images(tmp_path)
    chunk = max(1, len(paths) // 6)
    token = api_token(pg_url, "cli-resumer")
    env = {**service_env(), "XRAY_URL": live_server, "XRAY_TOKEN": token}
    first = subprocess.Popen([sys.executable, "-m", "client.cli", "submit", str(paths[0].parent), "--chunk", str(chunk)],
                             cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / ".xray-submit.json"

    def halfway():  # two chunks answered and the next one in flight (its key written, no answer yet)
        if not state.exists():
            return False
        chunks = json.loads(state.read_text())["chunks"]
        return sum(1 for c in chunks if c["batch_id"]) >= 2 and any(c["key"] and not c["batch_id"] for c in chunks)

    wait_until(halfway, 120, interval=0.005, message="the run to be halfway")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    # A chunk that reached the service before the kill is either recorded or given up by now (the resumed run
    # would get 409 and wait for it otherwise; either way no image is sent twice).
    wait_until(lambda: not uploads_in_progress(pg_url, "cli-resumer"), 30, message="the killed run's upload to settle")
    resumed = xray(live_server, token, "submit", "--resume", "--out", str(tmp_path / "results.csv"), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    sent = jobs_of(pg_url, "cli-resumer")
    expected = sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in paths)
    assert sorted(sha for sha, _ in sent) == expected  # every image exactly once
    assert len(list(csv.DictReader(open(tmp_path / "results.csv")))) == len(paths)


def test_the_client_waits_as_retry_after_says_and_retries_a_lost_connection():
    answers = [httpx.Response(429, headers={"Retry-After": "7"}, json={"error": {"status": 429, "message": "slow"}}),
               httpx.ConnectError("refused"), httpx.Response(200, json={"ok": True})]
    slept = []

    def handler(request):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    api = Api("http://service", "xrt_a_b", sleep=slept.append, transport=httpx.MockTransport(handler))
    assert api.json("/api/v1/batches") == {"ok": True}
    assert slept[0] == 7.0 and len(slept) == 2
    refused = Api("http://service", None, sleep=slept.append, transport=httpx.MockTransport(
        lambda r: httpx.Response(413, json={"error": {"status": 413, "message": "your quota is 1 GB"}})))
    with pytest.raises(ServiceError, match="HTTP 413: your quota is 1 GB .*send fewer or smaller images"):
        refused.json("/api/v1/batches")


def test_submit_takes_dicom_files_from_a_folder(live_server, pg_url, tmp_path):
    from tests.dicom_factory import grey_from_png, make_dicom

    folder = tmp_path / "scans"
    (folder / "study-1").mkdir(parents=True)
    fixtures = sorted((FIXTURES / "nih64").glob("*.png"))[:2]
    for i, png in enumerate(fixtures):
        (folder / "study-1" / f"image-{i}.dcm").write_bytes(make_dicom(grey_from_png(png.read_bytes()), "jpeg2000"))
    (folder / "notes.txt").write_text("not an image")
    run = xray(live_server, api_token(pg_url, "cli-dicom"), "submit", str(folder), "--out", str(tmp_path / "out.csv"),
               cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "out.csv")))
    assert [row["path"].rsplit("/", 1)[-1] for row in rows] == ["image-0.dcm", "image-1.dcm"]
    assert all(row["status"] == "succeeded" for row in rows)


def test_submit_with_labels_then_evaluate_and_relabel(live_server, pg_url, tmp_path):
    """`xray submit --labels` sends the ground truth with the upload: the worker evaluates the batch when its
    last image is done and `xray evaluate` prints it; `xray labels` replaces it and downloads readers' labels."""
    paths = sorted((FIXTURES / "nih64").glob("*.png"))
    truth = SHARED_DATA / "nih1000-64px" / "labels.csv"
    if not truth.is_file():
        pytest.skip("needs ../shared/data/nih/nih1000-64px")
    lines = [line for line in truth.read_text().splitlines() if line.split(",")[0] in {p.name for p in paths}]
    labels = tmp_path / "labels.csv"
    labels.write_text(truth.read_text().splitlines()[0] + "\n" + "\n".join(lines) + "\nnot-here.png,Mass,0,1,50,F,PA\n")
    token = api_token(pg_url, "cli-evaluator")
    run = xray(live_server, token, "submit", *map(str, paths), "--labels", str(labels), "--wait", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"ground truth: {len(lines)} of {len(paths)} images matched" in run.stderr
    batch_id = run.stderr.split("batches: ")[1].split()[0]
    printed = wait_until(lambda: (r := xray(live_server, token, "evaluate", batch_id, cwd=tmp_path)).returncode == 0
                         and "evaluation: ready" in r.stdout and r.stdout, 30, message="the evaluation")
    assert "model tiny-test-model" in printed and "No Finding" in printed and "too few positives" in printed
    as_json = json.loads(xray(live_server, token, "evaluate", batch_id, "--json", cwd=tmp_path).stdout)
    assert as_json["truth"]["images_labelled"] == len(lines) and as_json["truth"]["unmatched_rows"] == 1
    relabel = xray(live_server, token, "labels", batch_id, str(labels), cwd=tmp_path)
    assert relabel.returncode == 0 and "1 row(s) matched no image" in relabel.stderr and "not-here.png" in relabel.stderr
    out = tmp_path / "readers.csv"
    readers = xray(live_server, token, "labels", batch_id, "--readers-out", str(out), cwd=tmp_path)
    assert readers.returncode == 0 and out.read_text().startswith("Image Index,Finding Labels,Patient ID")
    bad = xray(live_server, token, "labels", batch_id, str(tmp_path / "missing.csv"), cwd=tmp_path)
    assert bad.returncode == 2 and "does not exist" in bad.stderr
