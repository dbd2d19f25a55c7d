"""An NIH-style label file (``Image Index``, ``Finding Labels`` joined by ``|``; optional ``Patient ID``,
``Patient Age``, ``Patient Gender``, ``View Position``) read from an upload: every problem is a
LabelFileError whose message says which line and why, for a 400."""
from __future__ import annotations

import csv
import dataclasses
import io
import re

from shared.imaging.privacy import clean_filename
from shared.model.labels import LABELS, NO_FINDING

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 200_000
REQUIRED = ("Image Index", "Finding Labels")
_AGE = re.compile(r"^\s*0*(\d{1,3})\s*([YyMmDdWw]?)\s*$")  # 58, 058Y (DICOM age strings)


class LabelFileError(ValueError):
    """The label file cannot be read; the message says where and why."""


@dataclasses.dataclass(frozen=True)
class TruthRow:
    image_index: str
    labels: tuple[str, ...]  # in LABELS order; (NO_FINDING,) when nothing is present
    patient_id: str | None
    age: int | None
    sex: str | None
    view: str | None


def _labels(text: str, line: int) -> tuple[str, ...]:
    found = {part.strip() for part in (text or "").split("|") if part.strip()}
    unknown = found - set(LABELS)
    if unknown:
        shown = ", ".join(sorted(u[:40] for u in unknown)[:5])
        raise LabelFileError(f"line {line}: unknown finding(s) {shown}; known: {', '.join(LABELS)}")
    if not found:
        raise LabelFileError(f"line {line}: 'Finding Labels' is empty (write 'No Finding' for none)")
    if NO_FINDING in found and len(found) > 1:
        raise LabelFileError(f"line {line}: 'No Finding' together with findings")
    return tuple(label for label in LABELS if label in found)


def _age(text: str | None, line: int) -> int | None:
    if not text or not text.strip():
        return None
    match = _AGE.match(text)
    if not match or match.group(2).upper() not in ("", "Y"):
        raise LabelFileError(f"line {line}: 'Patient Age' must be years (58 or 058Y), got {text[:20]!r}")
    age = int(match.group(1))
    if age > 130:
        raise LabelFileError(f"line {line}: 'Patient Age' {age} is not an age in years")
    return age


def _sex(text: str | None, line: int) -> str | None:
    value = (text or "").strip().upper()
    if value in ("", "O", "U"):
        return None
    if value not in ("M", "F"):
        raise LabelFileError(f"line {line}: 'Patient Gender' must be M or F, got {value[:20]!r}")
    return value


def _view(text: str | None) -> str | None:
    value = re.sub(r"[^A-Z]", "", (text or "").upper())[:8]
    return value or None


def parse(data: bytes) -> list[TruthRow]:
    """Every row of the file; names as the upload stores them (shared.imaging.privacy.clean_filename)."""
    if len(data) > MAX_BYTES:
        raise LabelFileError(f"the label file is larger than {MAX_BYTES // (1024 * 1024)} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LabelFileError("the label file is not UTF-8 text (an NIH-style CSV is expected)") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        fields = [f.strip() for f in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise LabelFileError(f"the label file is not a CSV: {exc}") from None
    missing = [name for name in REQUIRED if name not in fields]
    if missing:
        raise LabelFileError(f"the label file lacks the column(s) {', '.join(missing)}: an NIH-style CSV has "
                             "'Image Index' and 'Finding Labels' (and optionally 'Patient ID', 'Patient Age', "
                             "'Patient Gender', 'View Position')")
    reader.fieldnames = fields
    rows, seen = [], set()
    try:
        for line, row in enumerate(reader, start=2):
            if len(rows) >= MAX_ROWS:
                raise LabelFileError(f"the label file has more than {MAX_ROWS} rows")
            name = clean_filename(row.get("Image Index") or "")
            if name in seen:
                raise LabelFileError(f"line {line}: the image is listed twice")
            seen.add(name)
            patient = (row.get("Patient ID") or "").strip() or None
            rows.append(TruthRow(name, _labels(row.get("Finding Labels"), line), patient,
                                 _age(row.get("Patient Age"), line), _sex(row.get("Patient Gender"), line),
                                 _view(row.get("View Position"))))
    except csv.Error as exc:
        raise LabelFileError(f"the label file is not a readable CSV: {exc}") from None
    if not rows:
        raise LabelFileError("the label file has no rows")
    return rows
