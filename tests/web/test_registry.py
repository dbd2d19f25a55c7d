"""The model registry on real parts: Postgres, Redis, a real worker serving several versions, the web over
real HTTP, the `xray-model push` and `xray submit --model` commands. Two small models and the committed
starter are pushed and checked on real X-rays; a broken one is rejected with its reason; aliases promote and
roll back; each batch keeps the version it resolved; the worker keeps at most two versions loaded; shadow
traffic is stored beside the served results and compared."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid

import httpx
import pytest
import sqlalchemy as sa

from shared.db.models import Job, VersionResult
from shared.model.registry import pack
from tests.conftest import serve
from tests.e2e.conftest import browser  # noqa: F401, F811 (the fixture, for the page checks)
from tests.helpers import (REDIS_URL, REPO, TEST_SECRET_KEY, WorkerProcess, api_token, forget_queue, real_xray_bytes,
                           service_env, wait_until)

STARTER = REPO / "models" / "starter"


def _model(tmp_path, name):
    from training.untrained import init_model

    init_model("small-cnn", 64, "none", tmp_path / name, name=name)
    return tmp_path / name


@pytest.fixture()
def registry_stack(tmp_path, own_pg_url, tiny_model):
    """A worker in registry mode (its folder is the fallback, not a pin) and the web over real HTTP."""
    from web import create_app

    queue = f"xray-test-{uuid.uuid4().hex[:8]}"
    storage = tmp_path / "storage"
    env = service_env(DATABASE_URL=own_pg_url, CELERY_BROKER_URL=REDIS_URL, XRAY_QUEUE=queue,
                      XRAY_VAR_DIR=str(tmp_path), XRAY_STORAGE_DIR=str(storage), XRAY_MODEL_DIR=str(tiny_model),
                      XRAY_MODEL_PINNED="0", XRAY_MAX_LOADED_MODELS="2")
    worker = WorkerProcess(env, tmp_path / "worker.log")
    app = create_app({"database_url": own_pg_url, "broker_url": REDIS_URL, "queue_name": queue, "var_dir": tmp_path,
                      "storage_dir": storage, "model_dir": tiny_model, "secret_key": TEST_SECRET_KEY,
                      "RATELIMIT_KEY_PREFIX": f"t-{uuid.uuid4().hex}"})
    try:
        worker.wait_ready()
        for base in serve(app):
            yield {"base": base, "db": own_pg_url, "worker": worker, "tmp": tmp_path,
                   "admin": api_token(own_pg_url, "root", role="admin"), "alice": api_token(own_pg_url, "alice"),
                   "bob": api_token(own_pg_url, "bob")}
    finally:
        worker.stop()
        forget_queue(REDIS_URL, queue)


def _client(stack, who):
    return httpx.Client(base_url=stack["base"], headers={"Authorization": f"Bearer {stack[who]}"}, timeout=120)


def _push(stack, folder) -> dict:
    with _client(stack, "admin") as client:
        answer = client.post("/api/v1/models", files={"artifact": ("a.tar.gz", pack(folder), "application/gzip")})
    assert answer.status_code in (200, 202), answer.text
    return answer.json()


def _settled(stack, version, timeout=180) -> dict:
    with _client(stack, "admin") as client:
        return wait_until(lambda: (lambda b: b if b["status"] != "verifying" else None)(
            client.get(f"/api/v1/models/versions/{version}").json()), timeout, interval=0.3, message=f"check of {version}")


def _submit(stack, who="alice", model=None, count=2) -> dict:
    data = {"model": model} if model else {}
    with _client(stack, who) as client:
        answer = client.post("/api/v1/batches", data=data,
                             files=[("files", (n, b, "image/png")) for n, b in real_xray_bytes(count)])
    assert answer.status_code == 202, answer.text
    return answer.json()


def _finished(stack, batch_id, who="alice", timeout=180) -> dict:
    with _client(stack, who) as client:
        return wait_until(lambda: (lambda b: b if b["finished"] else None)(
            client.get(f"/api/v1/batches/{batch_id}").json()), timeout, interval=0.2, message=f"batch {batch_id}")


def _versions_of_jobs(stack, batch_id) -> set:
    engine = sa.create_engine(stack["db"])
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Job.model_version).where(Job.batch_id == uuid.UUID(batch_id))).scalars().all()
    engine.dispose()
    return set(rows)


def _findings(stack, batch) -> list:
    with _client(stack, "alice") as client:
        return [client.get(f"/api/v1/jobs/{job['id']}").json()["findings"] for job in batch["jobs"]]


def _alias(stack, name, version, **extra):
    with _client(stack, "admin") as client:
        answer = client.put(f"/api/v1/models/aliases/{name}", json={"version": version, **extra})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_push_check_promote_rollback_and_per_batch_choice(registry_stack, tmp_path):
    stack = registry_stack
    a, b = _model(tmp_path, "variant-a"), _model(tmp_path, "variant-b")
    pushed_a = _push(stack, a)
    assert pushed_a["status"] == "verifying" and pushed_a["stored"]
    version_a = _settled(stack, pushed_a["version"])
    assert version_a["status"] == "ready", version_a
    assert _push(stack, a)["version"] == version_a["version"]  # the same folder again: 200, nothing new

    # xray-model push: packs, pushes, waits for the check, and names the alias.
    env = {**service_env(), "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-m", "training.cli", "push", str(b), "--url", stack["base"], "--token",
                          stack["admin"], "--alias", "candidate"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    with _client(stack, "alice") as client:
        listed = client.get("/api/v1/models").json()
        version_b = next(v for v in listed["versions"] if v["name"] == "variant-b")
        assert version_b["status"] == "ready" and version_b["aliases"] == ["candidate"]
        # A member may read the registry, not change it.
        assert client.post("/api/v1/models", files={"artifact": ("a.tar", pack(a), "application/x-tar")}).status_code == 403
        assert client.put("/api/v1/models/aliases/default", json={"version": version_a["version"]}).status_code == 403
        assert client.post("/api/v1/batches", data={"model": "no-such-model"},
                           files=[("files", ("x.png", real_xray_bytes(1)[0][1], "image/png"))]).status_code == 400

    # A broken upload is refused with the reason: labels the service does not know (at once), a CAM layer the
    # model does not have (by the worker's check, kept as 'rejected').
    broken = tmp_path / "broken"
    shutil.copytree(a, broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["labels"] = list(reversed(manifest["labels"]))
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with _client(stack, "admin") as client:
        refused = client.post("/api/v1/models", files={"artifact": ("b.tar.gz", pack(broken), "application/gzip")})
    assert refused.status_code == 422 and "labels" in refused.json()["error"]["message"]
    no_cam = _model(tmp_path, "variant-no-cam")
    manifest = json.loads((no_cam / "manifest.json").read_text())
    manifest["cam_layer"] = "no_such_layer"
    (no_cam / "manifest.json").write_text(json.dumps(manifest))
    rejected = _settled(stack, _push(stack, no_cam)["version"])
    assert rejected["status"] == "rejected" and "no_such_layer" in rejected["reason"]
    assert _client(stack, "admin").put("/api/v1/models/aliases/default",
                                       json={"version": rejected["version"]}).status_code == 409

    # default -> a; a batch naming nothing gets a; one naming the candidate alias (or b's id) gets b.
    _alias(stack, "default", version_a["version"])
    first = _submit(stack)
    assert first["model_version"] == version_a["version"]
    on_b = _submit(stack, model="candidate")
    by_prefix = _submit(stack, model=version_b["version"][:12])
    assert on_b["model_version"] == by_prefix["model_version"] == version_b["version"]
    # xray submit --model: every chunk on the named alias's version.
    for name, data in real_xray_bytes(2):
        (tmp_path / name).write_bytes(data)
    client_env = {**service_env(), "XRAY_URL": stack["base"], "XRAY_TOKEN": stack["alice"], "COLUMNS": "200"}
    sent = subprocess.run([sys.executable, "-m", "client.cli", "submit", *[n for n, _ in real_xray_bytes(2)],
                           "--model", "candidate", "--chunk", "1", "--wait"], cwd=tmp_path, env=client_env,
                          capture_output=True, text=True, timeout=300)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    cli_batches = (sent.stdout + sent.stderr).split("batches: ")[1].splitlines()[0].split(", ")
    assert len(cli_batches) == 2
    for batch_id in cli_batches:
        assert _versions_of_jobs(stack, batch_id.strip()) == {version_b["version"]}
    before = _finished(stack, first["id"])
    for batch in (first, on_b, by_prefix):
        _finished(stack, batch["id"])
        assert _versions_of_jobs(stack, batch["id"]) == {batch["model_version"]}

    # Promote: default -> b. New batches get b at once; the batch before keeps a and its stored results.
    moved = time.perf_counter()
    _alias(stack, "default", version_b["version"])
    promoted = _submit(stack, count=1)
    _finished(stack, promoted["id"])
    promote_seconds = time.perf_counter() - moved
    assert promoted["model_version"] == version_b["version"]
    assert _findings(stack, _finished(stack, first["id"])) == _findings(stack, before)
    assert _versions_of_jobs(stack, first["id"]) == {version_a["version"]}
    # Roll back: default -> a.
    _alias(stack, "default", version_a["version"])
    rolled = _submit(stack, count=1)
    _finished(stack, rolled["id"])
    assert _versions_of_jobs(stack, rolled["id"]) == {version_a["version"]}
    print(f"promote: alias moved -> first new batch (1 image) finished on it in {promote_seconds:.2f} s")

    # Every result names its version: the API, the CSV and JSON exports, the DICOM SR.
    with _client(stack, "alice") as client:
        job_id = promoted["jobs"][0]["id"]
        assert client.get(f"/api/v1/jobs/{job_id}").json()["model"]["version"] == version_b["version"]
        assert version_b["version"] in client.get(f"/api/v1/batches/{promoted['id']}/export.csv").text
        exported = client.get(f"/api/v1/batches/{promoted['id']}/export.json").json()
        assert version_b["version"] in json.dumps(exported)
        from tests.dicom_factory import grey_from_png, make_dicom

        dicom = make_dicom(grey_from_png(real_xray_bytes(1)[0][1]))
        sent_dicom = client.post("/api/v1/batches", data={"model": "candidate"},
                                 files=[("files", ("scan.dcm", dicom, "application/dicom"))]).json()
        done = _finished(stack, sent_dicom["id"])
        report = client.get(f"/api/v1/jobs/{done['jobs'][0]['id']}/dicom/report")
        assert report.status_code == 200 and version_b["version"].encode() in report.content  # the SR's version

    # The worker's own folder version is a third version: with at most two loaded, one was unloaded.
    folder = _submit(stack, model=stack["worker"].log().split(" serves ")[1].split()[1][:12], count=1)
    _finished(stack, folder["id"])
    assert "unloaded model version" in stack["worker"].log()

    # A version that produced results cannot be deleted; an unused one can; bob sees none of alice's batches.
    with _client(stack, "admin") as client:
        assert client.delete(f"/api/v1/models/versions/{version_a['version']}").status_code == 409
        assert client.delete(f"/api/v1/models/versions/{rejected['version']}").status_code == 204
        assert client.get(f"/api/v1/models/versions/{rejected['version']}").status_code == 404
    with _client(stack, "bob") as client:
        assert client.get(f"/api/v1/batches/{first['id']}").status_code == 404


def test_a_labelled_batch_rerun_with_another_version_is_evaluated_for_both(registry_stack, tmp_path):
    """"Rerun this batch with version X": the same images, no new upload; the evaluation then has both versions."""
    from tests.helpers import FIXTURES

    stack = registry_stack
    first = _settled(stack, _push(stack, _model(tmp_path, "first"))["version"])
    second = _settled(stack, _push(stack, _model(tmp_path, "second"))["version"])
    _alias(stack, "default", first["version"])
    with _client(stack, "alice") as client:
        sent = client.post("/api/v1/batches", files=[("files", (n, b, "image/png")) for n, b in real_xray_bytes(4)]
                           + [("labels", ("labels.csv", (FIXTURES / "nih64" / "labels.csv").read_bytes(), "text/csv"))])
        assert sent.status_code == 202, sent.text
        batch_id = sent.json()["id"]
        _finished(stack, batch_id)

        def evaluated(count):
            body = client.get(f"/api/v1/batches/{batch_id}/evaluation").json()
            return body if body["state"] == "ready" and len(body["versions"]) == count else None

        wait_until(lambda: evaluated(1), 120, message="the first evaluation")
        with _client(stack, "bob") as other:
            assert other.post(f"/api/v1/batches/{batch_id}/reruns", json={"model": "candidate"}).status_code == 404
        assert client.post(f"/api/v1/batches/{batch_id}/reruns", json={"model": "no-such"}).status_code == 404
        rerun = client.post(f"/api/v1/batches/{batch_id}/reruns", json={"model": second["version"]})
        assert rerun.status_code == 202 and rerun.json()["queued"] == 4, rerun.text
        body = wait_until(lambda: evaluated(2), 180, message="the evaluation of both versions")
        assert {v["model_version"] for v in body["versions"]} == {first["version"], second["version"]}
        assert all(v["figures"]["images"] == 4 for v in body["versions"])
        # The served answers stay the first version's; the rerun is beside them, not instead.
        assert _versions_of_jobs(stack, batch_id) == {first["version"]}
        again = client.post(f"/api/v1/batches/{batch_id}/reruns", json={"model": second["version"]}).json()
        assert again["queued"] == 0  # nothing twice


@pytest.mark.browser
def test_shadow_results_compared_and_the_registry_pages(registry_stack, tmp_path, browser):  # noqa: F811
    """Shadow traffic is stored beside the served results and compared; the admin's models page lists the
    versions, moves an alias and shows the shadow's agreement with the numbers the API gives; a member's
    upload page offers the versions and a batch sent with one runs on it."""
    from tests.e2e.conftest import sign_in

    stack = registry_stack
    served = _settled(stack, _push(stack, _model(tmp_path, "served"))["version"])
    shadow = _settled(stack, _push(stack, STARTER)["version"], timeout=300)  # the real starter, checked on X-rays
    assert served["status"] == shadow["status"] == "ready", (served, shadow)
    _alias(stack, "default", served["version"])
    assert _alias(stack, "shadow", shadow["version"], share=1.0)["share"] == 1.0
    batch = _submit(stack, count=4)
    done = _finished(stack, batch["id"])
    assert {j["model"]["version"] for j in done["jobs"]} == {served["version"]}  # the answer is the served one

    engine = sa.create_engine(stack["db"])

    def shadow_rows():
        with engine.connect() as conn:
            return conn.execute(sa.select(VersionResult.status, VersionResult.probabilities, VersionResult.kind)
                                .join(Job, Job.id == VersionResult.job_id)
                                .where(Job.batch_id == uuid.UUID(batch["id"]))).all()

    rows = wait_until(lambda: (lambda r: r if len(r) == 4 and all(x.status == "succeeded" for x in r) else None)(
        shadow_rows()), 300, message="shadow results")
    engine.dispose()
    assert all(row.kind == "shadow" and len(row.probabilities) == 15 for row in rows)
    with _client(stack, "admin") as client:
        compared = client.get("/api/v1/models/compare", params={"served": "default", "other": "shadow"}).json()
    assert compared["images"] == 4
    for finding in compared["findings"]:
        assert finding["images"] == 4 and 0.0 <= finding["disagreement"] <= 1.0
    with _client(stack, "alice") as client:
        assert client.get("/api/v1/models/compare", params={"served": "default", "other": "shadow"}).status_code == 403

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    sign_in(page, stack["base"], "root", stack["db"])
    page.goto(stack["base"] + "/admin/models")
    table = page.inner_text("table.models")
    assert served["version"][:19] in table and shadow["version"][:19] in table and "default" in table
    agreement = page.inner_text("table.agreement")
    first = compared["findings"][0]
    assert f"{first['disagreement'] * 100:.1f}%" in agreement.split("\n")[1]
    page.select_option("#version", shadow["version"])
    page.fill("#alias", "candidate")
    page.click("form[action$='/admin/models/aliases'] button[type=submit]")
    assert "Alias candidate now points at" in page.inner_text("body")
    (REPO / "test-artifacts").mkdir(exist_ok=True)
    page.screenshot(path=str(REPO / "test-artifacts" / "models-admin.png"), full_page=True)

    member = browser.new_page(viewport={"width": 1200, "height": 900})
    sign_in(member, stack["base"], "alice", stack["db"])
    options = member.eval_on_selector_all("#batch-model option", "els => els.map(e => e.value)")
    assert "candidate" in options and shadow["version"] in options and "shadow" not in options
    member.select_option("#batch-model", "candidate")
    picture = tmp_path / "one.png"
    picture.write_bytes(real_xray_bytes(1)[0][1])
    member.set_input_files("#files", str(picture))
    member.click("#upload-form button[type=submit]")
    member.wait_for_url("**/jobs/**")
    job_id = member.url.rstrip("/").split("/")[-1].split("?")[0]
    with _client(stack, "alice") as client:
        job = wait_until(lambda: (lambda j: j if j["status"] == "succeeded" else None)(
            client.get(f"/api/v1/jobs/{job_id}").json()), 300, message="the page's upload")
    assert job["model"]["version"] == shadow["version"]
    member.reload()
    assert shadow["version"] in member.inner_text("main")  # the viewer names the version that answered
