"""What the items of the sequences de-identification keeps may hold (shared/imaging/deidentify.py).

An item of a sequence is a dataset like any other: a sender can nest a patient name, a private tag or
another sequence in it, at any depth. So a kept sequence is not copied: each of its items is rebuilt from
the few attributes its macro defines, and an item that has not the ones it needs is left out.

Code items (PS3.3 8.8, Code Sequence Macro) keep their code value and scheme, and only where the value has
the form codes of its scheme have (a SNOMED CT code is digits, so it cannot spell a name). The code meaning
is free text, so it never comes from the sender: it is looked up in the table below, and a code not in it
gets a neutral meaning made from the code itself. LUT items keep the descriptor and the data, in numeric
VRs only; their explanation is free text and goes.
"""
from __future__ import annotations

import re

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

# Anatomic region codes a chest CR or DX carries: DICOM PS3.16 CID 4031 "Common Anatomic Regions" (SNOMED CT,
# current and the pre-2019 codes older modalities still send, with their SNOMED-RT forms), and the modifiers
# of CID 2 "Anatomic Modifier" a chest image uses. Meanings as PS3.16 gives them.
MEANINGS = {
    ("SCT", "816094009"): "Chest", ("SCT", "51185008"): "Thoracic structure", ("SRT", "T-D3000"): "Chest",
    ("SCT", "43799004"): "Chest cavity", ("SRT", "T-D3200"): "Chest cavity",
    ("SCT", "416550000"): "Chest and Abdomen", ("SCT", "417437006"): "Neck and Chest",
    ("SCT", "416775004"): "Chest, Abdomen and Pelvis", ("SCT", "416152001"): "Neck, Chest and Abdomen",
    ("SCT", "39607008"): "Lung", ("SCT", "86598002"): "Apex of Lung", ("SCT", "72410000"): "Mediastinum",
    ("SCT", "80891009"): "Heart", ("SCT", "113197003"): "Rib", ("SCT", "56873002"): "Sternum",
    ("SCT", "122495006"): "Thoracic spine", ("SCT", "51299004"): "Clavicle", ("SCT", "44567001"): "Trachea",
    ("SCT", "38266002"): "Entire body", ("SRT", "T-D0010"): "Entire body",
    ("SCT", "7771000"): "Left", ("SCT", "24028007"): "Right", ("SCT", "51440002"): "Bilateral",
    ("SCT", "255549009"): "Anterior", ("SCT", "255551008"): "Posterior", ("SCT", "49370004"): "Lateral",
    ("SCT", "43674008"): "Apical", ("SCT", "66459002"): "Unilateral",
}
# The form a code value takes in each scheme kept; items in other schemes are left out.
CODE_FORMS = {"SCT": re.compile(r"[1-9][0-9]{5,15}"), "SRT": re.compile(r"[A-Z]-[0-9A-Z]{4,5}"),
              "DCM": re.compile(r"[0-9]{3,16}")}
VERSION_FORM = re.compile(r"[0-9][0-9.]{0,15}")
# PS3.3 C.11.1.1.2 defined terms; any other value (free text) becomes US, "unspecified".
MODALITY_LUT_TYPES = {"OD", "HU", "US", "MGML", "Z_EFF", "ED", "EDW", "HU_MOD", "PCT"}
NUMERIC_VRS = {"US", "SS", "OW"}


def code_item(item: Dataset, modifiers: bool = True) -> Dataset | None:
    """The code again, with a meaning from the table; None when it is not a code of a kept scheme."""
    scheme = str(item.get("CodingSchemeDesignator", "") or "").strip()
    value = str(item.get("CodeValue", "") or "").strip()
    form = CODE_FORMS.get(scheme)
    if form is None or not form.fullmatch(value):
        return None
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = value, scheme
    version = str(item.get("CodingSchemeVersion", "") or "").strip()
    if VERSION_FORM.fullmatch(version):
        code.CodingSchemeVersion = version
    code.CodeMeaning = MEANINGS.get((scheme, value), f"{scheme} code {value}")
    if modifiers:  # one level: a modifier has no modifiers of its own
        kept = [code_item(modifier, modifiers=False) for modifier in item.get("AnatomicRegionModifierSequence", [])]
        if any(kept):
            code.AnatomicRegionModifierSequence = Sequence([modifier for modifier in kept if modifier])
    return code


def _numeric(item: Dataset, keyword: str) -> bool:
    """Present, and in a numeric VR (an explicit-VR file can give any VR, a text one included)."""
    return keyword in item and set(item[keyword].VR.replace(" or ", " ").split()) <= NUMERIC_VRS


def lut_item(item: Dataset, modality: bool = False) -> Dataset | None:
    """Descriptor and data (and, for a Modality LUT, its type); None without them."""
    if not (_numeric(item, "LUTDescriptor") and _numeric(item, "LUTData")):
        return None
    lut = Dataset()
    lut["LUTDescriptor"], lut["LUTData"] = item["LUTDescriptor"], item["LUTData"]
    if modality:
        kind = str(item.get("ModalityLUTType", "") or "").strip().upper()
        lut.ModalityLUTType = kind if kind in MODALITY_LUT_TYPES else "US"
    return lut


REBUILT = {
    "AnatomicRegionSequence": code_item,
    "ModalityLUTSequence": lambda item: lut_item(item, modality=True),
    "VOILUTSequence": lut_item,
}


def rebuilt(keyword: str, items: Sequence) -> Sequence | None:
    """The sequence with each item rebuilt from its own allow-list; None when no item is left."""
    kept = [REBUILT[keyword](item) for item in items]
    kept = [item for item in kept if item is not None]
    return Sequence(kept) if kept else None
