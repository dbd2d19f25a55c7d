"""Import a ``.keras`` model made by the original hobby notebook and serve it with correctly named findings.

That notebook's 15 outputs come in its own order (below), it expects 224×224 RGB scaled to [0, 1], and
it used 0.4 as every label's threshold. Its head ends in Dense(15, sigmoid); the service needs logits
for its heatmaps, so the head is rebuilt as Dense(linear) → sigmoid with the same weights.
"""
from __future__ import annotations

from pathlib import Path

import keras

from training.architectures import LOGITS_LAYER
from training.export import export_artifact

HOBBY_LABELS = (
    "Consolidation", "Atelectasis", "Nodule", "Hernia", "Edema", "Effusion", "Cardiomegaly", "Mass",
    "Emphysema", "Fibrosis", "Pleural_Thickening", "No Finding", "Pneumonia", "Infiltration", "Pneumothorax",
)
HOBBY_THRESHOLD = 0.4
FEATURES_LAYER = "hobby_features"


def convert(hobby: keras.Model) -> keras.Model:
    dense = hobby.layers[-1]
    if not isinstance(dense, keras.layers.Dense) or dense.units != len(HOBBY_LABELS):
        raise ValueError(f"expected the last layer to be Dense({len(HOBBY_LABELS)}), received {dense!r}")
    pooling = hobby.layers[-2]
    if not isinstance(pooling, keras.layers.GlobalAveragePooling2D):
        raise ValueError(f"expected GlobalAveragePooling2D before the last Dense layer, received {pooling!r}")
    height, width = hobby.input_shape[1:3]
    if (height, width) != (224, 224):
        raise ValueError(f"the hobby notebook's models take 224×224 input, received {hobby.input_shape}")
    features = keras.Model(hobby.inputs, pooling.input, name="hobby_base")
    inputs = keras.Input((224, 224, 3), name="image")
    # A named identity after the nested base gives the heatmap layer an output in this model's own graph.
    cam = keras.layers.Identity(name=FEATURES_LAYER)(features(inputs))
    pooled = keras.layers.GlobalAveragePooling2D(name="global_average_pooling")(cam)
    logits = keras.layers.Dense(len(HOBBY_LABELS), name=LOGITS_LAYER)(pooled)
    probabilities = keras.layers.Activation("sigmoid", name="probabilities")(logits)
    model = keras.Model(inputs, probabilities, name="hobby_import")
    model.get_layer(LOGITS_LAYER).set_weights(dense.get_weights())
    return model


def import_hobby_model(source: Path, out: Path, name: str = "hobby-notebook-import"):
    hobby = keras.saving.load_model(source, compile=False)
    model = convert(hobby)
    return export_artifact(
        model, out, name=name, architecture="hobby-notebook", preprocessing="unit", labels=HOBBY_LABELS,
        thresholds={label: HOBBY_THRESHOLD for label in HOBBY_LABELS}, cam_layer=FEATURES_LAYER,
        logits_layer=LOGITS_LAYER, trained=True,
        training={"data": "unknown: trained by the original hobby notebook", "source_file": Path(source).name,
                  "note": "imported; not evaluated by this pipeline (run `xray-model evaluate`)"},
    )
