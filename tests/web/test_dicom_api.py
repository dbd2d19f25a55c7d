"""DICOM through the API with real Postgres, Redis and a worker: every common syntax analysed as its PNG
twin is, refusals with reasons (decompression bombs and cut files included), the view flagged, the SR and
heatmap captures downloadable and valid, and no patient identifier anywhere in what is stored or answered:
not in nested sequences, not in text hidden inside compressed pixel data."""
import base64
import io
import json
import uuid

import cv2
import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from sqlalchemy import create_engine, text

from shared.imaging import dicom_codes, dicom_maps, dicom_out, maps
from shared.model.labels import LABELS
from tests.dicom_factory import (IDENTIFYING_STRINGS, PIXEL_TEXTS, conformant_dx, deflate_bomb, grey_from_png,
                                 jpeg_with_text, make_dicom, sof_bomb, undecodable_dicom, with_frame, with_pixel_text)
from tests.helpers import (TokenClient, corrupt_png, decode_image_bytes, full_size_xray, multipart, real_xray_bytes,
                           real_xray_jpeg)
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
        if name.endswith(".dcm"):
            secrets.append(name)  # DICOM file names often spell the patient: never kept
    return xray, files, secrets


def test_dicom_uploads_are_analysed_like_their_png_twin_and_give_back_valid_dicom(pg_app, pg_client, pg_stack, pg_url,
                                                                                  sent, tmp_path):
    xray, files, secrets = sent
    answer = pg_client.post("/api/v1/batches", data=multipart(list(files.items())), content_type="multipart/form-data")
    assert answer.status_code == 202
    responses = [answer.get_data()]
    batch = wait_for_batch(pg_client, answer.headers["Location"])
    responses.append(json.dumps(batch).encode())
    names = list(files)  # DICOM uploads keep no file name: jobs are matched by their position in the upload
    jobs = {names[job["position"]]: pg_client.get(job["url"]).get_json() for job in batch["jobs"]}
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
    (tmp_path / "sr.dcm").write_bytes(report_answer.data)
    groups = hd.sr.srread(tmp_path / "sr.dcm").content.get_image_measurement_groups()
    read_back = {dicom_codes.label_of(g.finding_type): g.get_measurements()[0].value for g in groups}
    assert read_back == pytest.approx({f["label"]: f["probability"] for f in job["findings"]}, abs=1e-6)
    map_answer = pg_client.get(job["dicom"]["map_url"])
    parametric = pydicom.dcmread(io.BytesIO(map_answer.data))
    assert validate(parametric, tmp_path) == []
    shown = [f["label"] for f in job["shown_findings"] if f["label"] != "No Finding"]
    assert parametric.StudyInstanceUID == image.StudyInstanceUID and int(parametric.NumberOfFrames) == len(shown)
    capture_answer = pg_client.get(job["url"] + "/dicom/heatmaps/Cardiomegaly")
    capture = pydicom.dcmread(io.BytesIO(capture_answer.data))
    assert validate(capture, tmp_path) == []
    assert capture.StudyInstanceUID == image.StudyInstanceUID and capture.Rows == 64 and capture.SamplesPerPixel == 3
    # Named from the de-identified UIDs, never as sent; the other uploads keep their names.
    assert job["filename"] == "-".join(image[k].value[-8:] for k in UID_KEYWORDS) + ".dcm"
    assert jobs["ct.dcm"]["filename"] == "DICOM file" and jobs["twin.png"]["filename"] == "twin.png"
    assert pg_client.get(job["url"] + "/dicom/heatmaps/No%20Finding").status_code == 404
    page = sign_in(pg_app, "alice", create=True).get(f"/jobs/{job['id']}").get_data()
    assert b"findings (SR)</a>" in page and b"view <span id=\"view-position\">PA</span>" in page
    responses += [stored.data, report_answer.data, map_answer.data, capture_answer.data, page]
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
    names = list(cut) + ["whole.png"]
    errors = {names[job["position"]]: job["error"] for job in batch["jobs"]}
    assert errors["cut-at-6-percent.jpg"].startswith("the JPEG file is truncated: its scan data is cut")
    assert errors["cut-in-half.jpg"].startswith("the JPEG file is truncated: its scan data is cut")
    assert errors["cut.png"].startswith("the PNG file is truncated: its 'IDAT' chunk")
    assert errors["jpeg-frame-without-end.dcm"].startswith("the JPEG stream in the DICOM pixel data is truncated")
    assert errors["j2k-without-end.dcm"].startswith(
        "the JPEG 2000 stream in the DICOM pixel data is truncated: it ends at byte")
    assert all(job["status"] == "failed" for job in batch["jobs"] if names[job["position"]] in cut)


def test_result_objects_per_xray_shrink_to_a_tenth_with_real_maps(pg_client, tmp_path):
    """Bytes of the DICOM results a PACS receives per X-ray, today's against before: before, an uncompressed
    RGB Secondary Capture per shown finding (3.1 MB each at 1024 px); now one Parametric Map frame per shown
    finding (J2K lossless), and a JPEG capture only where a site asks for them. Real maps: the worker's, of a
    full-size NIH X-ray sent as a conformant DX; every finding counted as shown, so each label's map is."""
    xray = full_size_xray()
    answer = pg_client.post("/api/v1/batches", data=multipart([("full.dcm", conformant_dx(xray))]),
                            content_type="multipart/form-data")
    batch = wait_for_batch(pg_client, answer.headers["Location"])
    job = pg_client.get(batch["jobs"][0]["url"]).get_json()
    assert job["status"] == "succeeded", job["error"]
    stored = pydicom.dcmread(io.BytesIO(pg_client.get(job["dicom"]["image_url"]).data))
    body = pg_client.get(job["url"] + "/maps").get_json()
    shape = (int(body["height"]), int(body["width"]))
    real_maps = {label: np.frombuffer(base64.b64decode(data), np.uint8).reshape(shape)
                 for label, data in body["maps"].items()}
    labels = [label for label in LABELS if label != "No Finding"]
    result = dicom_out.Result(uuid.UUID(job["id"]), "tiny", "v1",
                              [dicom_out.Finding(label, 0.9, 0.5, True) for label in labels], real_maps)
    grey = maps.base_image(xray)
    before = [hd.sc.SCImage.from_ref_dataset(  # the capture as main made it: RGB, uncompressed
        ref_dataset=stored, pixel_array=maps.overlay_rgb(grey, real_maps[label]), photometric_interpretation="RGB",
        bits_allocated=8, coordinate_system="PATIENT", series_instance_uid=hd.UID(), series_number=1,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="x", patient_orientation=("L", "F"))
        for label in labels]
    report = len(dicom_out.to_bytes(dicom_out.structured_report(stored, result)))
    parametric = dicom_maps.parametric_map(stored, result)
    assert validate(parametric, tmp_path) == [] and int(parametric.NumberOfFrames) == len(labels)
    before_bytes = sum(len(dicom_out.to_bytes(capture)) for capture in before) / len(labels)
    map_bytes = len(dicom_out.to_bytes(parametric)) / len(labels)
    jpeg_bytes = sum(len(dicom_out.to_bytes(capture)) for capture in dicom_out.captures(stored, grey, result, labels)) \
        / len(labels)
    print(f"result bytes per shown finding, 1024x1024 X-ray: before {before_bytes:,.0f} (RGB capture); now "
          f"{map_bytes:,.0f} (Parametric Map frame, {map_bytes / before_bytes:.1%}), optional JPEG capture "
          f"{jpeg_bytes:,.0f} ({jpeg_bytes / before_bytes:.1%}); the SR {report:,} per X-ray")
    assert before_bytes > 3_000_000
    assert map_bytes <= 0.10 * before_bytes  # the target: results at most a tenth of before
    assert map_bytes + jpeg_bytes <= 0.20 * before_bytes  # and with captures on, still a fifth


def test_without_file_names_no_upload_keeps_its_name_anywhere(pg_stack, alice_token, sent):
    """XRAY_KEEP_FILENAMES=0: a PNG named after a patient is named by its hash in the job and the exports (the
    PDFs print the same name); the DICOM upload beside it is named from its de-identified UIDs as always."""
    from web import create_app

    app = create_app({**pg_stack, "TESTING": True, "WTF_CSRF_ENABLED": False, "keep_filenames": False})
    client = TokenClient(app.test_client(), alice_token)
    xray, files, _ = sent
    answer = client.post("/api/v1/batches", data=multipart([("QUIMBY_ZELDA_ZQ1.png", files["twin.png"]),
                                                            ("QUIMBY_ZELDA_ZQ2.dcm", files["pa-rle-8bit.dcm"])]),
                         content_type="multipart/form-data")
    assert answer.status_code == 202
    batch = wait_for_batch(client, answer.headers["Location"])
    png, dicom = sorted(batch["jobs"], key=lambda job: job["position"])
    assert png["filename"] == "upload-" + __import__("hashlib").sha256(files["twin.png"]).hexdigest()[:12]
    assert dicom["filename"].endswith(".dcm") and dicom["filename"].count("-") == 2
    seen = [answer.get_data(), json.dumps(batch).encode()] + [
        client.get(f"{answer.headers['Location']}/export.{kind}").data for kind in ("csv", "json")]
    assert not [blob for blob in seen if b"QUIMBY" in blob or b"ZELDA" in blob]
