"""Results as DICOM, for the systems radiology already runs: a Comprehensive Structured Report with the 15
probabilities and thresholds, and a Secondary Capture of each shown finding's heatmap over the image.

Both are built with highdicom from the analysed image's own dataset, so they land in its study (for the
service's downloads that is the de-identified study; for the PACS bridge the PACS's study). Their UIDs are
derived from the job id (UUID-derived UIDs, PS3.5 B.2), so making them twice yields the same objects and
storing them twice into a PACS changes nothing.

Findings are coded in a local coding scheme (``99NIHCXR``, the NIH ChestX-ray14 label set); model name
and version use DCM's Algorithm Name (111001) and Algorithm Version (111003).
"""
from __future__ import annotations

import copy
import dataclasses
import io
import uuid

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from shared.db.models import Job
from shared.imaging import maps
from shared.model.labels import LABELS, display_name
from shared.model.manifest import label_quality

MANUFACTURER = "xray-service (research and education only, not for diagnosis)"
SCHEME = "99NIHCXR"
SR_SERIES_NUMBER, SC_SERIES_NUMBER = 9901, 9902
UNITLESS = hd.sr.CodedConcept("1", "UCUM", "no units")
PROBABILITY = hd.sr.CodedConcept("PROB", SCHEME, "Model probability")
THRESHOLD = hd.sr.CodedConcept("THRESH", SCHEME, "Decision threshold")
ABOVE = hd.sr.CodedConcept("ABOVE", SCHEME, "Probability at or above threshold")
RELIABLE = hd.sr.CodedConcept("RELIABLE", SCHEME, "Reliable: AUROC interval above 0.5")
INPUT_CHECK = hd.sr.CodedConcept("INPUTCHK", SCHEME, "Input check: frontal chest radiograph")
YES, NO = hd.sr.CodedConcept("373066001", "SCT", "Yes"), hd.sr.CodedConcept("373067005", "SCT", "No")
DISCLAIMER = "Research and education only: not a diagnosis. Machine-generated probabilities, not reviewed by a person."


@dataclasses.dataclass(frozen=True)
class Finding:
    label: str
    probability: float
    threshold: float
    positive: bool
    reliable: bool | None = None  # the model's AUROC interval for it lies above 0.5 (None: not known)


@dataclasses.dataclass(frozen=True)
class Result:
    """What one job found, as the SR and the captures report it: built from the database by the web
    (``result_of``) and from the API's answers by the PACS bridge (pacs/results.py)."""

    job_id: uuid.UUID
    model_name: str
    model_version: str
    findings: list[Finding]
    maps: dict[str, np.ndarray] | None = None  # every class's map at feature resolution (shared/imaging/maps.py)
    input_check: dict | None = None  # the input gate's verdict (shared/model/gate.py)

    @property
    def gated(self) -> bool:
        """The gate says this is not a frontal chest radiograph: the SR reports that, and no finding."""
        return bool(self.input_check) and self.input_check.get("result") != "ok"


def label_code(label: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(f"CXR{LABELS.index(label) + 1:02d}", SCHEME, display_name(label))


def derived_uid(job_id: uuid.UUID, what: str) -> str:
    return f"2.25.{uuid.uuid5(job_id, what).int}"


def _text(name: hd.sr.CodedConcept, value: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=name, value=value[:1024], relationship_type="CONTAINS")


def _finding_item(finding: Finding) -> hd.sr.ContainerContentItem:
    container = hd.sr.ContainerContentItem(name=label_code(finding.label), relationship_type="CONTAINS")
    container.ContentSequence = hd.sr.ContentSequence([
        hd.sr.NumContentItem(name=PROBABILITY, value=round(float(finding.probability), 6), unit=UNITLESS,
                             relationship_type="CONTAINS"),
        hd.sr.NumContentItem(name=THRESHOLD, value=round(float(finding.threshold), 6), unit=UNITLESS,
                             relationship_type="CONTAINS"),
        hd.sr.CodeContentItem(name=ABOVE, value=YES if finding.positive else NO, relationship_type="CONTAINS"),
        *([hd.sr.CodeContentItem(name=RELIABLE, value=YES if finding.reliable else NO, relationship_type="CONTAINS")]
          if finding.reliable is not None else []),
    ])
    return container


def _input_check_item(check: dict) -> hd.sr.TextContentItem:
    verdict = "ok" if check.get("result") == "ok" else f"not read as a chest X-ray ({check.get('result')})"
    return _text(INPUT_CHECK, f"{verdict}: {check.get('reason', '')} (score {float(check.get('score', 0)):.2f}, "
                              f"{check.get('version', '')})")


# Type 2 attributes of the patient and study modules: a new object must carry them, if only empty. Files from
# the field often lack some; highdicom copies them from the source and refuses when they are missing.
PATIENT_AND_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                     "ReferringPhysicianName", "StudyID", "AccessionNumber")


def _complete(source: pydicom.Dataset) -> pydicom.Dataset:
    missing = [keyword for keyword in PATIENT_AND_STUDY if keyword not in source]
    if not missing:
        return source
    source = copy.copy(source)  # shallow: the pixel data is not copied
    for keyword in missing:
        setattr(source, keyword, "")
    return source


def structured_report(source: pydicom.Dataset, result: Result) -> pydicom.Dataset:
    """A Comprehensive SR in ``source``'s study, referencing ``source`` as the analysed image."""
    source = _complete(source)
    root = hd.sr.ContainerContentItem(name=hd.sr.CodedConcept("18748-4", "LN", "Diagnostic imaging report"))
    items = [
        _text(hd.sr.CodedConcept("121106", "DCM", "Comment"), DISCLAIMER),
        _text(hd.sr.CodedConcept("111001", "DCM", "Algorithm Name"), result.model_name),
        _text(hd.sr.CodedConcept("111003", "DCM", "Algorithm Version"), result.model_version),
        hd.sr.ImageContentItem(name=codes.DCM.SourceImageForImageProcessingOperation,
                               referenced_sop_class_uid=source.SOPClassUID,
                               referenced_sop_instance_uid=source.SOPInstanceUID, relationship_type="CONTAINS"),
    ]
    if result.input_check:
        items.append(_input_check_item(result.input_check))
    ordered = [] if result.gated else sorted(result.findings, key=lambda f: LABELS.index(f.label))
    root.ContentSequence = hd.sr.ContentSequence(items + [_finding_item(f) for f in ordered])
    report = hd.sr.ComprehensiveSR(
        evidence=[source], content=root, series_instance_uid=derived_uid(result.job_id, "sr-series"),
        series_number=SR_SERIES_NUMBER, sop_instance_uid=derived_uid(result.job_id, "sr"), instance_number=1,
        manufacturer=MANUFACTURER, is_complete=True, is_final=False, is_verified=False,
    )
    report.SeriesDescription = "Chest X-ray findings (research use, not diagnosis)"
    return report


def heatmap_capture(source: pydicom.Dataset, rgb: np.ndarray, job_id: uuid.UUID, label: str,
                    instance_number: int) -> pydicom.Dataset:
    """A Secondary Capture of one finding's heatmap over the image, in ``source``'s study."""
    source = _complete(source)
    orientation = source.get("PatientOrientation")
    capture = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source, pixel_array=np.ascontiguousarray(rgb, dtype=np.uint8), photometric_interpretation="RGB",
        bits_allocated=8, coordinate_system="PATIENT", series_instance_uid=derived_uid(job_id, "sc-series"),
        series_number=SC_SERIES_NUMBER, sop_instance_uid=derived_uid(job_id, f"sc-{label}"),
        instance_number=instance_number, manufacturer=MANUFACTURER,
        patient_orientation=tuple(orientation) if orientation and len(orientation) == 2 else ("L", "F"),
    )
    capture.SeriesDescription = "Class activation heatmaps (research use, not diagnosis)"
    capture.ImageComments = f"Heatmap: {display_name(label)}. {DISCLAIMER}"[:10240]
    capture.BurnedInAnnotation = "NO"
    capture.BodyPartExamined = "CHEST"
    return capture


def result_of(job: Job) -> Result:
    """What a finished job found, from its rows, with each finding's reliability from its model's card."""
    quality = label_quality(job.model.manifest if job.model else None)
    return Result(job.id, job.model.name if job.model else "unknown", job.model_version or "unknown",
                  [Finding(f.label, f.probability, f.threshold, f.positive, quality[f.label]["reliable"])
                   for f in job.findings],
                  maps.decode(job.maps) if job.maps is not None else None, job.input_check)


def captures(source: pydicom.Dataset, grey: np.ndarray, result: Result, labels: list[str]) -> list[pydicom.Dataset]:
    """A Secondary Capture per label of a finished job, its map drawn over ``grey`` (maps.base_image of
    the analysed image), numbered by label so every copy of the same capture is the same object."""
    if result.maps is None:
        return []
    return [heatmap_capture(source, maps.overlay_rgb(grey, result.maps[label]), result.job_id, label,
                            LABELS.index(label) + 1) for label in labels]


def to_bytes(dataset: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
