"""An export scores as it is: the batch CSV of the 57 real full-resolution NIH X-rays goes straight into
`xray-model evaluate --predictions ... --labels ...` (its `Image Index` and `prob_<Label>` columns), and the
figures equal scoring the same probabilities directly."""
import json

import numpy as np
import pytest

from shared.model.labels import LABELS
from tests.helpers import SHARED_DATA, submit_and_wait

FULLRES = SHARED_DATA / "nih-fullres-sample"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not FULLRES.is_dir(), reason="needs ../shared/data/nih/nih-fullres-sample")]


def test_a_batch_csv_is_scored_by_xray_model_evaluate_as_it_is(pg_client, tmp_path, capsys):
    from training.cli import main
    from training.data import local_dataset
    from training.inputs import targets
    from shared.stats.metrics import evaluate

    images = sorted((FULLRES / "images").glob("*.png"))
    batch = submit_and_wait(pg_client, [(p.name, p.read_bytes()) for p in images], timeout=300)
    assert batch["counts"]["succeeded"] == len(images) == 57
    exported = tmp_path / "batch.csv"
    exported.write_bytes(pg_client.get(batch["downloads"]["csv"]).get_data())
    main(["evaluate", "--predictions", str(exported), "--labels", str(FULLRES / "labels.csv"), "--bootstrap", "200",
          "--json", str(tmp_path / "scores.json")])
    out = capsys.readouterr().out
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert "on 57 images" in out and scores["images"] == 57 and not scores.get("labels_missing")

    # The same probabilities, read from the API, scored directly.
    records = {r.image_index: r for r in local_dataset(FULLRES / "images", FULLRES / "labels.csv")}
    names = [job["filename"] for job in batch["jobs"]]
    probabilities = np.array([[f["probability"] for f in sorted(pg_client.get(job["url"]).get_json()["findings"],
                                                                  key=lambda f: LABELS.index(f["label"]))]
                              for job in batch["jobs"]])
    direct = evaluate(targets([records[n] for n in names]), probabilities, {label: 0.5 for label in LABELS},
                      groups=np.array([records[n].patient_id for n in names]), rounds=200)
    assert scores["mean_auroc"] == pytest.approx(direct["mean_auroc"], abs=1e-3)
