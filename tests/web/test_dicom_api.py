"""DICOM through the API with real Postgres, Redis and a worker: every common syntax analysed as its PNG
twin is, refusals with reasons (decompression bombs and cut files included), the view flagged, the SR and
heatmap captures downloadable and valid, and no patient identifier anywhere in what is stored or answered:
not in nested sequences, not in text hidden inside compressed pixel data."""
import io
import json

import cv2

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from sqlalchemy import create_engine, text

from tests.dicom_factory import (IDENTIFYING_STRINGS, PIXEL_TEXTS, deflate_bomb, grey_from_png, jpeg_with_text,
                                 make_dicom, sof_bomb, undecodable_dicom, with_frame, with_pixel_text)
from tests.helpers import TokenClient, corrupt_png, decode_image_bytes, multipart, real_xray_bytes, real_xray_jpeg
from tests.shared.test_dicom import validate
from tests.web.test_accounts import sign_in
from tests.web.test_api import wait_for_batch

UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


def _uids(data: bytes) -> list[str]:
    ds = pydicom.dcmread(io.BytesIO(data))
    return [str(ds[k].value) for k in UID_KEYWORDS]


@pytest.fixture(scope="module")
def sent():
    png_name, png = real_xray_bytes(1)[0]
    xray = grey_from_png(png)
    ok, jpeg = cv2.imencode(".jpg", xray)
    files = {
        "pa-jpeg2000-m1-16bit.dcm": with_pixel_text(make_dicom(xray, "jpeg2000", bits=16, monochrome1=True),
                                                    "jpeg2000"),
        "pa-jpeg-lossless-16bit.dcm": with_pixel_text(make_dicom(xray, "jpeg-lossless", bits=16), "jpeg-lossless"),
        "pa-rle-8bit.dcm": make_dicom(xray, "rle", bits=8),
        "pa-nested-8bit.dcm": make_dicom(xray, "explicit", bits=8, nested=True),
        "lateral.dcm": make_dicom(xray, "explicit", bits=16, view="LL"),
        "mpeg.dcm": undecodable_dicom(xray),
        "ct.dcm": open(get_testdata_file("CT_small.dcm"), "rb").read(),
        "bomb.dcm": sof_bomb(cv2.resize(xray, (512, 512))),
        "deflate-bomb.dcm": deflate_bomb(xray),
        "twin.png": png,
        "adobe.jpg": jpeg_with_text(jpeg.tobytes()),
    }
    secrets = list(IDENTIFYING_STRINGS) + PIXEL_TEXTS
    for name, data in files.items():
        if name.startswith(("pa-", "lateral")):
            secrets += _uids(data)
    return xray, files, secrets


def test_dicom_uploads_are_analysed_like_their_png_twin_and_give_back_valid_dicom(pg_app, pg_client, pg_stack, pg_url,
                                                                                  sent, tmp_path):
    xray, files, secrets = sent
    answer = pg_client.post("/api/v1/batches", data=multipart(list(files.items())), content_type="multipart/form-data")
    assert answer.status_code == 202
    responses = [answer.get_data()]
    batch = wait_for_batch(pg_client, answer.headers["Location"])
    responses.append(json.dumps(batch).encode())
    jobs = {job["filename"]: pg_client.get(job["url"]).get_json() for job in batch["jobs"]}
    responses += [json.dumps(job).encode() for job in jobs.values()]
    assert batch["counts"]["succeeded"] == 7 and batch["counts"]["failed"] == 4

    assert "modality CT; only projection radiographs" in jobs["ct.dcm"]["error"]
    assert "cannot decode: MPEG2 Main Profile / Main Level" in jobs["mpeg.dcm"]["error"]
    assert "image is 512x512 pixels, but the JPEG stream in the DICOM pixel data declares 20000x20000" in \
        jobs["bomb.dcm"]["error"] and "decompression bomb" in jobs["bomb.dcm"]["error"]
    assert "the deflated DICOM dataset inflates to more than 256 MB" in jobs["deflate-bomb.dcm"]["error"]
    assert jobs["adobe.jpg"]["status"] == "succeeded"
    twin = {f["label"]: f["probability"] for f in jobs["twin.png"]["findings"]}
    dicom_jobs = ("pa-jpeg2000-m1-16bit.dcm", "pa-jpeg-lossless-16bit.dcm", "pa-rle-8bit.dcm", "pa-nested-8bit.dcm",
                  "lateral.dcm")
    for name in dicom_jobs:
        job = jobs[name]
        assert job["status"] == "succeeded", job["error"]
        # Same pixels after the Modality LUT, window and MONOCHROME1 inversion: the same probabilities.
        assert {f["label"]: f["probability"] for f in job["findings"]} == pytest.approx(twin, abs=1e-5)
        assert job["dicom"]["pixel_spacing_mm"] == pytest.approx(0.143)
        shown = pg_client.get(job["image_url"])
        assert shown.mimetype == "image/png" and np.array_equal(decode_image_bytes(shown.data), xray)
        responses += [shown.data, pg_client.get(job["dicom"]["image_url"]).data,
                      pg_client.get(job["dicom"]["report_url"]).data]
    responses.append(pg_client.get(jobs["adobe.jpg"]["image_url"]).data)  # the JPEG as stored
    assert jobs["pa-rle-8bit.dcm"]["dicom"]["frontal"] is True 
    assert not any("frontal" in warning for warning in jobs["pa-rle-8bit.dcm"]["warnings"])
    lateral = jobs["lateral.dcm"]
    assert lateral["dicom"]["view_position"] == "LL" and lateral["dicom"]["frontal"] is False
    assert "Not a frontal view (LL)" in lateral["warnings"][0]
    assert pg_client.get(jobs["twin.png"]["url"] + "/dicom/report").status_code == 404

    job = jobs["pa-jpeg2000-m1-16bit.dcm"]
    stored = pg_client.get(job["dicom"]["image_url"])
    image = pydicom.dcmread(io.BytesIO(stored.data))
    assert stored.mimetype == "application/dicom" and image.PatientIdentityRemoved == "YES"
    report_answer = pg_client.get(job["dicom"]["report_url"])
    report = pydicom.dcmread(io.BytesIO(report_answer.data))
    assert validate(report, tmp_path) == []
    assert report.StudyInstanceUID == image.StudyInstanceUID and report.Modality == "SR"
    items = {item.ConceptNameCodeSequence[0].CodeMeaning: item for item in report.ContentSequence}
    assert items["Algorithm Version"].TextValue == job["model"]["version"]
    for finding in job["findings"]:
        values = items[finding["display_name"]].ContentSequence
        assert float(values[0].MeasuredValueSequence[0].NumericValue) == pytest.approx(finding["probability"], abs=1e-6)
        assert float(values[1].MeasuredValueSequence[0].NumericValue) == pytest.approx(finding["threshold"])
    capture_answer = pg_client.get(job["url"] + "/dicom/heatmaps/Cardiomegaly")
    capture = pydicom.dcmread(io.BytesIO(capture_answer.data))
    assert validate(capture, tmp_path) == []
    assert capture.StudyInstanceUID == image.StudyInstanceUID and capture.pixel_array.shape == (64, 64, 3)
    assert pg_client.get(job["url"] + "/dicom/heatmaps/No%20Finding").status_code == 404
    page = sign_in(pg_app, "alice", create=True).get(f"/jobs/{job['id']}").get_data()
    assert b"findings (SR)</a>" in page and b"view <span id=\"view-position\">PA</span>" in page
    responses += [stored.data, report_answer.data, capture_answer.data, page]
    for kind in ("csv", "json"):
        responses.append(pg_client.get(f"{answer.headers['Location']}/export.{kind}").data)

    # No patient identifier in any answer, any stored byte or any database row.
    engine = create_engine(pg_url)
    with engine.connect() as connection:
        rows = [r[0] for r in connection.execute(text(
            "SELECT row_to_json(j)::text FROM jobs j WHERE batch_id = :b UNION ALL "
            "SELECT row_to_json(f)::text FROM findings f JOIN jobs j ON j.id = f.job_id WHERE j.batch_id = :b UNION ALL "
            "SELECT row_to_json(a)::text FROM audit_events a"), {"b": batch["id"]})]
    engine.dispose()
    stored_files = [p.read_bytes() for p in pg_stack["storage_dir"].rglob("*") if p.is_file()]
    for secret in secrets:
        needle = secret.encode()
        assert not any(needle in blob for blob in responses), f"{secret} in an answer"
        assert not any(needle in blob for blob in stored_files), f"{secret} in storage"
        assert not any(secret in row for row in rows), f"{secret} in the database"


@pytest.mark.parametrize("keep_originals", [False, True])
def test_cut_images_fail_their_job_at_upload_with_the_reason(pg_stack, alice_token, sent, keep_originals):
    """A cut JPEG was analysed ("Consolidation 97.0%"): the decoder had filled the rest with grey. Cut files
    are refused whether the service stores originals or only their pixels."""
    from web import create_app

    app = create_app({**pg_stack, "TESTING": True, "WTF_CSRF_ENABLED": False, "keep_originals": keep_originals})
    client = TokenClient(app.test_client(), alice_token)
    xray, files, _ = sent
    jpeg = real_xray_jpeg()
    cut = {
        "cut-at-6-percent.jpg": jpeg[:int(len(jpeg) * 0.06)],
        "cut-in-half.jpg": jpeg[:len(jpeg) // 2],
        "cut.png": corrupt_png(),
        "jpeg-frame-without-end.dcm": with_frame(make_dicom(xray, "jpeg-baseline", bits=8),
                                                 lambda frame: frame.rstrip(b"\0")[:-2]),
        "j2k-without-end.dcm": with_frame(make_dicom(xray, "jpeg2000", bits=16),
                                          lambda frame: frame.rstrip(b"\0")[:-2]),
    }
    answer = client.post("/api/v1/batches", data=multipart(list(cut.items()) + [("whole.png", files["twin.png"])]),
                         content_type="multipart/form-data")
    assert answer.status_code == 202
    batch = wait_for_batch(client, answer.headers["Location"])
    assert batch["counts"]["succeeded"] == 1 and batch["counts"]["failed"] == len(cut)
    errors = {job["filename"]: job["error"] for job in batch["jobs"]}
    assert errors["cut-at-6-percent.jpg"].startswith("the JPEG file is truncated: its scan data is cut")
    assert errors["cut-in-half.jpg"].startswith("the JPEG file is truncated: its scan data is cut")
    assert errors["cut.png"].startswith("the PNG file is truncated: its 'IDAT' chunk")
    assert errors["jpeg-frame-without-end.dcm"].startswith("the JPEG stream in the DICOM pixel data is truncated")
    assert errors["j2k-without-end.dcm"].startswith(
        "the JPEG 2000 stream in the DICOM pixel data is truncated: it ends at byte")
    assert all(job["status"] == "failed" for job in batch["jobs"] if job["filename"] in cut)
