"""An untrained model artifact of any architecture (`xray-model init`): what tests, benchmarks and an
offline first run serve. It is flagged untrained everywhere it is shown."""
from __future__ import annotations

from pathlib import Path

from shared.model.labels import LABELS


def init_model(arch: str, input_size: int, weights: str, out: Path, name: str | None = None):
    from training.architectures import ARCHITECTURES, LOGITS_LAYER, build_xception_transfer
    from training.export import export_artifact

    architecture = ARCHITECTURES[arch]
    if arch == "xception-transfer":
        model = build_xception_transfer(input_size, weights=None if weights == "none" else weights)
    else:
        if weights != "none":
            raise ValueError(f"the {arch} architecture has no pretrained weights; use --weights none")
        model = architecture.build(input_size)
    return export_artifact(
        model,
        out,
        name=name or f"{arch}-untrained",
        architecture=arch,
        preprocessing=architecture.preprocessing,
        labels=LABELS,
        thresholds={label: 0.5 for label in LABELS},
        cam_layer=architecture.cam_layer,
        logits_layer=LOGITS_LAYER,
        # An ImageNet base with a random head is still untrained for chest X-rays.
        trained=False,
        training={"data": "none", "weights": f"{weights} base, random head" if weights != "none" else "random"},
    )
