"""``xray-model``: create model artifacts.

    xray-model init --arch xception-transfer --weights imagenet --out models/xception-imagenet
    xray-model init --arch small-cnn --input-size 64 --weights none --out /tmp/tiny   (tests, demos)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shared.labels import LABELS
from shared.model_manifest import ArtifactError, read_manifest


def init_model(arch: str, input_size: int, weights: str, out: Path, name: str | None = None):
    from training.architectures import ARCHITECTURES, LOGITS_LAYER, build_xception_transfer
    from training.export import export_artifact

    builder, cam_layer, preprocessing = ARCHITECTURES[arch]
    if arch == "xception-transfer":
        model = build_xception_transfer(input_size, weights=None if weights == "none" else weights)
    else:
        if weights != "none":
            raise ValueError(f"the {arch} architecture has no pretrained weights; use --weights none")
        model = builder(input_size)
    return export_artifact(
        model,
        out,
        name=name or f"{arch}-untrained",
        architecture=arch,
        preprocessing=preprocessing,
        labels=LABELS,
        thresholds={label: 0.5 for label in LABELS},
        cam_layer=cam_layer,
        logits_layer=LOGITS_LAYER,
        # An ImageNet base with a random head is still untrained for chest X-rays.
        trained=False,
        training={"data": "none", "weights": f"{weights} base, random head" if weights != "none" else "random"},
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="xray-model", description="Create and check model artifacts.")
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="build an untrained model artifact")
    init.add_argument("--arch", choices=["xception-transfer", "small-cnn"], default="xception-transfer")
    init.add_argument("--input-size", type=int, default=299)
    init.add_argument("--weights", default="imagenet", help="'imagenet' (needs network) or 'none'")
    init.add_argument("--out", type=Path, required=True)
    init.add_argument("--name")
    init.add_argument("--if-missing", action="store_true", help="do nothing when --out already holds a valid artifact")
    check = sub.add_parser("check", help="check an artifact folder the way a worker does at start")
    check.add_argument("path", type=Path)
    args = parser.parse_args(argv)

    if args.command == "check":
        try:
            manifest = read_manifest(args.path)
        except ArtifactError as exc:
            sys.exit(f"error: {exc}")
        print(f"{args.path}: {manifest.name} {manifest.version} ({'trained' if manifest.trained else 'UNTRAINED'})")
        return
    if args.if_missing:
        try:
            manifest = read_manifest(args.out)
            print(f"model artifact already present: {args.out} ({manifest.name} {manifest.version})")
            return
        except ArtifactError:
            pass
    try:
        manifest = init_model(args.arch, args.input_size, args.weights, args.out, args.name)
    except Exception as exc:
        sys.exit(f"error: {exc}")
    print(f"wrote {args.out}: {manifest.name} {manifest.version} (untrained: predictions are meaningless)")


if __name__ == "__main__":
    main()
