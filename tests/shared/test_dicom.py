"""DICOM in: pixels right for every common transfer syntax, refusals with reasons, de-identification;
DICOM out: the SR and Secondary Capture validate. Test files wrap real NIH X-ray pixels (tests/dicom_factory.py)."""
import io
import json
import re
import shutil
import subprocess
import sys
import uuid
import warnings

import cv2
import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array

from shared.imaging import deidentify, dicom_codes, dicom_in, dicom_maps, dicom_out
from shared.imaging.images import ImageError, decode_image, inspect_image
from shared.model.labels import LABELS
from tests.dicom_factory import (IDENTIFYING_STRINGS, PIXEL_TEXTS, SYNTAXES, deflate_bomb, grey_from_png, make_dataset,
                                 make_dicom, sof_bomb, undecodable_dicom, with_frame, with_pixel_text, conformant_dx)
from tests.helpers import REPO, full_size_xray, real_xray_bytes

KEY = b"k" * 32
LIMITS = (50_000_000, 256 * 2**20)
CASES = [(syntax, bits, m1) for syntax in SYNTAXES for bits in (8, 16) for m1 in (False, True)
         if not (syntax == "jpeg-baseline" and bits == 16)]


@pytest.fixture(scope="module")
def xray() -> np.ndarray:
    return grey_from_png(real_xray_bytes(1)[0][1])


@pytest.mark.parametrize("syntax,bits,monochrome1", CASES)
def test_every_common_transfer_syntax_decodes_to_the_pixels_a_reader_sees(xray, syntax, bits, monochrome1):
    data = make_dicom(xray, syntax, bits=bits, monochrome1=monochrome1)
    stored = deidentify.deidentified_bytes(data, KEY, "owner")
    info = inspect_image(stored, *LIMITS)
    assert info.format == "DICOM" and (info.width, info.height) == (64, 64)
    assert info.dicom.view_position == "PA" and info.dicom.frontal and info.dicom.pixel_spacing_mm == pytest.approx(0.143)
    pixels = decode_image(stored, *LIMITS)
    tolerance = 8 if syntax == "jpeg-baseline" else 0  # lossy at quality 95
    assert np.abs(pixels.astype(int) - xray.astype(int)).max() <= tolerance
    # The service's own decoders do it (the pylibjpeg plugins), not GDCM, a test-only package here.
    assert dicom_in.read_header(stored).file_meta.TransferSyntaxUID in dicom_in.DECODABLE | {
        SYNTAXES["explicit"], SYNTAXES["implicit"], SYNTAXES["deflated"]}


def test_without_a_window_the_values_used_are_stretched_and_monochrome1_still_inverted(xray):
    plain = decode_image(make_dicom(xray, bits=16, window=False), *LIMITS)
    inverted = decode_image(make_dicom(xray, bits=16, window=False, monochrome1=True), *LIMITS)
    low, high = int(xray.min()), int(xray.max())
    stretched = np.round((xray.astype(float) - low) / (high - low) * 255)
    assert np.abs(plain - stretched).max() <= 1 and np.abs(inverted - stretched).max() <= 1


def test_what_is_not_a_single_frame_greyscale_radiograph_is_refused_with_the_reason(xray):
    ct = open(get_testdata_file("CT_small.dcm"), "rb").read()
    with pytest.raises(ImageError, match=r"modality CT; only projection radiographs \(CR or DX\)"):
        inspect_image(ct, *LIMITS)
    with pytest.raises(ImageError, match="modality MR"):
        inspect_image(open(get_testdata_file("MR_small.dcm"), "rb").read(), *LIMITS)
    ds = make_dataset(xray, bits=8)
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    with pytest.raises(ImageError, match="2 frames"):
        inspect_image(_bytes(ds), *LIMITS)
    with pytest.raises(ImageError, match="burned-in annotations"):
        inspect_image(make_dicom(xray, burned_in=True), *LIMITS)
    with pytest.raises(ImageError, match="not readable DICOM"):
        inspect_image(b"\0" * 128 + b"DICM" + b"\xff" * 40, *LIMITS)
    whole = make_dicom(xray, "jpeg2000")
    with pytest.raises(ImageError, match="(could not be decoded|not readable DICOM)"):
        decode_image(whole[: len(whole) // 2], *LIMITS)
    # A syntax nothing here decodes: accepted at upload (the header is fine), failed at decoding, with its name.
    odd = undecodable_dicom(xray)
    inspect_image(odd, *LIMITS)
    with pytest.raises(ImageError, match=r"cannot decode: MPEG2 Main Profile / Main Level \(1.2.840.10008.1.2.4.100\)"):
        decode_image(odd, *LIMITS)


def _bytes(ds) -> bytes:
    import io

    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_deidentification_keeps_pixels_and_geometry_and_nothing_that_names_the_patient(xray):
    study = pydicom.uid.generate_uid()
    first, second = (make_dataset(xray, study_uid=study) for _ in range(2))
    originals = [str(first[k].value) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")]
    clean = [deidentify.deidentified_bytes(_bytes(ds), KEY, "owner-a") for ds in (first, second)]
    for data in clean:
        for secret in IDENTIFYING_STRINGS + originals:
            assert secret.encode() not in data, secret
    a, b = (dicom_in.read_header(data) for data in clean)
    assert a.PatientIdentityRemoved == "YES" and a.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert a.PatientName == "" and a.PatientBirthDate == "" and a.PatientID.startswith("XR-")
    assert not any(element.tag.is_private for element in a) and "RequestAttributesSequence" not in a
    assert a.PixelData == first.PixelData and a.ImagerPixelSpacing == [0.143, 0.143] and a.ViewPosition == "PA"
    # One study stays one study (and one patient one patient); another owner gets other UIDs.
    assert a.StudyInstanceUID == b.StudyInstanceUID and a.SOPInstanceUID != b.SOPInstanceUID and a.PatientID == b.PatientID
    other = dicom_in.read_header(deidentify.deidentified_bytes(_bytes(first), KEY, "owner-b"))
    assert other.StudyInstanceUID != a.StudyInstanceUID
    assert a.StudyInstanceUID.startswith("2.25.") and pydicom.uid.UID(a.StudyInstanceUID).is_valid



def test_the_body_part_examined_survives_deidentification_for_the_input_gate(xray):
    ds = make_dataset(xray, view="LL")
    ds.BodyPartExamined = "Hand "
    info = inspect_image(deidentify.deidentified_bytes(_bytes(ds), KEY, "owner"), *LIMITS)
    assert (info.dicom.body_part, info.dicom.view_position, info.dicom.frontal) == ("HAND", "LL", False)
    assert inspect_image(make_dicom(xray), *LIMITS).dicom.body_part is None

def test_a_conformant_dx_stays_conformant_once_deidentified(xray, tmp_path):
    """dciodvfy passes the file sent; so it must pass the file stored: every Type 2 attribute of the IOD there,
    emptied where the profile says so (Acquisition Context), kept where it names nobody (Positioner Type)."""
    sent = conformant_dx(xray)
    assert validate(dicom_in.read_header(sent), tmp_path) == []
    stored = dicom_in.read_header(deidentify.deidentified_bytes(sent, KEY, "owner"))
    assert validate(stored, tmp_path) == []
    assert stored.PositionerType == "NONE" and stored.AcquisitionContextSequence == []
    assert stored.PatientSex == "" and stored.Manufacturer == "ACME" and "KVP" not in stored
    for secret in IDENTIFYING_STRINGS:
        assert secret.encode() not in dicom_out.to_bytes(stored), secret


def validate(dataset: pydicom.Dataset, tmp_path) -> list[str]:
    """dciodvfy's errors for the object (dicom3tools; tests/run.sh installs it)."""
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed; tests/run.sh installs it")
    path = tmp_path / f"{uuid.uuid4().hex}.dcm"
    path.write_bytes(dicom_out.to_bytes(dataset))
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def _result(job_id, maps_by_label=None, input_check=None):
    """Every label, probabilities 0, 0.05, ... against 0.5: the last five at or above it (No Finding among them)."""
    findings = [dicom_out.Finding(label, i / 20, 0.5, i / 20 >= 0.5, i % 3 != 0) for i, label in enumerate(LABELS)]
    return dicom_out.Result(job_id, "tiny", "v1", findings, maps_by_label, input_check)


def _maps(seed: int = 0) -> dict:
    """Maps shaped like the worker's: smooth blobs at feature resolution, 8-bit."""
    rng = np.random.default_rng(seed)
    grid = np.mgrid[0:10, 0:10].astype(np.float32)
    out = {}
    for label in LABELS:
        y, x = rng.uniform(2, 8, 2)
        out[label] = np.rint(255 * np.exp(-((grid[0] - y) ** 2 + (grid[1] - x) ** 2) / 8)).astype(np.uint8)
    return out


def test_the_measurement_report_reads_back_with_highdicom_each_finding_coded_with_its_probability(xray, tmp_path):
    source = dicom_in.read_header(deidentify.deidentified_bytes(make_dicom(xray, "jpeg2000"), KEY, "owner"))
    job_id = uuid.uuid4()
    result = _result(job_id, _maps(), {"result": "ok", "reason": "frontal chest", "score": 0.93, "version": "g1"})
    report = dicom_out.structured_report(source, result)
    assert validate(report, tmp_path) == []
    path = tmp_path / "sr.dcm"
    path.write_bytes(dicom_out.to_bytes(report))
    reread = hd.sr.srread(path)
    assert reread.StudyInstanceUID == source.StudyInstanceUID and reread.Modality == "SR"
    assert reread.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    groups = reread.content.get_image_measurement_groups()
    shown = dicom_out.shown_labels(result)
    assert shown == ["Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax"]  # No Finding is never a map
    assert len(groups) == len(LABELS)
    for group, finding in zip(groups, result.findings):
        label = dicom_codes.label_of(group.finding_type)
        assert label == finding.label
        (evaluation,) = group.get_qualitative_evaluations()
        assert evaluation.name == group.finding_type
        assert evaluation.value == (dicom_codes.PRESENT if finding.positive else dicom_codes.ABSENT)
        (probability,) = group.get_measurements()
        assert probability.name == dicom_codes.PROBABILITY and probability.value == pytest.approx(finding.probability)
        assert probability.unit == dicom_codes.UNITLESS
        assert group.source_images[0].referenced_sop_instance_uid == source.SOPInstanceUID
        references = probability.referenced_images
        if label in shown:  # the heatmap: the finding's frame of the Parametric Map
            (reference,) = references
            assert reference.referenced_sop_instance_uid == dicom_out.derived_uid(job_id, "pm")
            assert reference.ReferencedSOPSequence[0].ReferencedFrameNumber == shown.index(label) + 1
        else:
            assert references == []
        names = {}  # the Algorithm Identification (TID 4019) of the group
        for item in group[0].ContentSequence:
            if item.ValueType == "TEXT":
                names.setdefault(item.ConceptNameCodeSequence[0].CodeMeaning, []).append(item.TextValue)
        assert (names["Algorithm Name"], names["Algorithm Version"]) == (["tiny"], ["v1"])
        assert names["Algorithm Parameters"][0] == "decision threshold 0.500000"
    cardiomegaly = groups[LABELS.index("Cardiomegaly")]
    assert (cardiomegaly.finding_type.value, cardiomegaly.finding_type.scheme_designator) == ("8186001", "SCT")
    comments = [item.TextValue for item in reread.ContentSequence
                if item.ConceptNameCodeSequence[0].CodeMeaning == "Comment"]
    assert comments[0] == dicom_out.DISCLAIMER and comments[1].startswith("Input check: ok: frontal chest")
    # Made twice, the same object (a PACS stores it once).
    assert dicom_out.structured_report(source, result).SOPInstanceUID == report.SOPInstanceUID
    # An image the input gate turned away: no finding reported, the reason is.
    gated = dicom_out.structured_report(source, _result(job_id, _maps(), {"result": "not_chest", "reason": "a hand",
                                                                          "score": 0.1, "version": "g1"}))
    assert validate(gated, tmp_path) == []
    gated_path = tmp_path / "gated.dcm"
    gated_path.write_bytes(dicom_out.to_bytes(gated))
    gated_back = hd.sr.srread(gated_path)
    (only,) = gated_back.content.get_image_measurement_groups()
    assert only.finding_type is None and only.get_measurements() == [] and only.get_qualitative_evaluations() == []
    assert any("not read as a chest X-ray" in item.TextValue for item in gated_back.ContentSequence
               if item.ValueType == "TEXT")


def test_the_parametric_map_holds_every_shown_heatmap_as_a_frame_a_viewer_can_window(xray, tmp_path):
    source = dicom_in.read_header(deidentify.deidentified_bytes(make_dicom(xray, "jpeg2000"), KEY, "owner"))
    result = _result(uuid.uuid4(), _maps(1))
    parametric = dicom_maps.parametric_map(source, result)
    assert validate(parametric, tmp_path) == []
    reread = pydicom.dcmread(io.BytesIO(dicom_out.to_bytes(parametric)))
    assert reread.SOPClassUID == pydicom.uid.ParametricMapStorage and reread.StudyInstanceUID == source.StudyInstanceUID
    assert reread.file_meta.TransferSyntaxUID == pydicom.uid.JPEG2000Lossless
    shown = dicom_out.shown_labels(result)
    assert int(reread.NumberOfFrames) == len(shown) and (reread.Rows, reread.Columns) == (source.Rows, source.Columns)
    pixels = pixel_array(reread, decoding_plugin="pylibjpeg")
    for frame, label, item in zip(pixels, shown, reread.PerFrameFunctionalGroupsSequence):
        mapping = item.RealWorldValueMappingSequence[0]
        concept = mapping.QuantityDefinitionSequence[0].ConceptCodeSequence[0]
        assert dicom_codes.label_of(hd.sr.CodedConcept(concept.CodeValue, concept.CodingSchemeDesignator,
                                                       concept.CodeMeaning)) == label
        assert mapping.RealWorldValueSlope == pytest.approx(1 / 255) and mapping.RealWorldValueLastValueMapped == 255
        source_image = item.DerivationImageSequence[0].SourceImageSequence[0]
        assert source_image.ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert source_image.SpatialLocationsPreserved == "YES"
        # Every level kept (lossless), the bilinear resize the viewer uses.
        assert np.array_equal(frame, cv2.resize(result.maps[label], (64, 64), interpolation=cv2.INTER_LINEAR))
    assert reread.SOPInstanceUID == dicom_out.derived_uid(result.job_id, "pm")
    assert dicom_maps.parametric_map(source, _result(uuid.uuid4())) is None  # no maps, no object


def test_the_heatmap_capture_is_a_valid_jpeg_in_the_image_study(xray, tmp_path):
    source = dicom_in.read_header(deidentify.deidentified_bytes(make_dicom(xray, "jpeg2000"), KEY, "owner"))
    capture = dicom_out.heatmap_capture(source, np.dstack([xray] * 3), uuid.uuid4(), "Cardiomegaly", 2)
    assert validate(capture, tmp_path) == []
    reread = pydicom.dcmread(io.BytesIO(dicom_out.to_bytes(capture)))
    assert reread.file_meta.TransferSyntaxUID == pydicom.uid.JPEGBaseline8Bit
    assert reread.StudyInstanceUID == source.StudyInstanceUID and reread.Rows == 64 and reread.SamplesPerPixel == 3


def walk(dataset):
    """Every element of the dataset, those inside sequence items at any depth included."""
    for element in dataset:
        yield element
        if element.VR == "SQ":
            for item in element.value:
                yield from walk(item)


def test_identifiers_nested_in_the_kept_sequences_stay_behind_at_every_depth(xray):
    sent = make_dicom(xray, bits=8, nested=True)
    assert all(secret.encode() in sent for secret in ("DOE^JANE", "PRIVATE-NOTE-Jane", "NESTED-NOTE-Jane"))
    stored = deidentify.deidentified_bytes(sent, KEY, "owner")
    for secret in IDENTIFYING_STRINGS + ["Chest of", "identity,"]:
        assert secret.encode() not in stored, secret
    ds = dicom_in.read_header(stored)
    nested = [element for sequence in ds if sequence.VR == "SQ" for item in sequence.value for element in walk(item)]
    assert nested and not [e for e in nested if e.tag.is_private or e.keyword in ("PatientName", "TextValue")]
    assert not any(element.tag.is_private for element in ds)
    # Codes stay codes, meanings come from the table (or the code itself); what is no code goes.
    (chest,) = ds.AnatomicRegionSequence
    assert (chest.CodeValue, chest.CodingSchemeDesignator) == ("51185008", "SCT")
    assert chest.CodeMeaning == "Thoracic structure"
    assert [(m.CodeValue, m.CodeMeaning) for m in chest.AnatomicRegionModifierSequence] == [
        ("7771000", "Left"), ("123456789", "SCT code 123456789")]
    assert "AnatomicRegionModifierSequence" not in chest.AnatomicRegionModifierSequence[0]
    modality, voi = ds.ModalityLUTSequence[0], ds.VOILUTSequence[0]
    assert set(modality.keys()) == {0x00283002, 0x00283004, 0x00283006} and modality.ModalityLUTType == "US"
    assert set(voi.keys()) == {0x00283002, 0x00283006} and list(voi.LUTData) == list(range(256))
    assert np.array_equal(decode_image(stored, *LIMITS), xray)  # identity LUTs: the same pixels


def hidden_texts(data: bytes) -> list[str]:
    """PIXEL_TEXTS in the file, or in its pixel data once inflated (Deflated Explicit VR)."""
    readable = data + dicom_in.read_header(data).PixelData
    return [text for text in PIXEL_TEXTS if text.encode() in readable]


def stored_pixels(data: bytes) -> np.ndarray:
    ds = dicom_in.read_header(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "excess padding" in the file sent with text after its pixels
        if ds.file_meta.TransferSyntaxUID.is_encapsulated:
            return pixel_array(ds, decoding_plugin="pylibjpeg")
        return ds.pixel_array


@pytest.fixture(scope="module")
def full_xray() -> np.ndarray:
    return full_size_xray()


@pytest.mark.parametrize("syntax,jp2", [(syntax, False) for syntax in SYNTAXES] + [("jpeg2000", True)])
def test_text_inside_the_pixel_data_goes_and_the_pixels_stay_bit_for_bit(full_xray, syntax, jp2):
    original = make_dicom(full_xray, syntax, bits=8 if syntax == "jpeg-baseline" else 16)
    sent = with_pixel_text(original, syntax, jp2=jp2)
    stored = deidentify.deidentified_bytes(sent, KEY, "owner")
    assert hidden_texts(sent) or syntax == "rle"
    assert hidden_texts(stored) == []
    assert np.array_equal(stored_pixels(stored), stored_pixels(original))
    assert np.array_equal(stored_pixels(stored), stored_pixels(sent))
    ds = dicom_in.read_header(stored)
    if syntax.startswith("jpeg"):
        frame = dicom_in.single_frame(ds).rstrip(b"\0")  # fragments are padded to even lengths
        assert frame.endswith(b"\xff\xd9")  # nothing after the end of the image
        assert syntax == "jpeg2000" or b"\xff\xee\x00\x0eAdobe" in frame  # APP14: the 12 bytes, nothing else
        assert frame.startswith(b"\xff\x4f\xff\x51" if syntax == "jpeg2000" else b"\xff\xd8")


@pytest.mark.parametrize("syntax", ["jpeg-baseline", "jpeg-lossless", "jpeg-ls", "jpeg2000"])
def test_a_frame_declaring_another_size_than_the_header_is_refused_before_anything_decodes_it(xray, syntax):
    def resized(frame: bytes) -> bytes:
        if syntax == "jpeg2000":  # SIZ: Xsiz, Ysiz right after Lsiz and Rsiz
            return frame[:8] + (20_000).to_bytes(4, "big") * 2 + frame[16:]
        offset = 2
        while frame[offset + 1] not in (0xC0, 0xC1, 0xC3, 0xF7):
            offset += 2 + int.from_bytes(frame[offset + 2:offset + 4], "big")
        return frame[:offset + 5] + (20_000).to_bytes(2, "big") * 2 + frame[offset + 9:]

    bomb = with_frame(make_dicom(xray, syntax, bits=8 if syntax == "jpeg-baseline" else 16), resized)
    for check in (inspect_image, decode_image):
        with pytest.raises(ImageError, match=r"the image is 64x64 pixels, but the JPEG (2000 )?stream in the DICOM "
                                             r"pixel data declares 20000x20000"):
            check(bomb, *LIMITS)
    with pytest.raises(ImageError, match=r"64x64 pixels, but .* declares 64x65"):  # a row more is a mismatch too
        inspect_image(with_frame(make_dicom(xray, "jpeg-baseline", bits=8), lambda f: f.replace(
            b"\xff\xc0\x00\x0b\x08\x00\x40", b"\xff\xc0\x00\x0b\x08\x00\x41", 1)), *LIMITS)
    with pytest.raises(ImageError, match="leaves its height to a later DNL marker"):
        inspect_image(with_frame(make_dicom(xray, "jpeg-baseline", bits=8), lambda f: f.replace(
            b"\xff\xc0\x00\x0b\x08\x00\x40", b"\xff\xc0\x00\x0b\x08\x00\x00", 1)), *LIMITS)


BOMB_PROBE = """
import json, resource, sys
from shared.imaging.images import ImageError, decode_image, inspect_image
data = sys.stdin.buffer.read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
answers = {}
for name, check in (("upload", inspect_image), ("worker", decode_image)):
    try:
        check(data, 50_000_000, 256 * 2**20)
        answers[name] = "accepted"
    except ImageError as exc:
        answers[name] = str(exc)
answers["growth_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps(answers))
"""


@pytest.mark.parametrize("kind", ["jpeg frame", "deflate"])
def test_decompression_bombs_are_refused_at_upload_and_in_the_worker_within_the_memory_bound(xray, kind):
    """A fresh process per bomb, so that its peak memory is the bomb's alone. Before the fix the JPEG one
    grew it by 1.8 GB (decoded 20000x20000, then failed) and the deflate one by 600 MB (accepted)."""
    if kind == "jpeg frame":  # a real 512x512 JPEG in a 512x512 header, its frame header saying 20000x20000
        bomb = sof_bomb(cv2.resize(xray, (512, 512), interpolation=cv2.INTER_CUBIC))
        reason = "the image is 512x512 pixels, but .* declares 20000x20000; .* decompression bomb"
    else:
        bomb, reason = deflate_bomb(xray), "inflates to more than 256 MB"
    assert len(bomb) < 2 * 2**20
    run = subprocess.run([sys.executable, "-c", BOMB_PROBE], input=bomb, capture_output=True, cwd=REPO, timeout=300,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    answers = json.loads(run.stdout)
    for name in ("upload", "worker"):
        assert re.search(reason, answers[name]), (name, answers[name])
    assert answers["growth_kib"] < 256 * 1024, f"peak memory grew by {answers['growth_kib'] / 1024:,.0f} MiB"


@pytest.mark.parametrize("syntax", ["jpeg-baseline", "jpeg-ls", "jpeg2000"])
def test_a_compressed_frame_cut_short_is_refused_at_upload_and_at_decoding(xray, syntax):
    end = "end-of-codestream" if syntax == "jpeg2000" else "end-of-image"
    whole = make_dicom(xray, syntax, bits=8)
    for cut in (lambda frame: frame.rstrip(b"\0")[:-2], lambda frame: frame[:len(frame) // 2]):
        damaged = with_frame(whole, cut)
        for check in (inspect_image, decode_image):
            with pytest.raises(ImageError, match=f"(truncated|cut).*{end}|runs past the end"):
                check(damaged, *LIMITS)
