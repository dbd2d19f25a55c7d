"""Which files a command line names: files, folders (searched recursively) and glob patterns; the images
among them, in a stable order."""
from __future__ import annotations

import glob
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom"}
MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".dcm": "application/dicom",
        ".dicom": "application/dicom"}


def collect(arguments: list[str]) -> list[Path]:
    found: list[Path] = []
    for argument in arguments:
        matches = [Path(p) for p in sorted(glob.glob(argument, recursive=True))] or [Path(argument)]
        for path in matches:
            if path.is_dir():
                found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            elif path.is_file():
                found.append(path)
            else:
                raise FileNotFoundError(f"{argument}: no such file, folder or match")
    unique, seen = [], set()
    for path in found:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def mime(path: Path) -> str:
    return MIME.get(path.suffix.lower(), "application/octet-stream")
