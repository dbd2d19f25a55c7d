"""The HTTP API against real Postgres, Redis and a real worker process (the pg_stack fixture)."""
import base64
import subprocess
import sys
import time
import uuid

import numpy as np

from tests.helpers import (REPO, TEST_SECRET_KEY, TokenClient, corrupt_png, decode_image_bytes, multipart, png_bytes,
                           real_xray_bytes, service_env)


def wait_for_batch(client, location, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(location).get_json()
        if body["finished"]:
            return body
        time.sleep(0.2)
    raise AssertionError(f"batch not finished after {timeout}s: {body['counts']}")


def test_two_valid_and_one_corrupt_upload_complete_as_two_results_and_one_clear_failure(pg_client):
    files = real_xray_bytes(2) + [("broken.png", corrupt_png())]
    response = pg_client.post("/api/v1/batches", data=multipart(files), content_type="multipart/form-data")
    assert response.status_code == 202
    body = response.get_json()
    assert body["served_model"]["trained"] is False
    assert body["warnings"] == ["This model is untrained (random weights): its predictions and heatmaps are meaningless."]
    assert response.headers["Location"] == f"/api/v1/batches/{body['id']}"
    assert len(body["jobs"]) == 3 and body["total"] == 3

    batch = wait_for_batch(pg_client, response.headers["Location"])
    assert batch["done"] == 3 and batch["counts"] == {"queued": 0, "running": 0, "succeeded": 2, "failed": 1}
    assert batch["warnings"] == ["This model is untrained (random weights): its predictions and heatmaps are meaningless."]
    by_name = {job["filename"]: job for job in batch["jobs"]}
    assert "the PNG file is truncated" in by_name["broken.png"]["error"]

    for name, _ in files[:2]:
        job = pg_client.get(by_name[name]["url"]).get_json()
        assert job["status"] == "succeeded" and job["model"]["trained"] is False and job["model"]["warning"]
        assert [f["label"] for f in job["findings"]][:2] == ["Atelectasis", "Cardiomegaly"]
        assert len(job["findings"]) == 15 and "not for diagnosis" in job["disclaimer"]
        assert "untrained" in job["warnings"][0]
        # Every finding has a heatmap, drawn on request from the stored maps; "No Finding" is a summary.
        overlays = {f["label"]: f["overlay_url"] for f in job["findings"]}
        assert overlays.pop("No Finding") is None and all(overlays.values()) and len(overlays) == 14
        assert "No Finding" not in [f["label"] for f in job["shown_findings"]]
        for url in list(overlays.values())[:3]:
            overlay = pg_client.get(url)
            assert overlay.status_code == 200 and overlay.mimetype == "image/jpeg"
            assert decode_image_bytes(overlay.data).shape == (64, 64, 3)
        assert pg_client.get(overlays["Mass"] + "?format=png&opacity=1").mimetype == "image/png"
        assert pg_client.get(job["url"] + "/overlays/No%20Finding").status_code == 404
        maps = pg_client.get(job["maps_url"]).get_json()
        assert len(maps["maps"]) == 15 and len(maps["colormap"]) == 256 and maps["height"] == maps["width"] == 8
        original = pg_client.get(job["image_url"])
        assert original.status_code == 200 and original.headers["Cache-Control"] == "private, no-store"
        assert np.array_equal(decode_image_bytes(original.data), decode_image_bytes(dict(files)[name]))
        values = pg_client.get(job["values_url"]).get_json()  # the viewer's window/level works on these
        grey = np.frombuffer(base64.b64decode(values["values"]), "<f4").reshape(values["height"], values["width"])
        assert values["bits"] == 8 and values["pixel_spacing_mm"] is None and values["windows"]["default"] == {
            "centre": 127.5, "width": 255.0}
        assert np.array_equal(grey, np.atleast_3d(decode_image_bytes(dict(files)[name]))[:, :, 0].astype(np.float32))


def test_errors_are_json_with_the_right_status(pg_app, pg_client):
    no_files = pg_client.post("/api/v1/batches", data={}, content_type="multipart/form-data")
    assert no_files.status_code == 400 and "no files" in no_files.get_json()["error"]["message"]

    text = pg_client.post("/api/v1/batches", data=multipart([("scan.png", b"not an image")]),
                          content_type="multipart/form-data")
    assert text.status_code == 415
    error = text.get_json()["error"]
    assert "none of the files can be analysed" in error["message"]
    assert error["files"] == [{"filename": "scan.png", "error": "the file is not a PNG, JPEG or DICOM image"}]

    assert pg_client.get(f"/api/v1/batches/{uuid.uuid4()}").status_code == 404
    assert pg_client.get("/api/v1/jobs/not-a-uuid").get_json()["error"]["status"] == 404
    assert pg_client.delete("/api/v1/batches").status_code == 405


def test_request_and_file_size_limits(pg_stack, alice_token):
    from web import create_app

    client = TokenClient(create_app({**pg_stack, "max_request_bytes": 50_000, "max_file_bytes": 20_000}).test_client(),
                         alice_token)
    big = png_bytes(np.random.default_rng(0).integers(0, 255, (300, 300), dtype=np.uint8))
    assert len(big) > 50_000
    too_big_request = client.post("/api/v1/batches", data=multipart([("big.png", big)]), content_type="multipart/form-data")
    assert too_big_request.status_code == 413
    assert "at most 48.8 kB" in too_big_request.get_json()["error"]["message"]
    medium = png_bytes(np.random.default_rng(0).integers(0, 255, (150, 150), dtype=np.uint8))
    assert 20_000 < len(medium) < 50_000
    too_big_file = client.post("/api/v1/batches", data=multipart([("m.png", medium)]), content_type="multipart/form-data")
    assert too_big_file.status_code == 413
    assert "larger than the 19.5 kB limit per image" in too_big_file.get_json()["error"]["message"]


def test_one_bad_file_in_a_batch_fails_alone(pg_client):
    files = real_xray_bytes(2) + [("notes.png", b"text, not pixels")]
    response = pg_client.post("/api/v1/batches", data=multipart(files), content_type="multipart/form-data")
    assert response.status_code == 202
    jobs = {job["filename"]: job for job in response.get_json()["jobs"]}
    assert jobs["notes.png"]["status"] == "failed" and jobs["notes.png"]["image_url"] is None
    batch = wait_for_batch(pg_client, response.headers["Location"])
    assert batch["counts"]["succeeded"] == 2 and batch["counts"]["failed"] == 1


def test_batches_and_jobs_are_read_through_their_owner(pg_app, pg_client, bob_token):
    response = pg_client.post("/api/v1/batches", data=multipart(real_xray_bytes(1)), content_type="multipart/form-data")
    batch = response.get_json()
    stranger = TokenClient(pg_app.test_client(), bob_token)
    assert stranger.get(f"/api/v1/batches/{batch['id']}").status_code == 404
    assert stranger.get(batch["jobs"][0]["url"]).status_code == 404
    assert stranger.get(batch["jobs"][0]["image_url"]).status_code == 404
    assert stranger.get(batch["jobs"][0]["url"] + "/values").status_code == 404
    assert batch["id"] not in [b["id"] for b in stranger.get("/api/v1/batches").get_json()["batches"]]


def test_history_lists_newest_first_and_pages(pg_client):
    ids = []
    for _ in range(3):
        response = pg_client.post("/api/v1/batches", data=multipart(real_xray_bytes(1)), content_type="multipart/form-data")
        ids.append(response.get_json()["id"])
    first = pg_client.get("/api/v1/batches?per_page=2").get_json()
    second = pg_client.get("/api/v1/batches?per_page=2&page=2").get_json()
    assert [b["id"] for b in first["batches"]] == ids[::-1][:2]
    assert second["batches"][0]["id"] == ids[0]
    assert first["total"] >= 3


def test_healthz_and_current_model(pg_client):
    assert pg_client.get("/healthz").get_json() == {"status": "ok", "database": "ok"}
    assert pg_client.get("/api/v1/healthz").status_code == 200
    model = pg_client.get("/api/v1/models/current").get_json()["model"]
    assert model["name"] == "tiny-test-model" and model["trained"] is False


def test_the_web_process_never_imports_tensorflow(pg_stack):
    code = (
        "import sys; from web import create_app; app = create_app(); c = app.test_client();"
        "assert c.get('/signin').status_code == 200;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'worker')];"
        "assert not bad, bad; print('clean')"
    )
    env = service_env(DATABASE_URL=pg_stack["database_url"], CELERY_BROKER_URL=pg_stack["broker_url"],
                      XRAY_VAR_DIR=str(pg_stack["var_dir"]), XRAY_SECRET_KEY=TEST_SECRET_KEY)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "clean" in result.stdout, result.stderr[-2000:]


def test_any_since_cursor_answers_without_a_server_error(pg_client):
    """schemathesis found `since=0001-01-01T00:00:00Z` answered 500 (looking back 5 s from year 1 overflowed)."""
    answer = pg_client.post("/api/v1/batches", data=multipart(real_xray_bytes(1)), content_type="multipart/form-data")
    location = answer.headers["Location"]
    for cursor in ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-01-01"):
        body = pg_client.get(location, query_string={"since": cursor})
        assert body.status_code == 200, (cursor, body.get_data(as_text=True))
        assert body.get_json()["partial"] is True
    everything = pg_client.get(location, query_string={"since": "0001-01-01T00:00:00Z"}).get_json()
    assert len(everything["jobs"]) == 1  # a cursor from before anything existed: every job
    assert pg_client.get(location, query_string={"since": "yesterday"}).status_code == 400
