"""DICOM in: pixels right for every common transfer syntax, refusals with reasons, de-identification;
DICOM out: the SR and Secondary Capture validate. Test files wrap real NIH X-ray pixels (tests/dicom_factory.py)."""
import shutil
import subprocess
import uuid

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from shared import deidentify, dicom_in, dicom_out
from shared.images import ImageError, decode_image, inspect_image
from shared.labels import LABELS
from tests.dicom_factory import (IDENTIFYING_STRINGS, SYNTAXES, grey_from_png, make_dataset, make_dicom,
                                 undecodable_dicom)
from tests.helpers import real_xray_bytes

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


def validate(dataset: pydicom.Dataset, tmp_path) -> list[str]:
    """dciodvfy's errors for the object (dicom3tools; tests/run.sh installs it)."""
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed; tests/run.sh installs it")
    path = tmp_path / f"{uuid.uuid4().hex}.dcm"
    path.write_bytes(dicom_out.to_bytes(dataset))
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def test_the_structured_report_and_heatmap_capture_validate_and_reference_the_image(xray, tmp_path):
    source = dicom_in.read_header(deidentify.deidentified_bytes(make_dicom(xray, "jpeg2000"), KEY, "owner"))
    job_id = uuid.uuid4()
    findings = [dicom_out.Finding(label, i / 20, 0.5, i / 20 >= 0.5) for i, label in enumerate(LABELS)]
    report = dicom_out.structured_report(source, dicom_out.Result(job_id, "tiny", "v1", findings))
    assert validate(report, tmp_path) == []
    reread = pydicom.dcmread(__import__("io").BytesIO(dicom_out.to_bytes(report)))
    assert reread.StudyInstanceUID == source.StudyInstanceUID and reread.Modality == "SR"
    evidence = reread.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert evidence.ReferencedSOPInstanceUID == source.SOPInstanceUID
    values = {item.ConceptNameCodeSequence[0].CodeMeaning: item for item in reread.ContentSequence}
    assert values["Algorithm Name"].TextValue == "tiny" and values["Algorithm Version"].TextValue == "v1"
    cardiomegaly = values["Cardiomegaly"].ContentSequence
    assert float(cardiomegaly[0].MeasuredValueSequence[0].NumericValue) == pytest.approx(0.05)
    assert float(cardiomegaly[1].MeasuredValueSequence[0].NumericValue) == 0.5
    # Made twice, the same objects (a PACS stores them once).
    assert dicom_out.structured_report(source, dicom_out.Result(job_id, "tiny", "v1", findings)).SOPInstanceUID \
        == report.SOPInstanceUID
    capture = dicom_out.heatmap_capture(source, np.dstack([xray] * 3), job_id, "Cardiomegaly", 2)
    assert validate(capture, tmp_path) == []
    assert capture.StudyInstanceUID == source.StudyInstanceUID and capture.Rows == 64 and capture.SamplesPerPixel == 3
