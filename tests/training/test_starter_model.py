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


def test_the_candidate_ensemble_card_puts_the_baseline_beside_every_figure():
    """The k-fold ensemble kept beside the starter: servable with exact maps, and its card states the
    baseline, the calibration, the findings not better than chance and the starter bar honestly."""
    from worker.engine import has_gap_dense_head

    candidate = REPO_ROOT / "models" / "candidate-ensemble-64"
    manifest = json.loads((candidate / "manifest.json").read_text())
    card = (candidate / "MODEL_CARD.md").read_text()
    for split in ("test", "external"):
        model, baseline = manifest["metrics"][split], manifest["training"]["baseline"][split]
        assert f"{model['mean_auroc']:.3f}" in card and f"{baseline['mean_auroc']:.3f}" in card
        assert f"{manifest['training']['calibration'][split]['mean_ece_after']:.3f}" in card
        paired = manifest["training"]["baseline"][split]["model_minus_baseline"]
        assert f"95% CI {paired['ci_low']:+.3f} to {paired['ci_high']:+.3f}" in card  # the difference's own interval
    assert "for trying the service only" in card.lower() and "not better than chance here" in card.lower()
    external = manifest["metrics"]["external"]["mean_auroc"]
    meets = external >= manifest["training"]["baseline"]["external"]["mean_auroc"] + 0.05
    assert ("this model meets it" in card) == meets
    model, loaded = load_artifact(candidate)
    assert has_gap_dense_head(model, loaded.cam_layer, loaded.logits_layer)
    assert sum(p.stat().st_size for p in candidate.iterdir()) < 20 * 1024 * 1024
