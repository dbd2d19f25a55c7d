"""On-device export: the starter model as TensorFlow Lite (float16, int8), run by the TFLite interpreter
on real X-rays and compared with the Keras model."""
import json
import shutil

import numpy as np
import pytest

from tests.helpers import FIXTURES, REPO, SHARED_DATA

FULLRES = SHARED_DATA / "nih-fullres-sample" / "images"
INT8_BOUND = 0.02  # measured: 0.0045 on the 57 full-resolution images (float16: 0.0008)


@pytest.mark.slow
def test_tflite_variants_agree_with_the_keras_model_on_real_xrays(tmp_path):
    from training.cli import main
    from training.tflite import interpreter, load_inputs, run_tflite
    from worker.artifact import load_artifact

    artifact = tmp_path / "starter"
    shutil.copytree(REPO / "models" / "starter", artifact)
    folder = FULLRES if FULLRES.is_dir() else FIXTURES / "nih64"
    main(["export", "--tflite", str(artifact), "--images", str(folder)])

    report = json.loads((artifact / "tflite.json").read_text())
    assert report["labels"][-1] == "No Finding" and report["input_size"] == [64, 64] and len(report["thresholds"]) == 15
    assert report["resize"]["shrink"].startswith("area") and report["resize"]["working_side"] == 1024
    assert report["resize"]["reference"] == "shared/model/reference_preprocess.py"
    variants = report["variants"]
    assert variants["float16"]["max_abs_probability_difference"] <= 0.01
    assert variants["int8"]["max_abs_probability_difference"] <= INT8_BOUND
    assert variants["int8"]["bytes"] < variants["float16"]["bytes"] < (artifact / "model.keras").stat().st_size

    # Independently of the report: the files on disk, run again, give the Keras probabilities.
    model, manifest = load_artifact(artifact)
    paths = sorted(folder.glob("*.png"))[:8]
    batch = load_inputs(paths, manifest)
    keras_probabilities = model.predict(batch, verbose=0)
    for variant, bound in (("float16", 0.01), ("int8", INT8_BOUND)):
        lite = run_tflite(interpreter((artifact / f"model-{variant}.tflite").read_bytes()), batch)
        assert lite.shape == (len(paths), 15) and np.abs(lite - keras_probabilities).max() <= bound
