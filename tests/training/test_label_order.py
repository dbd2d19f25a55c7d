"""Label order end to end on a constructed case: images whose only signal is a bright disc where the heart
is (labelled Cardiomegaly) or a bright band at the bottom (Effusion) go through the k-fold pipeline, the
exported ensemble and the worker's engine; the served probabilities and maps must name the right findings."""
import csv

import numpy as np
import pytest

from shared.model.labels import LABELS
from tests.helpers import png_bytes
from training.train import TrainConfig

SIDE = 64


def _image(kind: str, rng) -> np.ndarray:
    pixels = rng.normal(90, 12, (SIDE, SIDE))
    yy, xx = np.mgrid[:SIDE, :SIDE]
    if kind == "Cardiomegaly":
        pixels[(yy - 36) ** 2 + (xx - 28) ** 2 < 14 ** 2] += 120
    elif kind == "Effusion":
        pixels[48:, :] += 120
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _write_dataset(folder, count=90, seed=0):
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    kinds = ["Cardiomegaly", "Effusion", "No Finding"]
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Image Index", "Finding Labels", "Patient ID"])
        for n in range(count):
            kind = kinds[n % 3]
            name = f"{n:08d}_000.png"
            (folder / "images" / name).write_bytes(png_bytes(_image(kind, rng)))
            writer.writerow([name, kind, str(n)])


@pytest.mark.slow
def test_constructed_findings_come_out_under_their_own_names(tmp_path, own_pg_url):
    from shared.ops.config import load_settings
    from training.pipeline import run_training
    from worker.runtime import build_context

    _write_dataset(tmp_path / "data")
    config = TrainConfig(arch="small-cnn", input_size=32, width=8, epochs=12, batch_size=16, patience=12,
                         learning_rate=3e-3, augment=False, folds=2)
    results = run_training(config, out=tmp_path / "artifact", name="constructed", images=tmp_path / "data" / "images",
                           labels=tmp_path / "data" / "labels.csv", split_fractions=(0.6, 0.2, 0.2), bootstrap=20,
                           progress=False)
    for label in ("Cardiomegaly", "Effusion"):
        assert results["test"]["per_label"][label]["auroc"] > 0.9, label

    ctx = build_context(load_settings(database_url=own_pg_url, model_dir=tmp_path / "artifact",
                                      storage_dir=tmp_path / "s"))
    assert ctx.engine.fast_cam
    rng = np.random.default_rng(99)
    heart, effusion, normal = ctx.engine.analyse([_image(k, rng) for k in ("Cardiomegaly", "Effusion", "No Finding")])
    # Swapped or shifted outputs would put each finding's evidence under the other's name.
    for finding, image in (("Cardiomegaly", heart), ("Effusion", effusion)):
        others = [other for other in (heart, effusion, normal) if other is not image]
        assert all(image.probabilities[finding] > other.probabilities[finding] for other in others), finding
    # The Effusion map of the ensemble (the mean of its members' maps) lies on the bright band.
    effusion_map = effusion.heatmaps["Effusion"]
    rows = effusion_map.shape[0]
    assert effusion_map[2 * rows // 3:].mean() > effusion_map[:rows // 3].mean()
    assert set(effusion.probabilities) == set(LABELS)
