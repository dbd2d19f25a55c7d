"""DICOM test files made from real NIH X-ray pixels, with made-up patient data that must never come back.

``make_dicom`` wraps an 8-bit grey image in a CR or DX header: MONOCHROME1 or MONOCHROME2, 8 or 12-in-16
bit with a rescale, a window that maps the stored values back to the original pixels exactly
(LINEAR_EXACT), private tags, identifiers in nested sequences, and any of the common transfer syntaxes.
The decoded display pixels must therefore equal the source PNG's pixels (``expected_pixels``).

``nested=True`` adds the sequences de-identification keeps (anatomic region codes, identity Modality and VOI
LUTs), each item carrying a name, a private tag and text several levels deep; ``with_pixel_text`` hides
text inside the pixel data itself (JPEG comments and APPn, Adobe APP14 tails, JPEG 2000 comments in the
main and tile-part headers, JP2 boxes, bytes after the end); ``sof_bomb`` and ``deflate_bomb`` are the
two decompression bombs.
"""
from __future__ import annotations

import io
import struct
import tempfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.sequence import Sequence
from pydicom.uid import (CTImageStorage, DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian, JPEG2000Lossless, JPEGBaseline8Bit, JPEGLosslessSV1, JPEGLSLossless,
                         RLELossless, ComputedRadiographyImageStorage, DeflatedExplicitVRLittleEndian, generate_uid)

# The identifiers every test file carries; none may appear in anything the service stores or answers.
PATIENT = {"PatientName": "DOE^JANE^Q", "PatientID": "MRN-4471-2209", "PatientBirthDate": "19610314",
           "OtherPatientIDs": "SSN-078-05-1120", "PatientAddress": "12 Elm Street, Springfield",
           "InstitutionName": "Springfield General", "ReferringPhysicianName": "HOUSE^GREGORY",
           "OperatorsName": "TECH^TERRY", "AccessionNumber": "ACC-99812"}
IDENTIFYING_STRINGS = ["DOE^JANE", "MRN-4471-2209", "19610314", "SSN-078-05-1120", "Elm Street", "Springfield",
                       "HOUSE^GREGORY", "TECH^TERRY", "ACC-99812", "PRIVATE-NOTE-Jane", "NESTED-NOTE-Jane"]
# Text hidden inside pixel data by with_pixel_text; none may be stored or served either.
PIXEL_TEXTS = ["COM-NOTE-Jane", "APP1-NOTE-Jane", "ADOBE-TAIL-Jane", "AFTER-END-Jane", "J2K-MAIN-Jane",
               "J2K-TILE-Jane", "JP2-XML-Jane", "NATIVE-TAIL-Jane"]

SYNTAXES = {
    "explicit": ExplicitVRLittleEndian, "implicit": ImplicitVRLittleEndian, "deflated": DeflatedExplicitVRLittleEndian,
    "rle": RLELossless, "jpeg-baseline": JPEGBaseline8Bit, "jpeg-lossless": JPEGLosslessSV1,
    "jpeg-ls": JPEGLSLossless, "jpeg2000": JPEG2000Lossless,
}


def grey_from_png(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)


def _stored(pixels: np.ndarray, bits: int, monochrome1: bool) -> tuple[np.ndarray, dict]:
    """Stored values and the header that maps them back to ``pixels`` exactly."""
    if bits == 8:
        stored = (255 - pixels) if monochrome1 else pixels.copy()
        return stored.astype(np.uint8), {"BitsAllocated": 8, "BitsStored": 8, "HighBit": 7,
                                          "WindowCenter": "127.5", "WindowWidth": "255"}
    # 12 bits in 16, with a rescale (values - 1024) as a detector would write them
    values = pixels.astype(np.uint16) * 16 + 8
    stored = (4095 - values) if monochrome1 else values
    low, high = 8 - 1024, 255 * 16 + 8 - 1024  # the rescaled values of pixels 0 and 255
    if monochrome1:  # stored 4095-v → rescaled 3071-v; the window must span the same values
        low, high = 4095 - (255 * 16 + 8) - 1024, 4095 - 8 - 1024
    return stored.astype(np.uint16), {"BitsAllocated": 16, "BitsStored": 12, "HighBit": 11,
                                       "RescaleIntercept": "-1024", "RescaleSlope": "1", "RescaleType": "US",
                                       "WindowCenter": str((low + high) / 2), "WindowWidth": str(high - low)}


def make_dataset(pixels: np.ndarray, *, modality: str = "DX", bits: int = 16, monochrome1: bool = False,
                 view: str | None = "PA", study_uid: str | None = None, window: bool = True,
                 burned_in: bool = False, nested: bool = False) -> Dataset:
    if nested and (bits != 8 or monochrome1):
        raise ValueError("nested sequences carry identity LUTs, for 8-bit MONOCHROME2 images")
    stored, header = _stored(pixels, bits, monochrome1)
    ds = Dataset()
    ds.SOPClassUID = {"DX": DigitalXRayImageStorageForPresentation, "CR": ComputedRadiographyImageStorage,
                      "CT": CTImageStorage}[modality]
    ds.SOPInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.Modality = modality
    for keyword, value in PATIENT.items():
        setattr(ds, keyword, value)
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "20240102", "101500", "S1", 1, 1
    if view:
        ds.ViewPosition = view
    ds.ImagerPixelSpacing = [0.143, 0.143]
    ds.BurnedInAnnotation = "YES" if burned_in else "NO"
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
    ds.Rows, ds.Columns = stored.shape
    for keyword, value in header.items():
        if window or not keyword.startswith("Window"):
            setattr(ds, keyword, value)
    if window:
        ds.VOILUTFunction = "LINEAR_EXACT"
    request = Dataset()
    request.RequestedProcedureDescription = "CHEST PA for DOE^JANE"
    request.ScheduledPerformingPhysicianName = "HOUSE^GREGORY"
    ds.RequestAttributesSequence = Sequence([request])
    block = ds.private_block(0x0099, "ACME HOSPITAL", create=True)
    block.add_new(0x01, "LO", "PRIVATE-NOTE-Jane")
    if nested:
        _nest_identifiers(ds)
    ds.PixelData = stored.tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    return ds


def _compress(ds: Dataset, syntax: str) -> None:
    uid = SYNTAXES[syntax]
    if syntax in ("explicit", "implicit", "deflated"):
        ds.file_meta.TransferSyntaxUID = uid
    elif syntax == "jpeg-baseline":
        if ds.BitsAllocated != 8:
            raise ValueError("JPEG baseline holds 8-bit pixels only")
        ok, encoded = cv2.imencode(".jpg", ds.pixel_array, [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        ds.PixelData = encapsulate([encoded.tobytes()])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = uid
        ds.LossyImageCompression = "01"
    elif syntax == "jpeg-lossless":
        _gdcm_compress(ds)
    else:
        ds.compress(uid)


def _gdcm_compress(ds: Dataset) -> None:
    """JPEG Lossless (process 14, SV1): among Python packages only GDCM encodes it."""
    import gdcm

    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "image.dcm")
        ds.save_as(path, enforce_file_format=True)
        reader = gdcm.ImageReader()
        reader.SetFileName(path)
        assert reader.Read(), "GDCM could not read the uncompressed file"
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGLosslessProcess14_1))
        change.SetInput(reader.GetImage())
        assert change.Change(), "GDCM could not compress to JPEG Lossless"
        writer = gdcm.ImageWriter()
        writer.SetFileName(path)
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        assert writer.Write()
        ds.PixelData = pydicom.dcmread(path).PixelData
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1


def make_dicom(pixels: np.ndarray, syntax: str = "explicit", **options) -> bytes:
    ds = make_dataset(pixels, **options)
    _compress(ds, syntax)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def undecodable_dicom(pixels: np.ndarray) -> bytes:
    """A radiograph whose pixel data claims a transfer syntax (MPEG2) that no installed plugin decodes."""
    ds = make_dataset(pixels, bits=8)
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = pydicom.uid.MPEG2MPML
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _private_and_name(item: Dataset, depth: int) -> Dataset:
    """A name, a private tag and free text in ``item``, and again in an item nested ``depth`` levels below."""
    item.PatientName = "DOE^JANE^Q"
    block = item.private_block(0x0099, "ACME HOSPITAL", create=True)
    block.add_new(0x01, "LO", "PRIVATE-NOTE-Jane")
    if depth:
        inner = Dataset()
        inner.TextValue = "NESTED-NOTE-Jane"
        item.ReferencedImageSequence = Sequence([_private_and_name(inner, depth - 1)])
    return item


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
    return code


def _identity_lut(modality: bool) -> Dataset:
    lut = Dataset()
    lut.LUTDescriptor = [256, 0, 16]
    lut.LUTData = list(range(256))
    lut["LUTData"].VR = "US"
    lut.LUTExplanation = "identity, NESTED-NOTE-Jane DOE^JANE"
    if modality:
        lut.ModalityLUTType = "DOE^JANE"  # free text where a defined term belongs
    return _private_and_name(lut, 2)


def _nest_identifiers(ds: Dataset) -> None:
    """The three kept sequences, with identifiers in every item at three levels; the LUTs are identities."""
    chest = _private_and_name(_code("51185008", "SCT", "Chest of DOE^JANE"), 2)
    left = _private_and_name(_code("7771000", "SCT", "left, NESTED-NOTE-Jane"), 1)
    unknown = _code("123456789", "SCT", "NESTED-NOTE-Jane")
    left.AnatomicRegionModifierSequence = Sequence([_code("24028007", "SCT", "DOE^JANE")])  # a modifier's modifier
    chest.AnatomicRegionModifierSequence = Sequence([left, unknown, _code("MRN-4471-2209", "SCT", "x")])
    ds.AnatomicRegionSequence = Sequence([chest, _code("DOE^JANE", "99LOCAL", "NESTED-NOTE-Jane")])
    ds.ModalityLUTSequence = Sequence([_identity_lut(modality=True)])
    ds.VOILUTSequence = Sequence([_identity_lut(modality=False)])


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


def jpeg_with_text(stream: bytes) -> bytes:
    """A comment and an EXIF APP1 after SOI, an Adobe APP14 with text after its 12 bytes, a comment just before
    the first scan, text after EOI. Segments are walked here by their lengths, not found by searching."""
    offset = 2
    while stream[offset + 1] != 0xDA:
        offset += 2 + int.from_bytes(stream[offset + 2:offset + 4], "big")
    adobe = b"Adobe" + bytes([0, 100, 0, 0, 0, 0, 0]) + b"ADOBE-TAIL-Jane DOE^JANE"
    head = (_segment(0xFE, b"COM-NOTE-Jane DOE^JANE") + _segment(0xE1, b"Exif\0\0APP1-NOTE-Jane")
            + _segment(0xEE, adobe))
    end = stream.rindex(b"\xff\xd9") + 2
    return (stream[:2] + head + stream[2:offset] + _segment(0xFE, b"COM-NOTE-Jane") + stream[offset:end]
            + b"AFTER-END-Jane")


def _j2k_with_text(stream: bytes) -> bytes:
    """Comments (Rcom 1: Latin text) in the main header and in the first tile-part's header, whose length
    (Psot) grows to match, and text after the end of the codestream."""
    def comment(text: bytes) -> bytes:
        return _segment(0x64, b"\x00\x01" + text)

    offset = 2
    while stream[offset + 1] != 0x90:  # main header segments up to the first SOT
        offset += 2 + int.from_bytes(stream[offset + 2:offset + 4], "big")
    sot, tile_comment = stream[offset:offset + 12], comment(b"J2K-TILE-Jane DOE^JANE")
    (psot,) = struct.unpack(">I", sot[6:10])
    sot = sot[:6] + struct.pack(">I", psot + len(tile_comment) if psot else 0) + sot[10:]
    end = stream.rindex(b"\xff\xd9") + 2
    return (stream[:offset] + comment(b"J2K-MAIN-Jane DOE^JANE") + sot + tile_comment + stream[offset + 12:end]
            + b"AFTER-END-Jane")


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload) + 8) + kind + payload


def jp2_wrapped(stream: bytes, rows: int, columns: int, bits: int) -> bytes:
    """The codestream as a JP2 file (greyscale), with an XML box of text beside it."""
    header = _box(b"ihdr", struct.pack(">IIHBBBB", rows, columns, 1, bits - 1, 7, 0, 0))
    header += _box(b"colr", bytes([1, 0, 0]) + struct.pack(">I", 17))
    return (b"\x00\x00\x00\x0cjP  \r\n\x87\n" + _box(b"ftyp", b"jp2 \x00\x00\x00\x00jp2 ")
            + _box(b"jp2h", header) + _box(b"xml ", b"<note>JP2-XML-Jane DOE^JANE</note>") + _box(b"jp2c", stream))


def with_frame(data: bytes, change) -> bytes:
    """The DICOM file with its one encapsulated frame replaced by ``change(frame)``."""
    ds = pydicom.dcmread(io.BytesIO(data))
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([change(frame)])
    return _saved(ds)


def _saved(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def with_pixel_text(data: bytes, syntax: str, jp2: bool = False) -> bytes:
    """Text hidden in the pixel data the way the syntax allows: see PIXEL_TEXTS."""
    if syntax in ("jpeg-baseline", "jpeg-lossless", "jpeg-ls"):
        return with_frame(data, jpeg_with_text)
    if syntax == "jpeg2000":
        ds = pydicom.dcmread(io.BytesIO(data))
        wrap = (lambda s: jp2_wrapped(s, ds.Rows, ds.Columns, ds.BitsStored)) if jp2 else (lambda s: s)
        return with_frame(data, lambda frame: wrap(_j2k_with_text(frame)))
    if syntax == "rle":
        return data  # RLE segments are kept as sent (no text is put there)
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.PixelData = ds.PixelData + b"NATIVE-TAIL-Jane"  # bytes past the image's end
    return _saved(ds)


def sof_bomb(pixels: np.ndarray, side: int = 20_000) -> bytes:
    """A DICOM header saying the image is as large as ``pixels`` around a JPEG whose frame header says
    side x side: decoders believe the frame header (and fill what the scan does not cover)."""
    def grow(frame: bytes) -> bytes:
        offset = 2
        while frame[offset + 1] != 0xC0:  # segments up to the baseline frame header
            offset += 2 + int.from_bytes(frame[offset + 2:offset + 4], "big")
        return frame[:offset + 5] + struct.pack(">HH", side, side) + frame[offset + 9:]

    return with_frame(make_dicom(pixels, "jpeg-baseline", bits=8), grow)


def deflate_bomb(pixels: np.ndarray, inflated_bytes: int = 320 * 2**20) -> bytes:
    """A valid Deflated Explicit VR radiograph whose dataset ends in trailing padding (FFFC,FFFC) of zeros:
    a few hundred kilobytes that inflate to ``inflated_bytes``."""
    ds = make_dataset(pixels, bits=8)
    plain = pydicom.filebase.DicomBytesIO()
    plain.is_little_endian, plain.is_implicit_VR = True, False
    pydicom.filewriter.write_dataset(plain, ds)
    body = plain.getvalue() + struct.pack("<HH2sHI", 0xFFFC, 0xFFFC, b"OB", 0, inflated_bytes)
    packer, parts = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS), []
    parts.append(packer.compress(body))
    zeros = bytes(2**20)
    for _ in range(inflated_bytes // len(zeros)):
        parts.append(packer.compress(zeros))
    parts.append(packer.flush())
    meta = pydicom.filebase.DicomBytesIO()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    pydicom.filewriter.write_file_meta_info(meta, ds.file_meta)
    return b"\0" * 128 + b"DICM" + meta.getvalue() + b"".join(parts)


def conformant_dx(pixels: np.ndarray) -> bytes:
    """A Digital X-Ray (For Presentation) file that dciodvfy passes without an error: every Type 1 and 2
    attribute of the IOD, with a made-up patient (IDENTIFYING_STRINGS) and an acquisition context."""
    ds = make_dataset(pixels, bits=8, window=True)
    del ds.RequestAttributesSequence
    ds.PatientSex, ds.Manufacturer, ds.ImageType = "F", "ACME", ["ORIGINAL", "PRIMARY"]
    ds.PresentationIntentType, ds.ImageLaterality, ds.PatientOrientation = "FOR PRESENTATION", "U", ["L", "F"]
    ds.BodyPartExamined = "CHEST"
    chest = Dataset()
    chest.CodeValue, chest.CodingSchemeDesignator, chest.CodeMeaning = "51185008", "SCT", "Thoracic structure"
    ds.AnatomicRegionSequence = Sequence([chest])
    ds.PixelIntensityRelationship, ds.PixelIntensityRelationshipSign = "LIN", 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "US"
    ds.PresentationLUTShape, ds.LossyImageCompression, ds.DetectorType = "IDENTITY", "00", "SCINTILLATOR"
    ds.PositionerType, ds.AcquisitionContextSequence = "NONE", Sequence([])
    ds.KVP, ds.ExposureTime = "120", "10"  # acquisition facts a detector writes, not in the kept list
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
