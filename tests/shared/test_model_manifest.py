import json
import shutil

import pytest

from shared.model.labels import LABELS
from shared.model.manifest import ArtifactError, read_manifest


def _copy(tiny_model, tmp_path):
    target = tmp_path / "artifact"
    shutil.copytree(tiny_model, target)
    return target


def _edit(path, **changes):
    data = json.loads((path / "manifest.json").read_text())
    data.update(changes)
    (path / "manifest.json").write_text(json.dumps(data))


def test_a_fresh_artifact_reads_back(tiny_model):
    manifest = read_manifest(tiny_model)
    assert manifest.labels == LABELS and manifest.input_size == (64, 64)
    assert not manifest.trained and "untrained" in manifest.warning


def test_missing_folder_or_file_says_how_to_fix_it(tmp_path, tiny_model):
    with pytest.raises(ArtifactError, match="xray-model init"):
        read_manifest(tmp_path / "nowhere")
    target = _copy(tiny_model, tmp_path)
    (target / "model.keras").unlink()
    with pytest.raises(ArtifactError, match="has no model.keras"):
        read_manifest(target)


def test_manifest_that_does_not_belong_to_its_model_is_refused(tmp_path, tiny_model):
    target = _copy(tiny_model, tmp_path)
    _edit(target, version="sha256-0000000000000000")
    with pytest.raises(ArtifactError, match="does not match its manifest"):
        read_manifest(target)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"labels": list(LABELS[:-1])}, "missing: \\['No Finding'\\]"),
        ({"labels": list(LABELS[:-1]) + ["Covid"]}, "unknown: \\['Covid'\\]"),
        ({"thresholds": {label: 1.5 for label in LABELS}}, "strictly between 0 and 1"),
        ({"preprocessing": "imagenet-caffe"}, "preprocessing"),
        ({"input_size": [64]}, "input_size"),
    ],
)
def test_inconsistent_manifests_are_refused(tmp_path, tiny_model, changes, message):
    target = _copy(tiny_model, tmp_path)
    _edit(target, **changes)
    with pytest.raises(ArtifactError, match=message):
        read_manifest(target, verify_hash=False)
    (target / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        read_manifest(target)


def test_rewriting_a_manifest_keeps_its_input_gate(tmp_path, tiny_model):
    """`xray-model optimize` rewrites the manifest; the gate's version and figures must stay beside the model."""
    import dataclasses

    from shared.model.manifest import write_manifest

    target = _copy(tiny_model, tmp_path)
    _edit(target, input_gate={"version": "gate-0123456789abcdef", "held_out": {"figures": {}}})
    manifest = read_manifest(target)
    write_manifest(target, dataclasses.replace(manifest, runtimes={"checked": True}))
    again = read_manifest(target)
    assert again.input_gate["version"] == "gate-0123456789abcdef" and again.runtimes == {"checked": True}
