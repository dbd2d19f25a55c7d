"""``xray-model`` commands on artifact folders: init, check, import-hobby, export (TensorFlow Lite),
optimize (faster runtimes, each checked on real X-rays) and gate (the input gate beside the model)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from shared.model.manifest import ArtifactError, read_manifest
from training.cli.command import Command
from training.data import DataError
from training.untrained import init_model

log = logging.getLogger(__name__)


def _init_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", choices=["xception-transfer", "small-cnn"], default="xception-transfer")
    parser.add_argument("--input-size", type=int, default=299)
    parser.add_argument("--weights", default="imagenet", help="'imagenet' (needs network) or 'none'")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--name")
    parser.add_argument("--if-missing", action="store_true",
                        help="do nothing when --out already holds a valid artifact")


def _init(args) -> None:
    if args.if_missing:
        try:
            manifest = read_manifest(args.out)
            log.info(f"model artifact already present: {args.out} ({manifest.name} {manifest.version})")
            return
        except ArtifactError:
            pass
    try:
        manifest = init_model(args.arch, args.input_size, args.weights, args.out, args.name)
    except Exception as exc:
        sys.exit(f"error: {exc}")
    log.info(f"wrote {args.out}: {manifest.name} {manifest.version} (untrained: predictions are meaningless)")


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path)


def _check(args) -> None:
    manifest = read_manifest(args.path)
    log.info(f"{args.path}: {manifest.name} {manifest.version} ({'trained' if manifest.trained else 'UNTRAINED'})")


def _hobby_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path)
    parser.add_argument("--out", type=Path, required=True)


def _import_hobby(args) -> None:
    from training.hobby import import_hobby_model

    manifest = import_hobby_model(args.source, args.out)
    log.info(f"wrote {args.out}: {manifest.name} {manifest.version} (labels in the notebook's order, threshold 0.4)")


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="the model artifact folder")
    parser.add_argument("--tflite", action="store_true", required=True, help="TensorFlow Lite (float16 and int8)")
    parser.add_argument("--images", type=Path, required=True, help="real X-rays (a folder) for the agreement check")
    parser.add_argument("--limit", type=int, default=64, help="at most this many images for the check")


def _export(args) -> None:
    from training.data import find_images
    from training.tflite import export_tflite

    images = sorted(find_images(args.images).values())[:args.limit]
    report = export_tflite(args.path, images)
    for variant, figures in report["variants"].items():
        log.info(f"{args.path / figures['file']}: {figures['bytes'] / 1024:.0f} kB; on {report['check_images']} real "
                 f"X-rays the probabilities differ from the Keras model's by at most "
                 f"{figures['max_abs_probability_difference']:.4f} "
                 f"(mean {figures['mean_abs_probability_difference']:.5f})")
    log.info(f"labels, thresholds and preprocessing: {args.path / 'tflite.json'}")


def _points_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="the model artifact folder")
    parser.add_argument("--images", type=Path, required=True, help="the images the model was trained on")
    parser.add_argument("--labels", type=Path, required=True, help="their NIH label CSV")
    parser.add_argument("--external-images", type=Path, help="an external set to measure the new thresholds on")
    parser.add_argument("--external-labels", type=Path)
    parser.add_argument("--specificity", type=float, default=0.90, help="the specificity each threshold keeps")
    parser.add_argument("--split", type=float, nargs=3, default=(0.7, 0.15, 0.15), metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--bootstrap", type=int, default=1000)


def _operating_points(args) -> None:
    from training.model_card import write_model_card
    from training.rethreshold import rethreshold

    if bool(args.external_images) != bool(args.external_labels):
        raise DataError("an external set needs both --external-images and --external-labels")
    if not 0.5 <= args.specificity < 1.0:
        raise ValueError(f"--specificity is a target between 0.5 and 1 (e.g. 0.9), got {args.specificity}")
    rethreshold(args.path, args.images, args.labels, specificity=args.specificity,
                external_images=args.external_images, external_labels=args.external_labels,
                fractions=tuple(args.split), bootstrap=args.bootstrap)
    write_model_card(args.path)
    log.info(f"wrote the thresholds and their operating points into {args.path / 'manifest.json'}; "
             f"model card: {args.path / 'MODEL_CARD.md'}")


def _optimize_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="the model artifact folder")
    parser.add_argument("--images", type=Path, required=True,
                        help="real X-rays for the check, e.g. ../shared/data/nih/nih-fullres-sample/images")
    parser.add_argument("--limit", type=int, default=64, help="at most this many images for the check")
    parser.add_argument("--variants", nargs="+", help="only these (default: all)")
    parser.add_argument("--batch-size", type=int, default=16)


def _optimize(args) -> None:
    from training.data import find_images
    from training.optimize import optimize

    if not args.images.is_dir():
        raise DataError(f"no folder of real X-rays at {args.images}: give --images")
    images = sorted(find_images(args.images).values())[:args.limit]
    report = optimize(args.path, images, variants=args.variants, batch_size=args.batch_size)
    log.info(f"checked on {report['check']['images']} real X-rays ({report['check']['source']}); {report['machine']}")
    log.info(f"{report['float32']['runtime']}: {report['float32']['images_per_second']:.1f} images/s (the reference)")
    for name, figures in report["variants"].items():
        if "reason" in figures:
            log.info(f"{name}: not checked: {figures['reason']}")
            continue
        verdict = ("accepted" if figures["accepted"]
                   else "REFUSED (outside the bounds: |Δp| <= 0.01, correlation >= 0.99)")
        log.info(f"{name}: {figures['images_per_second']:.1f} images/s, max |Δp| "
                 f"{figures['max_abs_probability_difference']:.5f}, min map correlation "
                 f"{figures['min_map_correlation']:.5f}: {verdict}")
    log.info(f"written to {args.path / 'manifest.json'} (runtimes); workers with XRAY_RUNTIME=auto serve the fastest "
             "accepted")


def _gate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="the model artifact folder")
    parser.add_argument("--images", type=Path, required=True,
                        help="real frontal chest X-rays to fit on, e.g. ../shared/data/nih/nih1000-64px/images")
    parser.add_argument("--labels", type=Path, required=True, help="their NIH label table (with Patient ID)")
    parser.add_argument("--external-images", type=Path,
                        help="X-rays never fitted on, only measured, e.g. ../shared/data/nih/nih-fullres-sample/images")
    parser.add_argument("--external-labels", type=Path)
    parser.add_argument("--folds", type=int, default=5, help="folds of the held-out measurement")
    parser.add_argument("--limit", type=int, help="fit on at most this many of the X-rays (a quicker, weaker gate)")
    parser.add_argument("--seed", type=int, default=0)


def _gate(args) -> None:
    from training.gate_artifact import GateSources, evaluate, report, write_gate

    for folder in (args.images, args.external_images):
        if folder is not None and not folder.is_dir():
            raise DataError(f"no folder of X-rays at {folder}")
    if (args.external_images is None) != (args.external_labels is None):
        raise DataError("give --external-images and --external-labels together")
    read_manifest(args.path)
    if args.folds < 2:
        raise DataError(f"--folds must be at least 2, received {args.folds}")
    gate, summary = evaluate(GateSources(args.images, args.labels, args.external_images, args.external_labels,
                                         limit=args.limit, seed=args.seed), folds=args.folds)
    write_gate(args.path, gate, summary)
    report(summary)
    if (args.path / "MODEL_CARD.md").is_file():  # the card shows the gate's figures: keep it true
        from training.model_card import write_model_card
        write_model_card(args.path)
    log.info(f"wrote {args.path / 'gate.json'} ({gate.version}) and its figures into {args.path / 'manifest.json'} "
             "(input_gate); the model's version is unchanged")


def _push_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="the model artifact folder (model.keras, manifest.json, ...)")
    parser.add_argument("--url", default=os.environ.get("XRAY_URL", "http://127.0.0.1:8000"),
                        help="the service (default: XRAY_URL or http://127.0.0.1:8000)")
    parser.add_argument("--token", default=os.environ.get("XRAY_TOKEN"), help="an admin's API token (default: XRAY_TOKEN)")
    parser.add_argument("--wait", type=float, default=600.0,
                        help="seconds to wait for a worker's arrival check (0: do not wait)")
    parser.add_argument("--alias", help="once ready, point this alias at it (e.g. candidate, or default to promote)")


def _push(args) -> None:
    import httpx

    from shared.model.registry import pack

    read_manifest(args.path)  # the same check the service makes first: fail here, before sending anything
    if not args.token:
        raise DataError("give an admin's API token: --token or XRAY_TOKEN")
    archive = pack(args.path)
    with httpx.Client(base_url=args.url, headers={"Authorization": f"Bearer {args.token}"}, timeout=600) as client:
        answer = client.post("/api/v1/models", files={"artifact": ("artifact.tar.gz", archive, "application/gzip")})
        body = _answer(answer)
        log.info(f"pushed {args.path} ({len(archive) / 1e6:.1f} MB packed): version {body['version']}, {body['status']}")
        deadline = time.monotonic() + args.wait
        while body["status"] == "verifying" and time.monotonic() < deadline:
            time.sleep(1.0)
            body = _answer(client.get(f"/api/v1/models/versions/{body['version']}"))
        if body["status"] == "rejected":
            raise DataError(f"version {body['version']} was rejected: {body['reason']}")
        log.info(f"version {body['version']} is {body['status']}")
        if args.alias:
            if body["status"] != "ready":
                raise DataError(f"not moving alias {args.alias}: the version is still {body['status']}")
            _answer(client.put(f"/api/v1/models/aliases/{args.alias}", json={"version": body["version"]}))
            log.info(f"alias {args.alias} now points at {body['version']}")


def _answer(response) -> dict:
    if response.status_code >= 400:
        try:
            message = (response.json().get("error") or {}).get("message") or response.text
        except ValueError:
            message = response.text
        raise DataError(f"the service answered {response.status_code}: {message}")
    return response.json()


COMMANDS = {
    "push": Command("push an artifact folder to a service's model registry (checked there on real X-rays)",
                    _push_arguments, _push),
    "init": Command("build an untrained model artifact", _init_arguments, _init),
    "check": Command("check an artifact folder the way a worker does at start", _check_arguments, _check),
    "import-hobby": Command("import a .keras file made by the original hobby notebook", _hobby_arguments,
                            _import_hobby),
    "export": Command("export an artifact for phones: TensorFlow Lite, checked on real X-rays", _export_arguments,
                      _export),
    "operating-points": Command(
        "choose each finding's threshold for a target specificity on held-out patients, without retraining",
        _points_arguments, _operating_points,
        description="New thresholds for a trained artifact: per finding, the lowest probability that keeps the "
                    "target specificity on the held-out test patients of the model's own split (reproduced from "
                    "its manifest and checked), with sensitivity and specificity and their intervals on that set "
                    "and an external one. The model file, and so its version, is unchanged."),
    "optimize": Command(
        "write faster runtimes (bf16, OpenVINO) beside an artifact, each checked on real X-rays", _optimize_arguments,
        _optimize,
        description="Write and check faster runtimes for the worker: TensorFlow with bf16 compute and OpenVINO at "
                    "float32 and bf16. Each is accepted only when, on the real X-rays given, every probability is "
                    "within 0.01 of float32 and every class's map correlates >= 0.99 with the float32 map; the "
                    "figures go into the manifest and the worker serves the fastest accepted one (XRAY_RUNTIME=auto)."),
    "gate": Command(
        "fit the input gate (is this a frontal chest X-ray?) beside an artifact, with held-out figures",
        _gate_arguments, _gate,
        description="Fit the input gate on real chest X-rays (--images, --labels), the same X-rays inverted, turned, "
                    "cut and tinted, and pictures that are no X-ray (from scikit-image, matplotlib, scikit-learn, "
                    "pydicom, and generated); measure it by grouped cross-validation (patients, sources and generated "
                    "kinds held out whole) and on --external-images, never fitted on; write gate.json and the figures "
                    "(manifest.json, input_gate). Needs the training extra (scikit-learn, scikit-image)."),
}
