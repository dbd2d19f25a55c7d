"""Benchmark: the input gate (is this a frontal chest X-ray?) on real images, and what it costs the worker.

1. Held out: the gate is refitted once per fold of a grouped cross-validation (a patient's X-rays and
   everything made from them together; each source of real pictures and each generated kind as a whole)
   on the 1,000 NIH 64-px X-rays, the same X-rays inverted, turned, cut to a corner and tinted, and the
   pictures that are no X-ray (scikit-image, matplotlib, scikit-learn, pydicom, generated). The 57
   full-resolution NIH X-rays are never fitted on. Prints the confusion table and the shares gated:
   real frontal chest X-rays (target at most 1%), pictures that are no radiograph (at least 95%),
   transformed X-rays (at least 80%).
2. The committed gate (models/starter/gate.json) on the full-resolution X-rays and their
   transforms: images it was never fitted on.
3. Cost: ``Gate.check`` on decoded 1024² X-rays against the worker's time per image on the same images in
   the same run (decode, then the served model's batched forward pass with every class's map, via
   worker.engine), for the served starter (the k-fold ensemble). Target: under 5%.

    .venv/bin/python bench/input_gate.py [--folds 5] [--limit N] [--gate models/starter]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _common import REPO, machine, served_engine, timed

NIH = REPO.parent / "shared" / "data" / "nih"
FITTED = NIH / "nih1000-64px"
FULL = NIH / "nih-fullres-sample"
MAX_PIXELS, MAX_DECODED = 50_000_000, 256 * 2**20


def held_out(folds: int, limit: int | None):
    """Prints the held-out figures; returns the full-resolution examples (a training.gate.Table)."""
    from training.gate import confusion, confusion_lines, held_out_checks, shares, target_lines
    from training.gate_artifact import GateSources

    fitted, external = GateSources(FITTED / "images", FITTED / "labels.csv", FULL / "images", FULL / "labels.csv",
                                   limit=limit).tables()
    table = fitted.joined(external)
    checks = held_out_checks(table, folds)
    print(f"\n1. held out ({folds}-fold grouped cross-validation, {len(table.samples)} examples; the full-resolution "
          "X-rays never fitted on):")
    for line in confusion_lines(confusion(table.samples, checks)) + target_lines(shares(table, checks)):
        print("   " + line)
    return external


def committed(gate_dir: Path, external) -> None:
    from shared.model.gate import Gate
    from training.gate import confusion, confusion_lines, shares, target_lines

    gate = Gate.load(gate_dir)
    checks = [gate.check(sample.seen) for sample in external.samples]
    print(f"\n2. the committed gate {gate.version} ({gate_dir.relative_to(REPO)}) on the full-resolution X-rays and "
          "their transforms (never fitted on):")
    for line in confusion_lines(confusion(external.samples, checks)) + target_lines(shares(external, checks)):
        print("   " + line)
    refused = [(s, c) for s, c in zip(external.samples, checks) if s.family == "chest" and not c.ok]
    for sample, check in refused:
        print(f"   refused X-ray ({sample.group}): {check.result}, score {check.score}: {check.reason}")


def cost(gate_dir: Path, models: list[Path], count: int = 16) -> None:
    from shared.imaging.images import decode_image, inspect_image
    from shared.model.gate import Gate, Seen

    gate = Gate.load(gate_dir)
    datas = [path.read_bytes() for path in sorted((FULL / "images").glob("*.png"))[:count]]
    greys = [decode_image(data, MAX_PIXELS, MAX_DECODED) for data in datas]
    seens = [Seen(grey, 0.0, inspect_image(data, MAX_PIXELS).width, inspect_image(data, MAX_PIXELS).height)
             for grey, data in zip(greys, datas)]
    gate_seconds = timed(lambda: [gate.check(seen) for seen in seens]) / len(seens)
    print(f"\n3. cost on {len(seens)} decoded {greys[0].shape[1]}×{greys[0].shape[0]} X-rays; {machine()}")
    print(f"   Gate.check: {gate_seconds * 1000:.3f} ms per image")
    for model in models:
        engine = served_engine(model, "float32", count)
        worker_seconds = timed(lambda: engine.analyse([decode_image(d, MAX_PIXELS, MAX_DECODED) for d in datas]))
        worker_seconds /= len(datas)
        ratio = gate_seconds / worker_seconds
        print(f"   worker with {model.relative_to(REPO)} ({engine.runtime}, batch {count}): decode + forward pass + "
              f"maps {worker_seconds * 1000:.2f} ms per image; the gate costs {ratio:.1%} of it; target under 5%: "
              f"{'met' if ratio < 0.05 else 'NOT MET'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--limit", type=int, help="fit on at most this many of the 64-px X-rays (a quicker run)")
    parser.add_argument("--gate", type=Path, default=REPO / "models" / "starter")
    args = parser.parse_args()
    missing = [str(path) for path in (FITTED / "images", FITTED / "labels.csv", FULL / "images", FULL / "labels.csv")
               if not path.exists()]
    if missing:
        sys.exit(f"the shared NIH images are not here: {', '.join(missing)} is missing. This benchmark measures the "
                 f"gate on real X-rays only; put the shared data at {NIH} (see its README.md) and run it again.")
    gate_dir = args.gate.resolve()
    print(f"input gate benchmark; {machine()}")
    external = held_out(args.folds, args.limit)
    committed(gate_dir, external)
    cost(gate_dir, [REPO / "models" / "starter"])


if __name__ == "__main__":
    main()
