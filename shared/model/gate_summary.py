"""The input gate's figures as a reader sees them (the model card page and MODEL_CARD.md), from the manifest's
``input_gate`` that `xray-model gate` writes: what each figure counts, its target, and the confusion table."""
from __future__ import annotations

from shared.model.gate import RESULTS

# What each figure counts, and the target the gate is held to (issue 23; training/gate.py measures them).
FIGURES = {
    "real_xrays_gated": ("real frontal chest X-rays gated", "at most 1%", lambda share: share <= 0.01),
    "not_xrays_gated": ("pictures that are no X-ray gated", "at least 95%", lambda share: share >= 0.95),
    "not_xrays_past_the_rules_gated": ("of those, the ones the rules let through, gated by the learned part", None,
                                       None),
    "transformed_xrays_gated": ("X-rays inverted, turned, cut to a corner or tinted, gated", "at least 80%",
                                lambda share: share >= 0.80),
}


def _figures(figures: dict) -> list[dict]:
    rows = []
    for name, (meaning, target, met) in FIGURES.items():
        figure = figures.get(name) or {}
        if not figure.get("of"):
            continue
        share = figure["gated"] / figure["of"]
        rows.append({"meaning": meaning, "gated": figure["gated"], "of": figure["of"], "share": share,
                     "target": target, "met": None if met is None else met(share)})
    return rows


def _confusion(confusion: dict) -> dict:
    results = [result for result in RESULTS if any(result in counts for counts in confusion.values())]
    return {"results": results,
            "rows": [{"kind": kind, "counts": [counts.get(result, 0) for result in results]}
                     for kind, counts in confusion.items()]}


def summary(input_gate: dict | None) -> dict | None:
    """None when the model has no learned gate (its images then meet the rules alone)."""
    if not input_gate or not input_gate.get("version"):
        return None
    held_out, external = input_gate.get("held_out") or {}, input_gate.get("external") or {}
    return {
        "version": input_gate["version"],
        "method": input_gate.get("method"),
        "held_out_how": held_out.get("how"),
        "sets": [{"name": "held out", "figures": _figures(held_out.get("figures") or {}),
                  "confusion": _confusion(held_out.get("confusion") or {})}]
        + ([{"name": "external (never fitted)", "figures": _figures(external.get("figures") or {}),
             "confusion": _confusion(external.get("confusion") or {})}] if external.get("figures") else []),
    }
