"""De-identification of DICOM on arrival, before a byte is written (PS3.15 Annex E, Basic Application
Level Confidentiality Profile).

The profile lists the attributes that may identify a patient and what to do with each (remove, empty,
replace with a dummy, replace UIDs). This module reaches the same result from the other side: it builds a
new dataset from an allow-list of attributes that describe only the pixels and the acquisition geometry
(none of them is in the profile's table), so anything not named here, private tags and unknown vendor
attributes included, cannot come through. Every Type 2 attribute of the image's IOD that is left behind is
then present and empty (so the stored file validates whenever the sent one did), and the profile's Type 1 and
2 attributes the objects need are filled with dummies: an empty patient name and birth date, a pseudonymous patient ID, and UIDs replaced
by keyed hashes of the originals. The key is the deployment's secret and the owner, so the same study sent
twice (or a second image of it) gets the same new Study Instance UID, while nobody without the key can
link the new UID to the old one.

The allow-list reaches into the sequences it keeps: their items are rebuilt from allow-lists of their own
(shared/imaging/dicom_sequences.py), so a patient name or a private tag nested in an item, at any depth, stays
behind, and code meanings come from a table, never from the sender.

The pixels are kept bit for bit, compressed or not, but not every byte around them: a JPEG, JPEG-LS or
JPEG 2000 frame loses its comments and application segments and anything after its end marker
(shared/imaging/privacy.py), and native pixel data anything past the image's size. Compressed pixel data in a
syntax nothing here can read is refused, because nothing here could clean it either. The profile's "Clean
Pixel Data" option is not offered, so files that say their pixels carry burned-in text are refused
(shared/dicom_in.check_radiograph).
"""
from __future__ import annotations

import hashlib
import hmac
import io

import pydicom
from highdicom._standard_utils import get_iod_module_map, get_module_attribute_map, get_sop_class_iod_map
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, RLELossless

from shared.imaging import dicom_in, dicom_sequences
from shared.imaging.privacy import strip_j2k, strip_jpeg

# Image, pixel and geometry attributes of the CR and DX IODs: not in PS3.15 Table E.1-1.
KEPT = (
    "SpecificCharacterSet", "ImageType", "SOPClassUID", "Modality", "ViewPosition", "BodyPartExamined",
    "AnatomicRegionSequence", "Manufacturer", "ManufacturerModelName", "DetectorType", "PresentationLUTShape",
    "SeriesNumber", "InstanceNumber", "PatientOrientation", "ImageLaterality", "Laterality", "PresentationIntentType",
    "SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
    "PixelRepresentation", "PlanarConfiguration", "PixelAspectRatio", "PixelSpacing", "ImagerPixelSpacing",
    "PixelSpacingCalibrationType", "PixelIntensityRelationship", "PixelIntensityRelationshipSign",
    "RescaleIntercept", "RescaleSlope", "RescaleType", "ModalityLUTSequence", "WindowCenter", "WindowWidth",
    "VOILUTFunction", "VOILUTSequence", "LossyImageCompression", "LossyImageCompressionRatio",
    "LossyImageCompressionMethod", "BurnedInAnnotation", "PositionerType", "PixelData",
)
# UIDs the profile says to replace (action U) that the kept objects carry.
REPLACED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
# Type 2 attributes of the patient, study and series modules: present, empty (profile action Z).
EMPTIED = ("PatientName", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "ReferringPhysicianName",
           "StudyID", "AccessionNumber")
METHOD = "PS3.15 Basic Profile (allow-list), xray-service"


def _keyed(key: bytes, scope: str, value: str) -> bytes:
    return hmac.new(key, f"{scope}\x00{value}".encode(), hashlib.sha256).digest()


def replacement_uid(key: bytes, scope: str, uid: str) -> str:
    """A UID under the 2.25 root (PS3.5 B.2), the same for the same key, scope and original."""
    return f"2.25.{int.from_bytes(_keyed(key, scope, uid)[:16], 'big')}"


def _method_code() -> Dataset:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "113100", "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    return code


def deidentify(ds: pydicom.Dataset, key: bytes, scope: str) -> pydicom.Dataset:
    """A new dataset holding the allow-listed attributes, dummies and replaced UIDs; ``scope`` (the owner)
    keeps one owner's replacements apart from another's."""
    dicom_in.check_radiograph(ds)
    clean = Dataset()
    for keyword in KEPT:
        if keyword in dicom_sequences.REBUILT and keyword in ds:
            items = dicom_sequences.rebuilt(keyword, ds[keyword].value)
            if items is not None:
                setattr(clean, keyword, items)
        elif keyword == "PixelData":
            clean.PixelData = pixel_data(ds)
            clean["PixelData"].VR = ds["PixelData"].VR
        elif keyword in ds:
            clean[keyword] = ds[keyword]
    for keyword in REPLACED_UIDS:
        original = str(ds.get(keyword, "") or "") or f"missing-{keyword}-{hashlib.sha256(ds.PixelData).hexdigest()}"
        setattr(clean, keyword, replacement_uid(key, scope, original))
    for keyword in EMPTIED:
        setattr(clean, keyword, "")
    patient = str(ds.get("PatientID", "") or "")
    clean.PatientID = "XR-" + _keyed(key, scope, "patient:" + patient).hex()[:16].upper() if patient else ""
    for keyword in type2_of_iod(ds):  # present, if only empty (profile action Z; Acquisition Context: X → Z)
        if keyword not in clean:
            clean.add_new(tag_for_keyword(keyword), dictionary_VR(tag_for_keyword(keyword)), None)
    clean.PatientIdentityRemoved = "YES"
    clean.DeidentificationMethod = METHOD
    clean.DeidentificationMethodCodeSequence = Sequence([_method_code()])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = clean.SOPClassUID
    meta.MediaStorageSOPInstanceUID = clean.SOPInstanceUID
    meta.TransferSyntaxUID = ds.file_meta.TransferSyntaxUID
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    clean.file_meta = meta
    return clean


def type2_of_iod(ds: pydicom.Dataset) -> list[str]:
    """The Type 2 attributes (top level) of the image's IOD: of its mandatory modules, and of the optional ones
    the file uses (a DX with a Positioner Type uses DX Positioning). A stored file must carry each, if only
    empty, or a validator rightly refuses it; the module tables are the standard's, as highdicom ships them."""
    iod = get_sop_class_iod_map().get(str(ds.get("SOPClassUID", "")))
    if iod is None:
        return []
    attributes = get_module_attribute_map()
    keywords = []
    for module in get_iod_module_map()[iod]:
        top = [a for a in attributes.get(module["key"], [])  # repeating groups (Overlay*) have no one tag
               if not a["path"] and tag_for_keyword(a["keyword"]) is not None]
        used = module["usage"] == "M" or any(a["keyword"] in ds for a in top)
        keywords += [a["keyword"] for a in top if used and a["type"] == "2"]
    return keywords


def pixel_data(ds: pydicom.Dataset) -> bytes:
    """The pixel data without the text a compressed stream can carry, or bytes past a native image's end."""
    syntax = ds.file_meta.TransferSyntaxUID
    if not syntax.is_encapsulated:
        samples = int(ds.get("SamplesPerPixel", 1) or 1) * max(1, int(ds.get("BitsAllocated", 16) or 16) // 8)
        size = int(ds.Rows) * int(ds.Columns) * samples
        return ds.PixelData[:size + size % 2]  # an odd length is padded to even (PS3.5 8.1.1)
    if syntax == RLELossless:
        return ds.PixelData
    what = dicom_in.stream_name(syntax)
    if syntax in dicom_in.JPEG_FAMILY:
        return encapsulate([strip_jpeg(dicom_in.single_frame(ds), what)])
    if syntax in dicom_in.JPEG_2000:
        return encapsulate([strip_j2k(dicom_in.single_frame(ds), what)])
    raise ValueError(f"the DICOM pixel data is in a transfer syntax this service cannot decode: {syntax.name} "
                     f"({syntax})")


def deidentified_bytes(data: bytes, key: bytes, scope: str) -> bytes:
    """The file as it may be stored; ValueError with a reason when it cannot be accepted."""
    ds = dicom_in.read_header(data)
    if "SOPClassUID" not in ds:
        raise ValueError("the DICOM file has no SOP Class UID")
    buffer = io.BytesIO()
    deidentify(ds, key, scope).save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
