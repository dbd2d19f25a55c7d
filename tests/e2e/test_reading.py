"""What a person reads, in headless Chromium on real services: an image the input gate says is not a chest
X-ray shows the gate's reason and no findings until the owner asks; the viewer opens on the most probable
reliable finding; unreliable findings are marked in the list, the batch rows, CSV/JSON and both PDFs;
"No Finding" is never "yes" beside a finding."""
import csv
import datetime
import io
import json
import subprocess
import uuid

import cv2
import numpy as np
import pytest

from shared.db.engine import Database
from shared.db.models import ModelVersion
from shared.imaging import maps
from shared.jobs import lifecycle
from shared.jobs.storage import LocalStorage, upload_key
from shared.model.labels import LABELS, NO_FINDING
from shared.model.manifest import parse_manifest, read_manifest, register
from tests.e2e.conftest import sign_in
from tests.helpers import ensure_user, png_bytes, real_xray_bytes

pytestmark = pytest.mark.browser
RELIABLE, UNRELIABLE = "Mass", "Atelectasis"


def _measured_model(tiny_model) -> dict:
    """The tiny model's manifest under a version of its own, with an external evaluation in which only
    Mass is reliable (its AUROC interval lies above 0.5)."""
    manifest = read_manifest(tiny_model).to_json()
    manifest["version"] = f"sha256-reading{uuid.uuid4().hex[:9]}"
    manifest["name"] = "measured-test-model"
    per_label = {label: {"auroc": 0.55, "ci_low": 0.41, "ci_high": 0.69, "positives": 6} for label in LABELS}
    per_label[RELIABLE] = {"auroc": 0.8, "ci_low": 0.62, "ci_high": 0.93, "positives": 9}
    manifest["metrics"] = {"external": {"images": 57, "patients": 57, "mean_auroc": 0.56, "mean_auroc_ci": [0.5, 0.6],
                                        "per_label_auroc": per_label}}
    return manifest


def _analysed_job(pg_url, storage_dir, tiny_model, owner: str, probabilities: dict[str, float],
                  input_check: dict | None = None) -> tuple[str, str]:
    """A job recorded as a worker records it (claimed and finished in one transaction, so no worker of the
    shared stack can take it meanwhile): a real X-ray, its findings, every class's map. (batch id, job id)"""
    name, data = real_xray_bytes(1)[0]
    key = upload_key("png")
    LocalStorage(storage_dir).put(key, data)
    manifest = parse_manifest(_measured_model(tiny_model))
    above = {label: p >= 0.5 for label, p in probabilities.items() if label != NO_FINDING}
    findings = [lifecycle.FindingResult(label, probabilities.get(label, 0.02), 0.5,
                                        (not any(above.values())) if label == NO_FINDING else above.get(label, False))
                for label in LABELS]
    heat = {label: np.full((8, 8), 40 + i, np.uint8) for i, label in enumerate(LABELS)}  # stored for every output
    database = Database(pg_url)
    with database.session() as session:
        register(session, manifest)
        # seen long ago: the stack's workers' model stays the current one for the other tests sharing it
        session.get(ModelVersion, manifest.version).last_seen_at = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
        batch = lifecycle.create_batch(session, ensure_user(session, owner).id,
                                       [lifecycle.NewJob(name, "0" * 64, len(data), image_key=key, content_type="image/png",
                                                         width=64, height=64, stored_bytes=len(data))])
        job_id = batch.jobs[0].id
        assert lifecycle.claim(session, job_id, "test-recorder", 60) is not None
        lifecycle.succeed(session, job_id, "test-recorder", manifest.version, findings, lifecycle.Timings(1.0, 1.0),
                          maps=maps.encode(heat), input_check=input_check or {"result": "ok", "score": 0.97,
                                                                               "reason": "a frontal chest radiograph",
                                                                               "version": "rules"})
        batch_id = batch.id
    database.engine.dispose()
    return str(batch_id), str(job_id)


def test_the_viewer_opens_on_the_most_probable_reliable_finding_and_marks_the_unreliable(
        live_server, page, pg_url, pg_stack, tiny_model, tmp_path):
    owner = f"reader-{uuid.uuid4().hex[:6]}"
    batch_id, job_id = _analysed_job(pg_url, pg_stack["storage_dir"], tiny_model, owner,
                                     {UNRELIABLE: 0.91, RELIABLE: 0.72, "Effusion": 0.31, NO_FINDING: 0.8})
    sign_in(page, live_server, owner, pg_url)
    page.goto(f"{live_server}/jobs/{job_id}")
    page.wait_for_selector("#viewer[data-ready='true']")
    assert page.input_value("#finding") == RELIABLE  # not Atelectasis, more probable but unreliable
    rows = page.locator("table.findings tbody tr")
    assert rows.first.get_attribute("data-label") == UNRELIABLE  # the list: most probable first
    assert "unreliable-row" in page.get_attribute(f"#finding-{UNRELIABLE}", "class")
    assert "unreliable" in page.inner_text(f"#finding-{UNRELIABLE}") and "unreliable" not in page.inner_text(f"#finding-{RELIABLE}")
    summary = page.inner_text(".summary-line")
    assert "No Finding" not in summary and "(unreliable)" in summary  # the model's 0.8 "No Finding" vote is not a yes

    page.goto(f"{live_server}/batches/{batch_id}")
    assert "(unreliable)" in page.inner_text(f"#job-{job_id} td.result")
    exported = page.request.get(f"{live_server}/api/v1/batches/{batch_id}/export.csv").text()
    row = next(csv.DictReader(io.StringIO(exported)))
    assert row[f"reliable_{UNRELIABLE}"] == "False" and row[f"reliable_{RELIABLE}"] == "True"
    assert row["no_finding"] == "False" and row["findings_above_threshold"] == f"{UNRELIABLE}|{RELIABLE}"
    record = json.loads(page.request.get(f"{live_server}/api/v1/batches/{batch_id}/export.json").text())["jobs"][0]
    assert record["reliable"][UNRELIABLE] is False and record["reliability_set"] == "external"
    for url in (f"/api/v1/jobs/{job_id}/report.pdf", f"/api/v1/batches/{batch_id}/export.pdf"):
        pdf = tmp_path / "report.pdf"
        pdf.write_bytes(page.request.get(live_server + url).body())
        text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
        assert "(unreliable)" in text, url


def _colour_noise_jpeg() -> bytes:
    noise = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", noise)
    assert ok
    return data.tobytes()


def test_images_that_are_not_chest_xrays_show_the_reason_and_no_findings_until_asked(live_server, page, pg_url, tmp_path):
    sign_in(page, live_server, f"gated-{uuid.uuid4().hex[:6]}", pg_url)
    files = {"noise.jpg": _colour_noise_jpeg(), "tiny.png": png_bytes(np.full((8, 8), 120, np.uint8)),
             "xray.png": real_xray_bytes(1)[0][1]}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    page.set_input_files("#files", [str(tmp_path / name) for name in files])
    page.click("#submit")
    page.wait_for_url("**/batches/*")
    page.wait_for_selector("#batch[data-finished='true']", timeout=60_000)
    batch = page.request.get(page.url.replace("/batches/", "/api/v1/batches/")).json()
    jobs = {job["filename"]: job for job in batch["jobs"]}
    for name in ("noise.jpg", "tiny.png"):
        job = jobs[name]
        assert job["status"] == "succeeded" and job["findings_hidden"] is True and job["shown_findings"] == []
        assert job["input_check"]["result"] == "not_a_radiograph" and job["summary"].startswith("Not read as a chest X-ray")
        assert job["thumbnail"] is None
        page.goto(live_server + job["page_url"])
        notice = page.inner_text("#input-check")
        assert "Not read as a chest X-ray" in notice and job["input_check"]["reason"] in notice
        assert page.locator("table.findings").count() == 0
        page.click("#show-findings")  # the owner asks for them anyway
        page.wait_for_selector("table.findings")
        assert page.locator("table.findings tbody tr").count() == len(LABELS) - 1
        assert "shown at your request" in page.inner_text("#input-check")
    assert jobs["xray.png"]["findings_hidden"] is False and jobs["xray.png"]["input_check"]["result"] == "ok"
