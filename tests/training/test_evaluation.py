"""``xray-model evaluate``: other systems' CSVs with fewer labels, clear refusals, no Keras for a CSV."""
import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from shared.model.labels import LABELS, NO_FINDING
from tests.helpers import FIXTURES, REPO
from training.cli import main

HEADER = "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position\n"
FINDINGS = [label for label in LABELS if label != NO_FINDING]  # what a CheXNet-style system predicts
ROWS = ["Cardiomegaly|Effusion", "No Finding", "Mass", "Atelectasis|Mass", "No Finding"]


def _labels_csv(tmp_path, count=50):
    names = [f"{i:08d}_000.png" for i in range(count)]
    text = HEADER + "".join(f"{n},{ROWS[i % len(ROWS)]},0,{i // 2},50,M,PA\n" for i, n in enumerate(names))
    (tmp_path / "labels.csv").write_text(text)
    return names, tmp_path / "labels.csv"


def _predictions_csv(path, names, columns, extra=None):
    """prob_ columns for ``columns`` (weakly right, so AUROCs are neither 0.5 nor 1), plus extra columns."""
    rng = np.random.default_rng(1)
    extra = extra or {}
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Image Index"] + [f"prob_{c}" for c in columns] + list(extra))
        for i, name in enumerate(names):
            truth = set(ROWS[i % len(ROWS)].split("|"))
            writer.writerow([name] + [f"{rng.random() * 0.8 + 0.2 * (c in truth):.6f}" for c in columns]
                            + list(extra.values()))
    return path


def test_a_chexnet_style_csv_is_scored_on_the_labels_it_has(tmp_path, capsys):
    names, labels = _labels_csv(tmp_path)
    predictions = _predictions_csv(tmp_path / "chexnet.csv", names, FINDINGS, extra={"model_version": "v1"})
    main(["evaluate", "--labels", str(labels), "--predictions", str(predictions), "--bootstrap", "50",
          "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert "50 images (25 patients)" in out
    assert "not scored (no prob_<Label> column in the predictions): No Finding" in out
    assert "scored 14 of 15 labels" in out and "ignored column(s)" in out and "model_version" in out
    assert "| No Finding |" not in out and "| Mass |" in out

    result = json.loads((tmp_path / "r.json").read_text())
    assert result["labels_missing"] == [NO_FINDING] and result["columns_ignored"] == ["model_version"]
    assert list(result["per_label"]) == FINDINGS
    assert result["labels_scored"] == ["Atelectasis", "Cardiomegaly", "Effusion", "Mass"]  # those with positives
    # The mean is over the scored labels only, each AUROC as scikit-learn computes it.
    table = np.loadtxt(predictions, delimiter=",", skiprows=1, usecols=range(1, 15))
    truth = [set(ROWS[i % len(ROWS)].split("|")) for i in range(len(names))]
    expected = [roc_auc_score([label in t for t in truth], table[:, FINDINGS.index(label)])
                for label in result["labels_scored"]]
    assert result["mean_auroc"] == pytest.approx(np.mean(expected), abs=1e-9)
    assert f"mean AUROC {np.mean(expected):.3f} over 4 label(s) with positives" in out


@pytest.mark.parametrize("header, message", [
    (["name", "prob_Mass"], "lacks the column 'Image Index'"),
    (["Image Index", "score_Mass", "Mass"], "no prediction column: expected one or more of"),
])
def test_a_csv_without_image_names_or_any_prediction_is_refused(tmp_path, header, message):
    names, labels = _labels_csv(tmp_path, 5)
    with open(tmp_path / "p.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([[name] + ["0.5"] * (len(header) - 1) for name in names])
    with pytest.raises(SystemExit, match=message):
        main(["evaluate", "--labels", str(labels), "--predictions", str(tmp_path / "p.csv")])


def test_scoring_a_csv_imports_neither_tensorflow_nor_keras(tmp_path):
    names, labels = _labels_csv(tmp_path, 20)
    predictions = _predictions_csv(tmp_path / "p.csv", names, FINDINGS)
    script = (
        "import sys\n"
        "from training.cli import main\n"
        f"main(['evaluate', '--labels', {str(labels)!r}, '--predictions', {str(predictions)!r}, '--bootstrap', '20'])\n"
        "print('heavy:', sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "20 images" in run.stdout and "heavy: []" in run.stdout


def test_a_model_is_evaluated_on_a_folder_of_images(tmp_path, tiny_model, capsys):
    main(["evaluate", "--labels", str(FIXTURES / "nih64" / "labels.csv"), "--model", str(tiny_model),
          "--images", str(FIXTURES / "nih64"), "--bootstrap", "20", "--json", str(tmp_path / "r.json")])
    assert "tiny-test-model" in capsys.readouterr().out
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["images"] == 4 and result["labels_missing"] == [] and list(result["per_label"]) == list(LABELS)
    assert result["labels_scored"] == ["Cardiomegaly", NO_FINDING]  # the two labels with positives there
