"""The input gate's rules: what can be said for certain about an image before any learned part looks at it.

Each refusal names what is wrong in words the sender can act on. The limits are loose on purpose: a
64×64 NIH X-ray must pass the size rule, an RGB or RGBA PNG that is grey in content (NIH exports them)
scores 0 colourfulness, and the flattest real X-ray has far more contrast than the flat limit. The DICOM
rules read the header's own words: a body part that is named and is not a chest, a view that is named and
is lateral or oblique. Missing or vague values pass: many modalities leave them empty.
"""
from __future__ import annotations

import numpy as np

RULES = {
    "min_side": 32,  # pixels on the shorter side, as uploaded
    "max_colourfulness": 12.0,  # mean |R-G| + |G-B| in 8-bit levels; grey content scores 0, a faint cast a few
    "min_contrast": 12,  # grey levels between the 1st and 99th percentile at 64×64
}
CHEST_WORDS = ("CHEST", "THORAX", "THORAC", "LUNG", "TORAX", "TORACE", "BRUST", "POUMON", "PULMON")
VAGUE_BODY_PARTS = {"UNKNOWN", "UNK", "OTHER", "NONE", "-", "?"}
LATERAL_VIEWS = {"LL", "RL", "LAT", "LATERAL", "LEFT LATERAL", "RIGHT LATERAL", "XTABLE LATERAL", "CROSS TABLE LATERAL"}
OBLIQUE_VIEWS = {"LAO", "RAO", "LPO", "RPO", "LLO", "RLO", "OBL", "OBLIQUE"}


def _words(text: str) -> str:
    return " ".join(text.upper().replace("_", " ").replace("-", " ").split())


def body_part_refusal(body_part: str | None) -> str | None:
    """The reason, when the DICOM header names a body part that is not the chest."""
    words = _words(body_part or "")
    if not words or words in VAGUE_BODY_PARTS or any(word in words for word in CHEST_WORDS):
        return None
    return f"the DICOM header says the body part examined is {words}, not the chest"


def view_refusal(view_position: str | None) -> str | None:
    """The reason, when the DICOM header names a lateral or oblique view (decubitus views are frontal)."""
    words = _words(view_position or "")
    if words in LATERAL_VIEWS or (words.endswith("LATERAL") and "DECUBITUS" not in words):
        kind = "lateral"
    elif words in OBLIQUE_VIEWS or "OBLIQUE" in words:
        kind = "oblique"
    else:
        return None
    return f"the DICOM header says this is a {kind} view ({words}); the model reads frontal views (PA or AP) only"


def contrast(levels: np.ndarray) -> int:
    """Grey levels between the 1st and 99th percentile of an 8-bit image (the gate's 64×64 copy)."""
    counts = np.cumsum(np.bincount(levels.ravel(), minlength=256))
    low, high = np.searchsorted(counts, [0.01 * counts[-1], 0.99 * counts[-1]])
    return int(high - low)


def refusal(seen, rules: dict, levels: np.ndarray) -> tuple[str, str] | None:
    """(result, reason) of the first rule the image breaks, or None; levels: the image at 64×64 (8-bit)."""
    shorter = min(seen.width, seen.height)
    if shorter < rules["min_side"]:
        return "not_a_radiograph", (f"the image is only {seen.width}×{seen.height} pixels; a radiograph needs at least "
                                    f"{rules['min_side']} on its shorter side")
    if seen.colourfulness > rules["max_colourfulness"]:
        return "not_a_radiograph", (f"a colour image (colourfulness {seen.colourfulness:.0f}, the limit is "
                                    f"{rules['max_colourfulness']:.0f}): radiographs are greyscale")
    spread = contrast(levels)
    if spread < rules["min_contrast"]:
        return "not_a_radiograph", (f"a blank or flat image: almost no contrast (its grey levels span {spread} of 255, "
                                    f"a radiograph spans far more)")
    reason = body_part_refusal(seen.body_part)
    if reason:
        return "not_a_chest", reason
    reason = view_refusal(seen.view_position)
    if reason:
        return "not_frontal", reason
    return None
