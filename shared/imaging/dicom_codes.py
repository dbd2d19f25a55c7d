"""The codes the DICOM results use (shared/imaging/dicom_out.py, dicom_maps.py), with where each comes from.

Each ChestX-ray14 label is coded in SNOMED CT where a concept for it could be checked, in DICOM's own DCM
scheme where PS3.16 defines the finding itself, and in the service's local scheme ``99NIHCXR`` where neither
could be checked (a local code is honest; a guessed SNOMED CT number would not be). Sources:

- [PS3.16] DICOM PS3.16 (Content Mapping Resource), as shipped in pydicom's concept dictionary
  (``pydicom.sr._concepts_dict``, generated from PS3.16): the context group is named per code.
- [SCT] SNOMED CT International Edition concept identifiers, cross-checked against public terminology
  tables (FHIR value sets and SNOMED CT browser pages) because PS3.16 does not list them.
- RadLex was searched for Pleural thickening without a checkable RID, so that label keeps its local code.

| label              | code           | scheme   | meaning                  | source |
|--------------------|----------------|----------|--------------------------|--------|
| Atelectasis        | 46621007       | SCT      | Atelectasis              | [SCT] |
| Cardiomegaly       | 8186001        | SCT      | Cardiomegaly             | [SCT] |
| Effusion           | 60046008       | SCT      | Pleural effusion         | [PS3.16] CID 645, 8134 |
| Infiltration       | 112121         | DCM      | Infiltrate               | [PS3.16] CID 6104 (Abnormal Opacity Finding) |
| Mass               | 4147007        | SCT      | Mass                     | [PS3.16] CID 6104 |
| Nodule             | 27925004       | SCT      | Nodule                   | [PS3.16] CID 6104 |
| Pneumonia          | 233604007      | SCT      | Pneumonia                | [SCT] |
| Pneumothorax       | 36118008       | SCT      | Pneumothorax             | [PS3.16] CID 6102, 6105 |
| Consolidation      | 95436008       | SCT      | Lung consolidation       | [SCT] |
| Edema              | 19242006       | SCT      | Pulmonary edema          | [PS3.16] CID 3700 |
| Emphysema          | 87433001       | SCT      | Pulmonary emphysema      | [SCT] |
| Fibrosis           | 51615001       | SCT      | Pulmonary fibrosis       | [SCT] |
| Pleural_Thickening | CXR12          | 99NIHCXR | Pleural thickening       | local: no SNOMED CT or RadLex code checked |
| Hernia             | 84089009       | SCT      | Hiatal hernia            | [SCT] (the NIH label means hiatal hernia) |
| No Finding         | CXR15          | 99NIHCXR | No finding               | local |

Other concepts: Present / Absent (SCT 52101004 / 272519000, [PS3.16] CID 240), Probability (DCM 122157,
[PS3.16]), no units (UCUM 1, CID 7181), Plain chest X-ray (SCT 399208008, [SCT]), and DCM's Algorithm Name
and Version inside highdicom's Algorithm Identification (TID 4019).
"""
from __future__ import annotations

import highdicom as hd
from pydicom.dataset import Dataset

from shared.model.labels import LABELS, display_name

LOCAL = "99NIHCXR"

FINDINGS: dict[str, tuple[str, str, str]] = {
    "Atelectasis": ("46621007", "SCT", "Atelectasis"),
    "Cardiomegaly": ("8186001", "SCT", "Cardiomegaly"),
    "Effusion": ("60046008", "SCT", "Pleural effusion"),
    "Infiltration": ("112121", "DCM", "Infiltrate"),
    "Mass": ("4147007", "SCT", "Mass"),
    "Nodule": ("27925004", "SCT", "Nodule"),
    "Pneumonia": ("233604007", "SCT", "Pneumonia"),
    "Pneumothorax": ("36118008", "SCT", "Pneumothorax"),
    "Consolidation": ("95436008", "SCT", "Lung consolidation"),
    "Edema": ("19242006", "SCT", "Pulmonary edema"),
    "Emphysema": ("87433001", "SCT", "Pulmonary emphysema"),
    "Fibrosis": ("51615001", "SCT", "Pulmonary fibrosis"),
    "Hernia": ("84089009", "SCT", "Hiatal hernia"),
}

PRESENT = hd.sr.CodedConcept("52101004", "SCT", "Present")
ABSENT = hd.sr.CodedConcept("272519000", "SCT", "Absent")
PROBABILITY = hd.sr.CodedConcept("122157", "DCM", "Probability")
UNITLESS = hd.sr.CodedConcept("1", "UCUM", "no units")
CHEST_XRAY = hd.sr.CodedConcept("399208008", "SCT", "Plain chest X-ray")
FINDING = hd.sr.CodedConcept("121071", "DCM", "Finding")
COMMENT = hd.sr.CodedConcept("121106", "DCM", "Comment")


def local_scheme() -> Dataset:
    """The Coding Scheme Identification item (PS3.3 C.12.1) that says what the local scheme is."""
    item = Dataset()
    item.CodingSchemeDesignator = LOCAL
    item.CodingSchemeName = "NIH ChestX-ray14 labels, as coded by xray-service"
    item.CodingSchemeResponsibleOrganization = "xray-service (research and education)"
    return item


def finding_code(label: str) -> hd.sr.CodedConcept:
    """The label's concept from the table above; the local code (by label order) where it has none."""
    if label in FINDINGS:
        return hd.sr.CodedConcept(*FINDINGS[label])
    return hd.sr.CodedConcept(f"CXR{LABELS.index(label) + 1:02d}", LOCAL, display_name(label))


def label_of(code) -> str | None:
    """The label a concept read back from a report stands for (None: not one of ours)."""
    for label in LABELS:
        wanted = finding_code(label)
        if (wanted.value, wanted.scheme_designator) == (code.value, code.scheme_designator):
            return label
    return None
