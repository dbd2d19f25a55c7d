"""The committed starter model: servable, honest about itself, small."""
import json

import numpy as np

from shared.model.labels import LABELS
from shared.model.manifest import read_manifest
from shared.ops.config import REPO_ROOT, load_settings
from tests.helpers import FIXTURES
from worker.artifact import load_artifact

STARTER = REPO_ROOT / "models" / "starter"


def test_the_default_model_is_the_committed_trained_starter(monkeypatch):
    monkeypatch.delenv("XRAY_MODEL_DIR", raising=False)
    assert load_settings().model_dir == STARTER
    manifest = read_manifest(STARTER)
    assert manifest.trained and manifest.labels == LABELS
    assert sum(p.stat().st_size for p in STARTER.iterdir()) < 20 * 1024 * 1024


def test_the_model_card_reports_the_manifests_held_out_scores():
    manifest = json.loads((STARTER / "manifest.json").read_text())
    card = (STARTER / "MODEL_CARD.md").read_text()
    test = manifest["metrics"]["test"]
    assert f"{test['mean_auroc']:.3f}" in card
    low, high = test["mean_auroc_ci"]
    assert f"{low:.3f}" in card and f"{high:.3f}" in card
    assert "not for diagnosis" in card.lower()
    assert manifest["training"]["split"]["test"]["patients"] > 0


def test_the_starter_model_analyses_a_real_xray():
    from shared.imaging.images import decode_image
    from worker.engine import InferenceEngine

    model, manifest = load_artifact(STARTER)
    engine = InferenceEngine(model, manifest)
    grey = decode_image((FIXTURES / "nih64" / "00000001_000.png").read_bytes(), 10**6)
    analysis = engine.analyse([grey])[0]
    assert set(analysis.probabilities) == set(LABELS)
    assert all(0.0 < p < 1.0 for p in analysis.probabilities.values())
    assert engine.fast_cam and all(np.isfinite(m).all() for m in analysis.heatmaps.values())


def test_the_starter_card_puts_the_baseline_operating_points_and_gate_beside_every_figure():
    """The served starter (the k-fold ensemble): exact maps, and its card states the baseline, the paired
    difference, calibration, the findings not better than chance, the operating points and the input gate."""
    from worker.engine import has_gap_dense_head

    manifest = json.loads((STARTER / "manifest.json").read_text())
    card = (STARTER / "MODEL_CARD.md").read_text()
    for split in ("test", "external"):
        model, baseline = manifest["metrics"][split], manifest["training"]["baseline"][split]
        assert f"{model['mean_auroc']:.3f}" in card and f"{baseline['mean_auroc']:.3f}" in card
        assert f"{manifest['training']['calibration'][split]['mean_ece_after']:.3f}" in card
        paired = manifest["training"]["baseline"][split]["model_minus_baseline"]
        assert f"95% CI {paired['ci_low']:+.3f} to {paired['ci_high']:+.3f}" in card  # the difference's own interval
    assert "for trying the service only" in card.lower() and "not better than chance here" in card.lower()
    assert "+0.05" not in card and "meets it" not in card  # the old "0.05 over the baseline" bar is gone
    points = manifest["operating_points"]
    assert points["target_specificity"] == 0.9 and set(points["per_label"]) == set(LABELS)
    flagged = points["findings_per_image"]["external"]
    assert flagged["flagged"] < points["previous"]["findings_per_image"]["external"]["flagged"]
    assert f"{flagged['flagged']:.2f}" in card
    gate = manifest["input_gate"]
    assert (STARTER / gate["file"]).is_file() and f"`{gate['version']}`" in card
    assert gate["held_out"]["figures"]["not_xrays_gated"]["share"] >= 0.95
    model, loaded = load_artifact(STARTER)
    assert has_gap_dense_head(model, loaded.cam_layer, loaded.logits_layer)
