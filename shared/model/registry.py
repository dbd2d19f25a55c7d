"""The model registry: versions stored by content, immutable, with aliases that say which one serves.

A version is an artifact folder (model.keras, manifest.json, the optimised runtimes, gate.json) pushed as a
tar archive. Its id is the manifest's version (the hash of model.keras); the whole folder's hash is kept
too, so the same id with other contents is refused rather than silently replaced. A pushed version waits
as 'verifying' until a worker has loaded it and predicted on real X-rays (worker/verify.py); only a
'ready' one can serve. Aliases ('default', 'shadow', named ones) point at ready versions; moving one is a
promotion or a rollback: one UPDATE, audited by the caller, and never a change to stored results.

Storage layout: <storage>/models/<version>/... (written once; a worker reads it in place). No TensorFlow here.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import shutil
import tarfile
import tempfile
import uuid
from pathlib import Path

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from shared.db.models import Batch, Job, ModelAlias, ModelVersion, VersionResult, utcnow
from shared.model.labels import LABELS
from shared.model.manifest import MANIFEST_FILE, ArtifactError, read_manifest

DEFAULT, SHADOW = "default", "shadow"
VERIFYING, READY, REJECTED = "verifying", "ready", "rejected"
ALIAS_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
# What a reference may look like: an alias, or a version id (hex, as file_version writes it) or its prefix.
REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,79}$")
MIN_PREFIX = 8


class RegistryError(Exception):
    """A request the registry refuses; ``status`` is the HTTP status that says why."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def models_root(storage_dir: Path) -> Path:
    return Path(storage_dir) / "models"


def version_dir(storage_dir: Path, version: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,80}", version) or version in (".", ".."):
        raise RegistryError(f"not a version id: {version!r}")
    return models_root(storage_dir) / version


def folder_sha256(folder: Path) -> str:
    """One hash over every file's relative path and bytes, in a fixed order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def pack(folder: Path) -> bytes:
    """An artifact folder as the gzipped tar that push sends (files only, paths relative to the folder)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            archive.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return buffer.getvalue()


def _unpack(archive_bytes: bytes, destination: Path, max_bytes: int) -> None:
    """Regular files and folders only, inside destination, at most max_bytes unpacked (a tar bomb stops early)."""
    try:
        archive = tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:*")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise RegistryError(f"the upload is not a tar archive of an artifact folder ({exc})", 400) from None
    total = 0
    with archive:
        members = []
        try:
            for member in archive:
                if not (member.isfile() or member.isdir()):
                    raise RegistryError(f"the archive holds {member.name!r}, which is not a plain file or folder")
                total += member.size
                if total > max_bytes:
                    raise RegistryError(f"the artifact unpacks to more than {max_bytes} bytes", 413)
                members.append(member)
            # filter="data" refuses absolute paths, '..' and anything outside destination (PEP 706).
            archive.extractall(destination, members=members, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise RegistryError(f"the archive could not be unpacked ({exc})", 400) from None


def _artifact_root(unpacked: Path) -> Path:
    """The folder holding manifest.json: the archive's top level, or its single folder."""
    if (unpacked / MANIFEST_FILE).is_file():
        return unpacked
    children = [p for p in unpacked.iterdir()]
    if len(children) == 1 and children[0].is_dir() and (children[0] / MANIFEST_FILE).is_file():
        return children[0]
    raise RegistryError(f"the archive has no {MANIFEST_FILE} at its top (pack the artifact folder itself)", 422)


def static_check(folder: Path) -> str:
    """What can be checked without loading the model: the manifest, its hash, its labels. Returns the version."""
    try:
        manifest = read_manifest(folder)
    except ArtifactError as exc:
        raise RegistryError(f"the artifact is not valid: {exc}", 422) from None
    if tuple(manifest.labels) != tuple(LABELS):
        raise RegistryError(f"the manifest's labels {list(manifest.labels)} are not the service's {list(LABELS)} "
                            "in that order", 422)
    return manifest.version


def store(session: Session, storage_dir: Path, archive_bytes: bytes, uploader: uuid.UUID | None,
          max_bytes: int) -> tuple[ModelVersion, bool]:
    """Unpack, check what can be checked here, and record the version as 'verifying' (a worker finishes the
    check). Returns (row, created). Pushing the same folder again returns the existing row; the same version
    id with different contents is refused (409): a version never changes."""
    root = models_root(storage_dir)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".push-", dir=root))
    try:
        _unpack(archive_bytes, staging, max_bytes)
        folder = _artifact_root(staging)
        version = static_check(folder)
        digest = folder_sha256(folder)
        existing = session.get(ModelVersion, version)
        if existing is not None and existing.folder_sha256 == digest:
            return existing, False
        if existing is not None and existing.stored:
            raise RegistryError(f"version {version} is already registered with other contents; a version never "
                                "changes: re-export the model (its version is its model file's hash)", 409)
        target = version_dir(storage_dir, version)
        if target.exists():
            shutil.rmtree(target)  # a leftover of a push that failed before its row was written
        folder.rename(target)
        manifest = read_manifest(target, verify_hash=False)
        size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
        row = existing or ModelVersion(version=version, registered_at=utcnow(), last_seen_at=utcnow())
        row.name, row.architecture, row.trained = manifest.name, manifest.architecture, manifest.trained
        row.manifest = manifest.to_json()
        row.status, row.reason = VERIFYING, None
        row.folder_sha256, row.size_bytes = digest, size
        row.uploaded_by, row.uploaded_at = uploader, utcnow()
        if existing is None:
            session.add(row)
        session.flush()
        return row, True
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def finish_check(session: Session, version: str, reason: str | None) -> None:
    """The worker's verdict: ready (reason None) or rejected with the reason."""
    row = session.get(ModelVersion, version)
    if row is None:
        return
    row.status, row.reason = (READY, None) if reason is None else (REJECTED, reason[:2000])


def awaiting_check(session: Session, older_than_seconds: float) -> list[str]:
    """Pushed versions still 'verifying' after this long (their check is asked for again)."""
    cutoff = utcnow() - dt.timedelta(seconds=older_than_seconds)
    return list(session.scalars(select(ModelVersion.version).where(ModelVersion.status == VERIFYING,
                                                                   ModelVersion.uploaded_at < cutoff)))


def versions(session: Session) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.registered_at.desc())))


def aliases(session: Session) -> dict[str, ModelAlias]:
    return {row.name: row for row in session.scalars(select(ModelAlias).order_by(ModelAlias.name))}


def lookup(session: Session, reference: str) -> ModelVersion:
    """An alias or a version id (or a unique prefix of at least 8 characters) → the version; 404 otherwise."""
    reference = (reference or "").strip()
    if not REFERENCE.match(reference):  # nothing can be named so: as unknown as any other name
        raise RegistryError("no model version or alias is named so (an alias is letters, digits, '-' and '_'; a "
                            "version id is as `xray models` lists it)", 404)
    alias = session.get(ModelAlias, reference)
    if alias is not None:
        return session.get(ModelVersion, alias.version)
    row = session.get(ModelVersion, reference)
    if row is None and len(reference) >= MIN_PREFIX:
        matches = list(session.scalars(select(ModelVersion).where(ModelVersion.version.startswith(reference,
                                                                                                  autoescape=True)).limit(2)))
        if len(matches) > 1:
            raise RegistryError(f"{reference!r} matches more than one version: give more of its id", 400)
        row = matches[0] if matches else None
    if row is None:
        raise RegistryError(f"no model version or alias is named {reference!r}", 404)
    return row


def resolve_for_batch(session: Session, reference: str | None) -> ModelVersion | None:
    """The version a new batch gets: the one it names (which must be ready), else the 'default' alias's,
    else None (the workers' own model folder serves it, as before the registry)."""
    if reference:
        row = lookup(session, reference)
    else:
        alias = session.get(ModelAlias, DEFAULT)
        if alias is None:
            return None
        row = session.get(ModelVersion, alias.version)
    if row.status != READY:
        raise RegistryError(f"model version {row.version} is {row.status}"
                            + (f": {row.reason}" if row.reason else "") + "; it cannot serve", 409)
    return row


def move_alias(session: Session, name: str, version: str, actor: uuid.UUID | None,
               share: float | None = None) -> tuple[str | None, ModelAlias]:
    """Point alias ``name`` at ``version`` (a ready one); returns (the version it pointed at before, the row).
    One row changes in the caller's transaction: new batches see it at once, stored results never change."""
    if not ALIAS_NAME.match(name or ""):
        raise RegistryError("an alias name is lower-case letters, digits, '-' and '_' (at most 40), starting with a "
                            "letter", 400)
    target = lookup(session, version)
    if target.status != READY:
        raise RegistryError(f"version {target.version} is {target.status}; only a ready version can take an alias",
                            409)
    if name == SHADOW:
        share = 0.1 if share is None else share
        if not 0.0 < share <= 1.0:
            raise RegistryError("the shadow share is a fraction above 0 and at most 1, e.g. 0.1", 400)
    elif share is not None:
        raise RegistryError("only the shadow alias takes a share", 400)
    row = session.get(ModelAlias, name, with_for_update=True)
    before = row.version if row else None
    if row is None:
        row = ModelAlias(name=name, version=target.version, share=share, moved_at=utcnow(), moved_by=actor)
        session.add(row)
    else:
        row.version, row.share, row.moved_at, row.moved_by = target.version, share, utcnow(), actor
    session.flush()
    return before, row


def remove_alias(session: Session, name: str) -> str:
    row = session.get(ModelAlias, name)
    if row is None:
        raise RegistryError(f"there is no alias {name!r}", 404)
    session.delete(row)
    return row.version


def in_use(session: Session, version: str) -> str | None:
    """Why a version cannot be deleted (results or batches name it, or an alias points at it), or None."""
    if session.scalar(select(exists().where(Job.model_version == version))):
        return "results were produced by it (they stay readable, so the version stays)"
    if session.scalar(select(exists().where(Batch.model_version == version))):
        return "batches were submitted to it"
    if session.scalar(select(exists().where(VersionResult.model_version == version))):
        return "shadow or rerun results were produced by it"
    names = list(session.scalars(select(ModelAlias.name).where(ModelAlias.version == version)))
    if names:
        return f"the alias(es) {', '.join(names)} point at it: move them first"
    return None


def delete(session: Session, storage_dir: Path, version: str) -> None:
    row = lookup(session, version)
    reason = in_use(session, row.version)
    if reason:
        raise RegistryError(f"version {row.version} cannot be deleted: {reason}", 409)
    session.delete(row)
    session.flush()
    shutil.rmtree(version_dir(storage_dir, row.version), ignore_errors=True)


def served_counts(session: Session) -> dict[str, int]:
    """Jobs each version produced."""
    return dict(session.execute(select(Job.model_version, func.count()).where(Job.model_version.is_not(None))
                                .group_by(Job.model_version)).all())
