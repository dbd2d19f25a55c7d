"""Run by the backend tests in a fresh process (Keras picks its backend at import): the engine's
probabilities and maps for images, under whatever KERAS_BACKEND says, saved as .npz."""
import sys
from pathlib import Path

from worker.backends import backend, prepare_environment

prepare_environment()
import numpy as np  # noqa: E402

from shared.imaging.images import decode_image  # noqa: E402
from worker.artifact import load_artifact  # noqa: E402
from worker.engine import InferenceEngine  # noqa: E402


def main(artifact: str, out: str, *images: str) -> None:
    model, manifest = load_artifact(Path(artifact))
    engine = InferenceEngine(model, manifest, max_batch=8)
    results = engine.analyse([decode_image(Path(p).read_bytes(), 10**8) for p in images])
    np.savez(out, backend=backend(), labels=np.array(manifest.labels),
             probabilities=np.array([[r.probabilities[label] for label in manifest.labels] for r in results]),
             maps=np.array([[r.heatmaps[label] for label in manifest.labels] for r in results]))


if __name__ == "__main__":
    main(*sys.argv[1:])
