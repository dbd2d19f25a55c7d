"""Results as DICOM, for the systems radiology already runs: a Measurement Report (DICOM SR template TID 1500)
with each finding as a coded qualitative evaluation and its probability as a numeric measurement, a Parametric
Map of the shown findings' heatmaps (shared/imaging/dicom_maps.py), and, where a site asks for them, a JPEG
Secondary Capture of each shown finding's heatmap over the image.

All are built with highdicom from the analysed image's own dataset, so they land in its study (for the
service's downloads that is the de-identified study; for the PACS bridge the PACS's study). Their UIDs are
derived from the job id (UUID-derived UIDs, PS3.5 B.2), so making them twice yields the same objects and
storing them twice into a PACS changes nothing.

Findings are coded as shared/imaging/dicom_codes.py says (SNOMED CT where it has the finding, with its
sources); the model is the Algorithm Identification (TID 4019) of every measurement group, and the device
observer of the report. A viewer that knows TID 1500 (OHIF, 3D Slicer, highdicom's reader) lists the findings.
"""
from __future__ import annotations

import copy
import dataclasses
import io
import logging
import uuid

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import JPEGBaseline8Bit, ParametricMapStorage as PARAMETRIC_MAP

from shared.db.models import Job
from shared.imaging import dicom_codes, maps
from shared.model.labels import LABELS, NO_FINDING, display_name
from shared.model.manifest import label_quality

# highdicom logs "copy Patient-related attributes from dataset <SOP Instance UID>" at INFO: for the PACS bridge
# that is the PACS's original UID, which must never reach a log line.
logging.getLogger("highdicom").setLevel(logging.WARNING)

MANUFACTURER = "xray-service (research and education only, not for diagnosis)"
SR_SERIES_NUMBER, SC_SERIES_NUMBER, PM_SERIES_NUMBER = 9901, 9902, 9903
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


def derived_uid(job_id: uuid.UUID, what: str) -> str:
    return f"2.25.{uuid.uuid5(job_id, what).int}"


def shown_labels(result: Result) -> list[str]:
    """The findings whose heatmaps are shown: above their threshold, in label order (none when gated)."""
    if result.gated or result.maps is None:
        return []
    positive = {f.label for f in result.findings if f.positive and f.label != NO_FINDING}
    return [label for label in LABELS if label in positive]


def _algorithm(result: Result, finding: Finding | None = None) -> hd.sr.AlgorithmIdentification:
    parameters = [f"decision threshold {finding.threshold:.6f}"] if finding else None
    if finding is not None and finding.reliable is not None:
        parameters.append("AUROC interval above 0.5" if finding.reliable else "AUROC interval not above 0.5")
    return hd.sr.AlgorithmIdentification(name=result.model_name[:64], version=result.model_version[:64],
                                         parameters=parameters, manufacturer=MANUFACTURER)


def _finding_group(source: pydicom.Dataset, result: Result, finding: Finding, map_frame: int | None):
    """TID 1501: the finding (its code), present or absent at the model's threshold, and its probability,
    which refers to the finding's frame of the Parametric Map when the map is shown."""
    code = dicom_codes.finding_code(finding.label)
    algorithm = _algorithm(result, finding)
    referenced = [hd.sr.SourceImageForMeasurement(PARAMETRIC_MAP, derived_uid(result.job_id, "pm"), [map_frame])] \
        if map_frame else None
    probability = hd.sr.Measurement(name=dicom_codes.PROBABILITY, value=round(float(finding.probability), 6),
                                    unit=dicom_codes.UNITLESS, algorithm_id=algorithm, referenced_images=referenced)
    evaluation = hd.sr.QualitativeEvaluation(name=code, value=dicom_codes.PRESENT if finding.positive
                                             else dicom_codes.ABSENT)
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=derived_uid(result.job_id, f"finding-{finding.label}"),
                                                     identifier=display_name(finding.label)),
        finding_type=code, algorithm_id=algorithm, measurements=[probability],
        qualitative_evaluations=[evaluation],
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)])


def _gated_group(source: pydicom.Dataset, result: Result):
    """TID 1500 needs one group: for an image the input gate turned away, one that names the image and the
    algorithm and holds no finding (the comment says why)."""
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=derived_uid(result.job_id, "gated"),
                                                     identifier="Input check: not analysed"),
        algorithm_id=_algorithm(result), source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)])


def _observer(result: Result) -> hd.sr.ObservationContext:
    device = hd.sr.DeviceObserverIdentifyingAttributes(uid=derived_uid(result.job_id, "observer"),
                                                       name=result.model_name[:64], manufacturer_name=MANUFACTURER)
    return hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device, observer_identifying_attributes=device))


def _comment(value: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=dicom_codes.COMMENT, value=value[:1024], relationship_type="CONTAINS")


def _input_check_text(check: dict) -> str:
    verdict = "ok" if check.get("result") == "ok" else f"not read as a chest X-ray ({check.get('result')})"
    return (f"Input check: {verdict}: {check.get('reason', '')} (score {float(check.get('score', 0)):.2f}, "
            f"{check.get('version', '')})")


# Type 2 attributes of the patient and study modules: a new object must carry them, if only empty. Files from
# the field often lack some; highdicom copies them from the source and refuses when they are missing.
PATIENT_AND_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                     "ReferringPhysicianName", "StudyID", "AccessionNumber")


def with_patient_and_study(source: pydicom.Dataset) -> pydicom.Dataset:
    missing = [keyword for keyword in PATIENT_AND_STUDY if keyword not in source]
    if not missing:
        return source
    source = copy.copy(source)  # shallow: the pixel data is not copied
    for keyword in missing:
        setattr(source, keyword, "")
    return source


def chest_series(dataset: pydicom.Dataset) -> None:
    """The body part of a new image series: a chest is no paired structure, so no Laterality is needed (dciodvfy
    asks for one, Type 2C, while the body part is unknown)."""
    dataset.BodyPartExamined = "CHEST"


def structured_report(source: pydicom.Dataset, result: Result) -> pydicom.Dataset:
    """A TID 1500 Measurement Report in ``source``'s study: one measurement group a finding (none when the
    input gate says this is no chest radiograph), the disclaimer and the input check as comments."""
    source = with_patient_and_study(source)
    frames = {label: i + 1 for i, label in enumerate(shown_labels(result))}
    ordered = [] if result.gated else sorted(result.findings, key=lambda f: LABELS.index(f.label))
    groups = [_finding_group(source, result, f, frames.get(f.label)) for f in ordered] or [_gated_group(source, result)]
    report = hd.sr.MeasurementReport(observation_context=_observer(result), procedure_reported=dicom_codes.CHEST_XRAY,
                                     imaging_measurements=groups)
    root = report[0]
    root.ContentSequence.append(_comment(DISCLAIMER))
    if result.input_check:
        root.ContentSequence.append(_comment(_input_check_text(result.input_check)))
    evidence = [source] + ([_map_reference(source, result)] if frames else [])
    document = hd.sr.ComprehensiveSR(
        evidence=evidence, content=root, series_instance_uid=derived_uid(result.job_id, "sr-series"),
        series_number=SR_SERIES_NUMBER, sop_instance_uid=derived_uid(result.job_id, "sr"), instance_number=1,
        manufacturer=MANUFACTURER, is_complete=True, is_final=False, is_verified=False,
    )
    document.SeriesDescription = "Chest X-ray findings (research use, not diagnosis)"
    document.CodingSchemeIdentificationSequence = [dicom_codes.local_scheme()]
    return document


def _map_reference(source: pydicom.Dataset, result: Result) -> pydicom.Dataset:
    """What the report's evidence lists for the Parametric Map it refers to (made from the same job id)."""
    reference = pydicom.Dataset()
    reference.StudyInstanceUID = source.StudyInstanceUID
    reference.SeriesInstanceUID = derived_uid(result.job_id, "pm-series")
    reference.SOPClassUID, reference.SOPInstanceUID = PARAMETRIC_MAP, derived_uid(result.job_id, "pm")
    return reference


def heatmap_capture(source: pydicom.Dataset, rgb: np.ndarray, job_id: uuid.UUID, label: str,
                    instance_number: int) -> pydicom.Dataset:
    """A Secondary Capture of one finding's heatmap over the image, in ``source``'s study: JPEG baseline
    (YBR_FULL_422, as PS3.5 8.2.1 asks), about a twentieth of the uncompressed RGB it replaces; a picture for
    viewers that cannot show the Parametric Map, so the loss is the picture's, never the map's."""
    source = with_patient_and_study(source)
    orientation = source.get("PatientOrientation")
    capture = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source, pixel_array=np.ascontiguousarray(rgb, dtype=np.uint8),
        photometric_interpretation="YBR_FULL_422", bits_allocated=8, coordinate_system="PATIENT",
        series_instance_uid=derived_uid(job_id, "sc-series"), series_number=SC_SERIES_NUMBER,
        sop_instance_uid=derived_uid(job_id, f"sc-{label}"), instance_number=instance_number,
        manufacturer=MANUFACTURER, transfer_syntax_uid=JPEGBaseline8Bit,
        patient_orientation=tuple(orientation) if orientation and len(orientation) == 2 else ("L", "F"),
    )
    chest_series(capture)
    capture.SeriesDescription = "Class activation heatmaps (research use, not diagnosis)"
    capture.ImageComments = f"Heatmap: {display_name(label)}. {DISCLAIMER}"[:10240]
    capture.BurnedInAnnotation = "NO"
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
