"""The registry's own rules (shared/model/registry.py) on Postgres and SQLite: what a push stores and refuses
(archives that escape their folder, links, bombs, foreign labels, a changed version), aliases, resolution for a
batch, deletion. The worker's arrival check and the HTTP side are in tests/web/test_registry.py."""
from __future__ import annotations

import io
import json
import shutil
import tarfile

import pytest

from shared.model import registry
from shared.model.manifest import read_manifest
from tests.helpers import ensure_user


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    from training.untrained import init_model

    folder = tmp_path_factory.mktemp("artifact") / "m"
    init_model("small-cnn", 64, "none", folder, name="registry-unit")
    return folder


def _tar(entries) -> bytes:
    """entries: (name, bytes | None for a symlink to /etc/passwd)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _store(db, storage, data, max_bytes=10**9):
    with db.session() as session:
        row, created = registry.store(session, storage, data, None, max_bytes)
        return row.version, row.status, created


def test_a_push_is_stored_by_content_once_and_never_changes(db, tmp_path, artifact):
    storage = tmp_path / "storage"
    version, status, created = _store(db, storage, registry.pack(artifact))
    assert (status, created) == ("verifying", True) and version == read_manifest(artifact).version
    stored = registry.version_dir(storage, version)
    assert registry.folder_sha256(stored) == registry.folder_sha256(artifact)
    assert _store(db, storage, registry.pack(artifact))[2] is False  # the same folder again: nothing new
    changed = tmp_path / "changed"
    shutil.copytree(artifact, changed)
    (changed / "notes.txt").write_text("other contents under the same version")
    with pytest.raises(registry.RegistryError, match="never changes") as refused:
        _store(db, storage, registry.pack(changed))
    assert refused.value.status == 409
    assert not list((storage / "models").glob(".push-*"))  # nothing left over from the refused push


@pytest.mark.parametrize("entries, status, message", [
    ([("../escape.txt", b"x")], 400, "could not be unpacked"),
    ([("/abs.txt", b"x")], 422, "no manifest.json"),  # the leading / is dropped: it lands inside, harmless
    ([("link", None)], 400, "not a plain file"),
    ([("a.bin", b"\0" * 4096)], 413, "more than"),
    ([("model.keras", b"not a model")], 422, "no manifest.json"),
])
def test_archives_that_escape_link_explode_or_lack_a_manifest_are_refused(db, tmp_path, entries, status, message):
    with pytest.raises(registry.RegistryError, match=message) as refused:
        _store(db, tmp_path / "storage", _tar(entries), max_bytes=1024)
    assert refused.value.status == status
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "storage" / "escape.txt").exists()
    assert not list((tmp_path / "storage" / "models").iterdir())  # nothing kept of a refused push


def test_not_a_tar_and_foreign_labels_are_refused(db, tmp_path, artifact):
    with pytest.raises(registry.RegistryError, match="not a tar archive"):
        _store(db, tmp_path / "s", b"PK\x03\x04 a zip file")
    foreign = tmp_path / "foreign"
    shutil.copytree(artifact, foreign)
    manifest = json.loads((foreign / "manifest.json").read_text())
    manifest["labels"] = manifest["labels"][::-1]
    (foreign / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(registry.RegistryError, match="labels") as refused:
        _store(db, tmp_path / "s", registry.pack(foreign))
    assert refused.value.status == 422


def test_aliases_resolution_and_deletion(db, tmp_path, artifact):
    storage = tmp_path / "storage"
    version, _, _ = _store(db, storage, registry.pack(artifact))
    with db.session() as session:
        assert registry.resolve_for_batch(session, None) is None  # no default: the workers' own folder
        with pytest.raises(registry.RegistryError, match="ready version") as refused:
            registry.move_alias(session, "default", version, None)  # still verifying
        assert refused.value.status == 409
        registry.finish_check(session, version, None)
    with db.session() as session:
        before, alias = registry.move_alias(session, "default", version, None)
        assert before is None and alias.version == version
        assert registry.resolve_for_batch(session, None).version == version
        assert registry.resolve_for_batch(session, version[:12]).version == version  # a unique prefix
        assert registry.lookup(session, "default").version == version
        for bad in ("Bad Name", "x" * 41, ""):
            with pytest.raises(registry.RegistryError):
                registry.move_alias(session, bad, version, None)
        with pytest.raises(registry.RegistryError, match="share"):
            registry.move_alias(session, "shadow", version, None, share=1.5)
        with pytest.raises(registry.RegistryError, match="only the shadow"):
            registry.move_alias(session, "candidate", version, None, share=0.5)
        assert registry.move_alias(session, "shadow", version, None)[1].share == 0.1
        with pytest.raises(registry.RegistryError) as unknown:
            registry.lookup(session, "nothing-named-so")
        assert unknown.value.status == 404
        with pytest.raises(registry.RegistryError, match="point at it") as in_use:
            registry.delete(session, storage, version)
        assert in_use.value.status == 409
        registry.remove_alias(session, "default")
        registry.remove_alias(session, "shadow")
        ensure_user(session)
    with db.session() as session:
        registry.delete(session, storage, version)
    assert not registry.version_dir(storage, version).exists()
