"""The heatmaps as a DICOM Parametric Map: one object per analysed image, one frame per shown finding, on
the image's own pixel grid, so that a viewer overlays, toggles and windows them like any other map.

Each frame holds the finding's class activation map (shared/imaging/maps.py: 8-bit levels at feature
resolution) resized to the image with the same bilinear resize the viewer and the overlays use, in 16-bit
unsigned pixels (the IOD allows 16, not 8) holding the levels 0..255, so JPEG 2000 lossless keeps every
value and the frame costs about a tenth of a megabyte. The Real World Value Mapping of each frame names its
finding (Quantity Definition: the finding's code, shared/imaging/dicom_codes.py) and maps the levels to the
relative activation 0..1, unitless: a map says where the model looked, not how likely a finding is.

The Parametric Map IOD requires a Frame of Reference, which projection radiographs rarely carry, and
highdicom builds maps only for images that have one; so the map gets a Frame of Reference of its own
(a UID derived from the job) on a nominal plane at the image's pixel spacing. Each frame still names the
analysed image as its source with Spatial Locations Preserved, which is what a viewer uses to lay it over.
"""
from __future__ import annotations

import copy

import cv2
import highdicom as hd
import numpy as np
import pydicom
from pydicom.uid import JPEG2000Lossless

from shared.imaging import dicom_codes
from shared.imaging.dicom_out import (MANUFACTURER, PM_SERIES_NUMBER, Result, chest_series, derived_uid, shown_labels,
                                      with_patient_and_study)
from shared.model.labels import display_name

LEVELS = 255  # the stored maps' 8-bit levels


def _with_geometry(source: pydicom.Dataset, result: Result) -> pydicom.Dataset:
    """A shallow copy of the image with the nominal plane the map is defined on (the image is not changed)."""
    framed = copy.copy(with_patient_and_study(source))
    spacing = source.get("PixelSpacing") or source.get("ImagerPixelSpacing") or [1.0, 1.0]
    framed.FrameOfReferenceUID = derived_uid(result.job_id, "pm-frame-of-reference")
    framed.ImagePositionPatient = [0.0, 0.0, 0.0]
    framed.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    framed.PixelSpacing = [float(spacing[0]), float(spacing[1])]
    framed.SliceThickness = 1.0
    return framed


def _mapping(label: str) -> hd.pm.RealWorldValueMapping:
    return hd.pm.RealWorldValueMapping(
        lut_label=display_name(label)[:16], lut_explanation=f"Relative class activation: {display_name(label)}",
        unit=dicom_codes.UNITLESS, value_range=(0, LEVELS), slope=1.0 / LEVELS, intercept=0.0,
        quantity_definition=dicom_codes.finding_code(label))


def frames(source: pydicom.Dataset, result: Result, labels: list[str]) -> np.ndarray:
    """[1, rows, columns, len(labels)] uint16: each label's map at the image's size."""
    size = (int(source.Columns), int(source.Rows))
    return np.stack([cv2.resize(result.maps[label], size, interpolation=cv2.INTER_LINEAR).astype(np.uint16)
                     for label in labels], axis=-1)[None]


def parametric_map(source: pydicom.Dataset, result: Result) -> pydicom.Dataset | None:
    """The map of every shown finding, in ``source``'s study; None when no finding is shown."""
    labels = shown_labels(result)
    if not labels:
        return None
    parametric = hd.pm.ParametricMap(
        [_with_geometry(source, result)], frames(source, result, labels),
        series_instance_uid=derived_uid(result.job_id, "pm-series"), series_number=PM_SERIES_NUMBER,
        sop_instance_uid=derived_uid(result.job_id, "pm"), instance_number=1, manufacturer=MANUFACTURER,
        manufacturer_model_name=result.model_name[:64], software_versions=result.model_version[:64],
        device_serial_number=str(result.job_id)[:16], contains_recognizable_visual_features=False,
        real_world_value_mappings=[[_mapping(label)] for label in labels],
        voi_lut_transformations=[hd.VOILUTTransformation(window_center=LEVELS / 2, window_width=LEVELS + 1)],
        transfer_syntax_uid=JPEG2000Lossless, content_label="HEATMAP",
        content_description="Class activation maps (research use, not diagnosis)")
    parametric.SeriesDescription = "Class activation maps (research use, not diagnosis)"
    parametric.CodingSchemeIdentificationSequence = [dicom_codes.local_scheme()]
    chest_series(parametric)
    return parametric
