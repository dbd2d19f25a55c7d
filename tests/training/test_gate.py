"""Fitting and measuring the input gate: a smaller gate fitted here meets the targets on what it was not
fitted on, held-out groups are never split, and every example is made from files the packages carry."""
import json
import shutil

import numpy as np
import pytest

from shared.model.gate import RESULTS, Gate, Seen
from tests.helpers import REPO, SHARED_DATA
from training.cli import main
from training.gate import Table, _groups_in_folds
from training.gate_data import CHEST, OTHER, TRANSFORMED, TRANSFORMS, Sample, transformed
from training.gate_pictures import sources
from training.gate_synthetic import GENERATORS

FITTED = SHARED_DATA / "nih1000-64px"
FULL = SHARED_DATA / "nih-fullres-sample"


def _needs_shared_data():
    if not (FITTED / "images").is_dir() or not (FULL / "images").is_dir():
        pytest.skip(f"the shared NIH images are not under {SHARED_DATA}: the gate is fitted and measured on real "
                    "X-rays only")


def test_a_smaller_gate_fitted_here_meets_the_targets_on_what_it_was_not_fitted_on(tmp_path, capsys):
    _needs_shared_data()
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    for name in ("model.keras", "manifest.json"):
        shutil.copy(REPO / "models" / "starter" / name, artifact / name)
    model_version = json.loads((artifact / "manifest.json").read_text())["version"]
    main(["gate", str(artifact), "--images", str(FITTED / "images"), "--labels", str(FITTED / "labels.csv"),
          "--external-images", str(FULL / "images"), "--external-labels", str(FULL / "labels.csv"),
          "--folds", "3", "--limit", "300"])
    manifest = json.loads((artifact / "manifest.json").read_text())
    gate = manifest["input_gate"]
    assert manifest["version"] == model_version and gate["version"] == Gate.load(artifact).version
    figures = gate["held_out"]["figures"]
    assert figures["real_xrays_gated"]["of"] == 300 + 57
    assert figures["real_xrays_gated"]["share"] <= 0.01
    assert figures["not_xrays_gated"]["share"] >= 0.95
    assert figures["transformed_xrays_gated"]["share"] >= 0.80
    confusion = gate["held_out"]["confusion"]
    assert confusion["X-ray inverted"]["inverted"] >= 0.9 * sum(confusion["X-ray inverted"].values())
    assert set(gate["external"]["confusion"]) == {"chest X-ray, NIH full resolution (never fitted)", *TRANSFORMS}
    out = capsys.readouterr().out
    assert "real xrays gated" in out and "target at most 1%: met" in out and "wrote" in out


def test_the_command_says_what_is_wrong_with_its_arguments(tmp_path):
    with pytest.raises(SystemExit, match="no folder of X-rays"):
        main(["gate", str(tmp_path), "--images", str(tmp_path / "nowhere"), "--labels", str(tmp_path / "l.csv")])
    with pytest.raises(SystemExit, match="together"):
        main(["gate", str(tmp_path), "--images", str(tmp_path), "--labels", str(tmp_path / "l.csv"),
              "--external-images", str(tmp_path)])
    with pytest.raises(SystemExit, match="has no model.keras|no model artifact"):
        main(["gate", str(tmp_path), "--images", str(tmp_path), "--labels", str(tmp_path / "l.csv")])


def _sample(group: str, family: str) -> Sample:
    return Sample(Seen(np.zeros((64, 64), np.uint8), 0.0, 64, 64), "ok", family, group, family)


def test_a_patients_xrays_and_everything_made_from_them_are_held_out_together():
    samples = [_sample(f"patient {p}", family) for p in range(30) for family in (CHEST, TRANSFORMED, TRANSFORMED)]
    samples += [_sample(f"source {s}", OTHER) for s in range(10) for _ in range(4)]
    table = Table(samples, np.zeros((len(samples), 3)), np.ones(len(samples), bool))
    fold = _groups_in_folds(table, 5, seed=0)
    for group in {s.group for s in samples}:
        assert len({fold[i] for i, s in enumerate(samples) if s.group == group}) == 1, group
    for family in (CHEST, OTHER):  # every fold holds some of each family
        assert {fold[i] for i, s in enumerate(samples) if s.family == family} == set(range(5))


def test_every_real_picture_comes_from_an_installed_package_and_every_example_has_a_result():
    found = sources()
    assert len({source for source, *_ in found}) >= 40
    assert {result for _, _, result, _ in found} == {"not_a_radiograph", "not_a_chest"}
    assert any("phantom" in source for source, *_ in found) and any("CT_small" in source for source, *_ in found)
    for _, _, _, pixels in found:
        assert pixels.dtype == np.uint8 and min(pixels.shape[:2]) >= 32
    rng = np.random.default_rng(0)
    for kind, generate in GENERATORS.items():
        pixels, result = generate(rng)
        assert result in RESULTS and pixels.dtype == np.uint8 and min(pixels.shape[:2]) >= 32, kind
    xray = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1))
    for kind, result in TRANSFORMS.items():
        assert result in RESULTS and transformed(xray, kind, rng).shape[:2] == (64, 64), kind
