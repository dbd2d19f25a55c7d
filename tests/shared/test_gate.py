"""The input gate as the service serves it: rules with reasons a person can act on, the committed learned
gate on real X-rays and on what must be refused, and gate.json that belongs to its artifact."""
import hashlib
import json
import shutil
import warnings

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut

from shared.imaging.images import ImageError, decode_image_and_colour, inspect_image
from shared.model.gate import FEATURE_NAMES, GATE_FILE, RESULTS, Gate, GateError, InputCheck, Seen, dumps, features
from tests.dicom_factory import grey_from_png, make_dataset, make_dicom
from tests.helpers import REPO, SHARED_DATA, full_size_xray, png_bytes, real_xray_bytes

LIMIT = 50_000_000
ARTIFACT = REPO / "models" / "starter"


@pytest.fixture(scope="module")
def gate() -> Gate:
    return Gate.load(ARTIFACT)


def seen(data: bytes) -> Seen:
    """What the worker hands the gate for an upload."""
    info = inspect_image(data, LIMIT)
    grey, colour = decode_image_and_colour(data, LIMIT)
    facts = info.dicom
    return Seen(grey, colour, info.width, info.height, facts.view_position if facts else None,
                facts.body_part if facts else None)


def jpeg(pixels: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", pixels)
    assert ok
    return data.tobytes()


def test_an_8_by_8_image_is_not_a_radiograph_and_the_reason_says_its_size(gate):
    check = gate.check(seen(png_bytes(np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8))))
    assert (check.result, check.ok, check.score) == ("not_a_radiograph", False, 0.0)
    assert "only 8×8 pixels" in check.reason and "at least 32" in check.reason


def test_a_colour_noise_jpeg_is_refused_as_a_colour_image(gate):
    check = gate.check(seen(jpeg(np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8))))
    assert check.result == "not_a_radiograph" and "colour image" in check.reason and "greyscale" in check.reason


def test_a_flat_image_is_refused_for_having_no_contrast(gate):
    flat = np.clip(np.random.default_rng(2).normal(120, 0.8, (600, 500)), 0, 255).astype(np.uint8)
    check = gate.check(seen(png_bytes(flat)))
    assert check.result == "not_a_radiograph" and "blank or flat" in check.reason


def test_the_dicom_header_refuses_a_lateral_view_and_another_body_part():
    xray = grey_from_png(real_xray_bytes(1)[0][1])
    gate = Gate.load(ARTIFACT)
    lateral = gate.check(seen(make_dicom(xray, view="LL")))
    assert lateral.result == "not_frontal" and "lateral view (LL)" in lateral.reason and "PA or AP" in lateral.reason
    hand = make_dataset(xray)
    hand.BodyPartExamined = "HAND"
    data = pydicom.filebase.DicomBytesIO()
    hand.save_as(data, enforce_file_format=True)
    check = gate.check(seen(data.getvalue()))
    assert check.result == "not_a_chest" and "body part examined is HAND" in check.reason
    for view, part in (("PA", "CHEST"), ("AP", "Thorax"), ("RLD", ""), (None, "UNKNOWN")):  # frontal, or vague
        assert gate.check(Seen(xray, 0.0, 64, 64, view, part)).result == "ok", (view, part)


def _ct_slice_png() -> bytes:
    """pydicom's CT slice as an export tool writes it: modality LUT, stretched to 8 bits."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        values = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    low, high = np.percentile(values, (0.5, 99.5))
    return png_bytes(np.round(np.clip((values - low) / (high - low), 0, 1) * 255).astype(np.uint8))


def test_a_ct_slice_is_refused_as_not_a_chest_and_as_dicom_never_reaches_the_gate(gate):
    check = gate.check(seen(_ct_slice_png()))
    assert check.result == "not_a_chest" and "CT or MR slice" in check.reason and check.score < 0.5
    with pytest.raises(ImageError, match="modality CT"):
        inspect_image(open(get_testdata_file("CT_small.dcm"), "rb").read(), LIMIT)


def test_inverted_and_rotated_xrays_are_refused_and_named_as_such(gate):
    """On ten full-resolution X-rays (never fitted on), inverted or turned: nearly all are refused with the reason
    that names what is wrong (held out, about 1 in 40 turned X-rays passes)."""
    results = {"inverted": [], "rotated": []}
    for index in range(10):
        xray = full_size_xray(index)  # skips without the shared data
        results["inverted"].append(gate.check(seen(png_bytes(255 - xray))))
        for turned in (np.rot90(xray), np.rot90(xray, -1), xray[::-1, ::-1]):
            results["rotated"].append(gate.check(seen(png_bytes(np.ascontiguousarray(turned)))))
    assert sum(check.ok for checks in results.values() for check in checks) <= 1
    inverted = [check for check in results["inverted"] if check.result == "inverted"]
    rotated = [check for check in results["rotated"] if check.result == "rotated"]
    assert len(inverted) >= 9 and all("inverted" in check.reason for check in inverted)
    assert len(rotated) >= 27 and all("upright" in check.reason for check in rotated)


def test_real_nih_xrays_pass_with_a_score_above_one_half(gate):
    for name, data in real_xray_bytes(4):  # 64-px RGB and RGBA PNGs
        check = gate.check(seen(data))
        assert check.ok and check.score >= 0.5 and "frontal chest radiograph" in check.reason, (name, check)
    paths = sorted((SHARED_DATA / "nih-fullres-sample" / "images").glob("*.png"))
    if not paths:
        pytest.skip(f"no full-resolution NIH sample under {SHARED_DATA}: only the 4 fixtures were checked")
    refused = [(p.name, c.result) for p in paths if not (c := gate.check(seen(p.read_bytes()))).ok]
    assert len(paths) == 57 and len(refused) <= 1, refused  # the target is 1%; one of 57 is 1.8%


def test_the_committed_gate_loads_and_its_version_is_its_files_hash(gate):
    text = (ARTIFACT / GATE_FILE).read_bytes()
    assert gate.version == "gate-" + hashlib.sha256(text).hexdigest()[:16]
    manifest = json.loads((ARTIFACT / "manifest.json").read_text())
    assert manifest["input_gate"]["version"] == gate.version and manifest["version"].startswith("sha256-")
    assert dumps(json.loads(text)) == text  # writing it again gives the same bytes, so the same version
    assert Gate.from_dict(json.loads(text)).version == gate.version == Gate.load(ARTIFACT).version
    assert gate.learned is not None and len(features(np.zeros((64, 64), np.uint8))) == len(FEATURE_NAMES)


def test_a_gate_that_does_not_belong_to_its_artifact_is_refused(tmp_path):
    target = tmp_path / "artifact"
    target.mkdir()
    for name in ("manifest.json", GATE_FILE):
        shutil.copy(ARTIFACT / name, target / name)
    data = json.loads((target / GATE_FILE).read_text())
    data["thresholds"]["max_distance"] *= 3  # a looser gate swapped in
    (target / GATE_FILE).write_bytes(dumps(data))
    with pytest.raises(GateError, match="does not belong to this artifact"):
        Gate.load(target)
    (target / GATE_FILE).unlink()
    with pytest.raises(GateError, match="gate.json is missing"):
        Gate.load(target)
    manifest = json.loads((target / "manifest.json").read_text())
    del manifest["input_gate"]
    (target / "manifest.json").write_text(json.dumps(manifest))
    rules_only = Gate.load(target)  # an artifact that never had a gate: the rules alone, and says so
    check = rules_only.check(Seen(grey_from_png(real_xray_bytes(1)[0][1]), 0.0, 64, 64))
    assert rules_only.version == check.version == "rules" and check.ok and "no learned gate" in check.reason
    data["feature_names"] = data["feature_names"][::-1]
    with pytest.raises(GateError, match="other image features"):
        Gate.from_dict(data)


def test_a_check_is_small_json_with_one_of_the_results():
    check = InputCheck("rotated", 0.12, "it looks like a chest X-ray turned on its side", "gate-0123456789abcdef")
    assert check.as_json() == {"result": "rotated", "score": 0.12, "reason": check.reason,
                               "version": "gate-0123456789abcdef"}
    assert not check.ok and check.result in RESULTS and json.dumps(check.as_json())
