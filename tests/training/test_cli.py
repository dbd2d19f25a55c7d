"""The xray-model command: predict → CSV → evaluate, hobby import, clear errors."""
import csv

import keras
import numpy as np
import pytest

from shared.model.labels import LABELS
from tests.helpers import FIXTURES
from training.cli import main
from training.hobby import HOBBY_LABELS, import_hobby_model
from training.predictions import COLUMNS, read_csv, write_csv

HEADER = "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position\n"


def _labels_csv(tmp_path, names):
    rows = ["Cardiomegaly|Effusion", "No Finding", "Mass", "No Finding"]
    text = HEADER + "".join(f"{n},{rows[i % 4]},0,{i},50,M,PA\n" for i, n in enumerate(names))
    (tmp_path / "labels.csv").write_text(text)
    return tmp_path / "labels.csv"


def test_a_predictions_csv_round_trips_through_evaluate(tmp_path, capsys):
    names = [f"{i:08d}_000.png" for i in range(40)]
    labels = _labels_csv(tmp_path, names)
    rng = np.random.default_rng(0)
    probabilities = rng.random((40, 15))
    cardiomegaly = LABELS.index("Cardiomegaly")
    probabilities[::4, cardiomegaly] += 1.0  # perfectly ranks the Cardiomegaly rows
    probabilities = probabilities / probabilities.max()
    write_csv(tmp_path / "p.csv", names, probabilities)
    read = read_csv(tmp_path / "p.csv")
    assert read.names == names and np.allclose(read.probabilities, probabilities, atol=1e-6)
    assert read.labels == LABELS and read.missing_labels == () and read.ignored_columns == ()
    with open(tmp_path / "p.csv") as handle:
        assert next(csv.reader(handle)) == COLUMNS

    main(["evaluate", "--labels", str(labels), "--predictions", str(tmp_path / "p.csv"), "--bootstrap", "50",
          "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert "40 images (40 patients)" in out and "| Cardiomegaly | 10 | 1.000 |" in out
    import json

    result = json.loads((tmp_path / "r.json").read_text())
    assert result["per_label"]["Cardiomegaly"]["auroc"] == 1.0
    assert set(result["labels_scored"]) == {"Cardiomegaly", "Effusion", "Mass", "No Finding"}
    assert result["labels_missing"] == [] and "not scored" not in out


def test_evaluate_refuses_predictions_for_unlabelled_images(tmp_path):
    labels = _labels_csv(tmp_path, ["a.png"])
    write_csv(tmp_path / "p.csv", ["a.png", "zzz.png"], np.full((2, 15), 0.5))
    with pytest.raises(SystemExit, match="not in"):
        main(["evaluate", "--labels", str(labels), "--predictions", str(tmp_path / "p.csv")])


def test_predict_writes_one_row_per_image(tmp_path, tiny_model):
    main(["predict", "--model", str(tiny_model), "--images", str(FIXTURES / "nih64"), "--out", str(tmp_path / "p.csv")])
    read = read_csv(tmp_path / "p.csv")
    assert sorted(read.names) == sorted(p.name for p in (FIXTURES / "nih64").glob("*.png"))
    probabilities = read.probabilities
    assert probabilities.shape == (4, 15) and ((0 <= probabilities) & (probabilities <= 1)).all()


def _hobby_style_model():
    """Shaped like the hobby notebook's: a nested base, GAP, Dense(15, sigmoid), 224×224 in [0, 1]."""
    keras.utils.set_random_seed(0)
    base_in = keras.Input((224, 224, 3))
    base = keras.Model(base_in, keras.layers.Conv2D(4, 7, strides=8, activation="relu")(base_in), name="base")
    model = keras.Sequential([keras.Input((224, 224, 3)), base, keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(15, activation="sigmoid")])
    dense = model.layers[-1]
    kernel, bias = dense.get_weights()
    bias[:] = -4.0
    bias[HOBBY_LABELS.index("Pneumothorax")] = 4.0  # the notebook's output 14
    dense.set_weights([kernel * 0.01, bias])
    return model


def test_an_imported_hobby_model_names_its_findings_right(tmp_path, own_pg_url):
    from shared.imaging.images import decode_image
    from shared.ops.config import load_settings
    from worker.runtime import build_context

    hobby = _hobby_style_model()
    hobby.save(tmp_path / "hobby.keras")
    manifest = import_hobby_model(tmp_path / "hobby.keras", tmp_path / "imported")
    assert manifest.labels == HOBBY_LABELS and manifest.preprocessing == "unit"
    assert set(manifest.thresholds.values()) == {0.4} and manifest.input_size == (224, 224)

    ctx = build_context(load_settings(database_url=own_pg_url, model_dir=tmp_path / "imported", storage_dir=tmp_path / "s"))
    grey = decode_image((FIXTURES / "nih64" / "00000001_000.png").read_bytes(), 10**6)
    analysis = ctx.engine.analyse([grey])[0]
    assert max(analysis.probabilities, key=analysis.probabilities.get) == "Pneumothorax"
    assert ctx.engine.fast_cam and np.isfinite(analysis.heatmaps["Pneumothorax"]).all()
    # Same numbers as the notebook's model, label by label.
    x = ctx.engine.preprocess(grey)[None]
    original = np.asarray(hobby(x))[0]
    for index, label in enumerate(HOBBY_LABELS):
        assert analysis.probabilities[label] == pytest.approx(float(original[index]), abs=1e-5)


def test_offline_kaggle_download_fails_with_a_clear_message(monkeypatch, tmp_path):
    import kagglehub

    def offline(handle, *args, **kwargs):
        raise ConnectionError(f"Failed to resolve 'www.kaggle.com' for {handle}")

    monkeypatch.setattr(kagglehub, "dataset_download", offline)
    with pytest.raises(SystemExit, match="nih-chest-xrays/sample.*network access"):
        main(["train", "--kaggle", "sample", "--out", str(tmp_path / "x")])


def test_an_external_set_without_its_labels_is_refused_before_training(tmp_path):
    with pytest.raises(SystemExit, match="needs both --external-images and --external-labels"):
        main(["train", "--images", str(tmp_path), "--labels", str(tmp_path / "l.csv"),
              "--external-images", str(tmp_path), "--out", str(tmp_path / "x")])


def test_cv_only_prints_out_of_fold_figures_beside_the_baseline_and_writes_no_artifact(tmp_path, capsys):
    import json

    from tests.training.test_label_order import _write_dataset

    _write_dataset(tmp_path / "data", count=60)
    main(["train", "--images", str(tmp_path / "data" / "images"), "--labels", str(tmp_path / "data" / "labels.csv"),
          "--input-size", "32", "--width", "4", "--epochs", "2", "--patience", "2", "--no-augment", "--folds", "2",
          "--patient-weighting", "--cv-only", "--json", str(tmp_path / "cv.json")])
    out = capsys.readouterr().out
    assert "| finding | positive patients | model | baseline |" in out and "Out-of-fold AUROC over" in out
    result = json.loads((tmp_path / "cv.json").read_text())
    assert result["folds"] == 2 and len(result["epochs_run"]) == 2
    assert result["images"] < 60  # the test patients were kept out
    # The bright disc is linear in the pixels: the baseline, scored on the same folds, finds it.
    assert result["per_label"]["Cardiomegaly"]["baseline"] > 0.9
    assert 0.0 <= result["model_mean_auroc"] <= 1.0
    assert not list(tmp_path.glob("*/manifest.json"))


def test_train_needs_an_out_folder_unless_it_only_cross_validates(tmp_path):
    with pytest.raises(SystemExit, match="--out"):
        main(["train", "--images", str(tmp_path), "--labels", str(tmp_path / "l.csv")])
    with pytest.raises(SystemExit, match="give --folds"):
        main(["train", "--images", str(tmp_path), "--labels", str(tmp_path / "l.csv"), "--cv-only"])
