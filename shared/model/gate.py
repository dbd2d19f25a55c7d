"""The input gate: is this image a frontal chest radiograph? Asked of every image before findings.

The model answers whatever it is given: a colour-noise JPEG came back "Consolidation 93.5%", an 8×8 image
"Pneumonia 54.7%". So each image gets a check first, and an image the gate refuses gets its reason instead
of findings. Rules go first, because they are certain and say exactly what is wrong: too small, in colour,
flat, or a DICOM header naming another body part or a lateral view. Then a small learned detector on image
statistics (shared/model/gate_features.py): a multinomial logistic regression over ok / not a radiograph /
not a chest / inverted / rotated, on each standardised feature and its square (so that too much and too
little of something can both count against a class: held out, 28 of 1,088 pictures that are no X-ray got
through instead of 48 on the features alone), and a one-class part, the Mahalanobis distance to the chest
X-rays' features, so that kinds of images never seen in fitting are still refused as unlike the chest X-rays.

Both parts are fitted by ``xray-model gate`` (training/gate.py, with scikit-learn) and served from the
artifact's gate.json with numpy alone. The thresholds favour letting real chest X-rays through: they are
set where about one real X-ray in 200 (held out while fitting) is refused by each learned part. An artifact
without gate.json gets the rules alone (version "rules"); one whose manifest names a gate that is missing
or different is refused, as a model that does not match its manifest is.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from shared.model.gate_features import FEATURE_NAMES, features, features_of_small, small
from shared.model.gate_rules import RULES, refusal

__all__ = ["GATE_FILE", "RESULTS", "FEATURE_NAMES", "Gate", "GateError", "InputCheck", "Seen", "features"]

GATE_FILE = "gate.json"
FORMAT = 1
RESULTS = ("ok", "not_a_radiograph", "not_a_chest", "not_frontal", "inverted", "rotated")
CLASSES = ("ok", "not_a_radiograph", "not_a_chest", "inverted", "rotated")  # what the learned part tells apart
LEARNED_REASONS = {
    "not_a_radiograph": "it does not look like a radiograph (by its grey levels, edges and layout it is more like a "
                        "photograph, a document, a screenshot or noise)",
    "not_a_chest": "it looks like a medical image but not a whole frontal chest (a CT or MR slice, another body part, "
                   "or a cut-out of a chest X-ray)",
    "inverted": "it looks like a chest X-ray with its grey levels inverted (bones dark, air bright): send it as the "
                "modality displays it",
    "rotated": "it looks like a chest X-ray turned on its side or upside down: send it upright",
}
OK_REASON = ("looks like a frontal chest radiograph: checked size, greyscale, contrast, the DICOM header where there "
             "is one, and a likeness to the chest X-rays the model was trained on")
RULES_ONLY_REASON = ("passed the rules (size, greyscale, contrast, DICOM body part and view); this model has no "
                     "learned gate, so how chest-like the image is was not checked")
UNLIKE_REASON = "it is unlike the chest X-rays the model was trained on (its image statistics are far from theirs)"


class GateError(ValueError):
    """gate.json is missing, damaged or does not belong to its artifact; the message says what to fix."""


@dataclasses.dataclass(frozen=True)
class InputCheck:
    result: str  # one of RESULTS
    score: float  # 0..1: how sure the gate is that this IS a frontal chest radiograph (ok from 0.5 up)
    reason: str  # one sentence for a person; for ok, what was checked
    version: str  # "gate-" + 16 hex of gate.json's sha256, or "rules" when the artifact has no gate.json

    @property
    def ok(self) -> bool:
        return self.result == "ok"

    def as_json(self) -> dict:
        return {"result": self.result, "score": self.score, "reason": self.reason, "version": self.version}


@dataclasses.dataclass(frozen=True)
class Seen:
    """What the gate looks at for one image."""

    grey: np.ndarray  # the decoded 8-bit grey image as the worker has it (shared.imaging.images, <= 1024 px)
    colourfulness: float  # from the colour decode (0 for a grey source): shared.imaging.images.colourfulness
    width: int  # as uploaded
    height: int
    view_position: str | None = None  # DICOM header facts; None for PNG/JPEG
    body_part: str | None = None


@dataclasses.dataclass(frozen=True)
class Learned:
    """The fitted part, as numpy arrays: standardisation, the classifier, the chest X-rays' centre and precision."""

    mean: np.ndarray
    scale: np.ndarray
    coefficients: np.ndarray  # [classes, 2 × features]: on the standardised features, then on their squares
    intercepts: np.ndarray
    chest_mean: np.ndarray  # on standardised features
    chest_precision: np.ndarray
    min_ok_probability: float
    max_distance: float

    def judge(self, values: np.ndarray) -> tuple[np.ndarray, float]:
        """Class probabilities (in CLASSES order) and the Mahalanobis distance to the chest X-rays."""
        standard = (values - self.mean) / self.scale
        logits = self.coefficients @ np.concatenate([standard, standard * standard]) + self.intercepts
        odds = np.exp(logits - logits.max())
        offset = standard - self.chest_mean
        return odds / odds.sum(), float(np.sqrt(max(offset @ self.chest_precision @ offset, 0.0)))

    def score(self, ok_probability: float, distance: float) -> float:
        """0..1, exactly 0.5 at either threshold, so that an image is ok when its score is at least one half:
        the classifier's probability of ok, raised to the power that maps its threshold to 0.5, or the
        likeness 0.5 ** ((distance / max_distance) ** 4) (0.96 at half the limit, 0.03 at 1.5 times it),
        whichever is lower."""
        limit = min(max(self.min_ok_probability, 1e-6), 0.5)
        from_probability = max(ok_probability, 0.0) ** (np.log(0.5) / np.log(limit))
        from_distance = 0.5 ** ((distance / self.max_distance) ** 4)
        return float(min(from_probability, from_distance))


def _version(text: bytes) -> str:
    return "gate-" + hashlib.sha256(text).hexdigest()[:16]


def dumps(data: dict) -> bytes:
    """gate.json's bytes: keys sorted, one number list a line, so a refit shows as a readable diff and the
    same gate always has the same version."""
    def write(value, depth: int) -> str:
        pad = " " * (depth + 1)
        if isinstance(value, dict):
            items = [f"{pad}{json.dumps(key)}: {write(value[key], depth + 1)}" for key in sorted(value)]
            return "{\n" + ",\n".join(items) + "\n" + " " * depth + "}" if items else "{}"
        if isinstance(value, list) and value and isinstance(value[0], list):
            return "[\n" + ",\n".join(pad + write(row, depth + 1) for row in value) + "\n" + " " * depth + "]"
        return json.dumps(value, separators=(", ", ": "))
    return (write(data, 0) + "\n").encode()


class Gate:
    def __init__(self, rules: dict, learned: Learned | None = None, version: str = "rules", data: dict | None = None):
        self.rules = {**RULES, **rules}
        self.learned = learned
        self.version = version
        self.data = data  # gate.json as read (None for the rules-only gate)

    @classmethod
    def load(cls, artifact_dir) -> Gate:
        """The artifact's gate; the rules alone when it has no gate.json and its manifest names none."""
        artifact_dir = Path(artifact_dir)
        path, manifest = artifact_dir / GATE_FILE, artifact_dir / "manifest.json"
        named = None
        if manifest.is_file():
            try:
                named = (json.loads(manifest.read_text()).get("input_gate") or {}).get("version")
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                named = None  # read_manifest reports a broken manifest; the gate does not need it
        if not path.is_file():
            if named:
                raise GateError(f"the manifest of {artifact_dir} names the input gate {named}, but {GATE_FILE} is "
                                "missing: copy it back or refit it with `xray-model gate`")
            return cls({})
        text = path.read_bytes()
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise GateError(f"{path} is not valid JSON: {exc}") from None
        gate = cls.from_dict(data, version=_version(text))
        if named and named != gate.version:
            raise GateError(f"{path} is {gate.version}, but the manifest names the input gate {named}: the gate does "
                            "not belong to this artifact; refit it with `xray-model gate`")
        return gate

    @classmethod
    def from_dict(cls, data: dict, version: str | None = None) -> Gate:
        if data.get("format") != FORMAT:
            raise GateError(f"gate.json has format {data.get('format')!r}; this service reads format {FORMAT}")
        if tuple(data.get("feature_names", ())) != FEATURE_NAMES:
            raise GateError("gate.json was fitted on other image features than this service measures; refit it "
                            "with `xray-model gate`")
        try:
            classifier, chest = data["classifier"], data["chest_likeness"]
            if tuple(classifier["classes"]) != CLASSES:
                raise GateError(f"gate.json's classes are {classifier['classes']}, expected {list(CLASSES)}")
            learned = Learned(*(np.asarray(classifier[key], np.float64)
                                for key in ("mean", "scale", "coefficients", "intercepts")),
                              np.asarray(chest["mean"], np.float64), np.asarray(chest["precision"], np.float64),
                              float(data["thresholds"]["min_ok_probability"]),
                              float(data["thresholds"]["max_distance"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise GateError(f"gate.json is incomplete or malformed ({type(exc).__name__}: {exc})") from None
        count = len(FEATURE_NAMES)
        shapes = [learned.mean.shape, learned.scale.shape, learned.coefficients.shape, learned.intercepts.shape,
                  learned.chest_mean.shape, learned.chest_precision.shape]
        if shapes != [(count,), (count,), (len(CLASSES), 2 * count), (len(CLASSES),), (count,), (count, count)]:
            raise GateError(f"gate.json's arrays have the shapes {shapes}, not those of {count} features and "
                            f"{len(CLASSES)} classes")
        return cls(data.get("rules", {}), learned, version or _version(dumps(data)), data)

    def save(self, artifact_dir) -> Path:
        if self.data is None:
            raise GateError("the rules-only gate has no gate.json to write")
        path = Path(artifact_dir) / GATE_FILE
        path.write_bytes(dumps(self.data))
        return path

    def check(self, seen: Seen) -> InputCheck:
        levels = small(seen.grey)
        refused = refusal(seen, self.rules, levels)
        if refused:
            return InputCheck(refused[0], 0.0, refused[1], self.version)
        if self.learned is None:
            return InputCheck("ok", 0.5, RULES_ONLY_REASON, self.version)
        return self._learned_check(features_of_small(levels))

    def _learned_check(self, values: np.ndarray) -> InputCheck:
        learned = self.learned
        probabilities, distance = learned.judge(values)
        ok_probability = float(probabilities[0])
        score = round(learned.score(ok_probability, distance), 4)
        if ok_probability >= learned.min_ok_probability and distance <= learned.max_distance:
            return InputCheck("ok", max(0.5, score), OK_REASON, self.version)
        if ok_probability >= learned.min_ok_probability:
            return InputCheck("not_a_radiograph", min(0.4999, score), UNLIKE_REASON, self.version)
        result = CLASSES[1 + int(np.argmax(probabilities[1:]))]
        return InputCheck(result, min(0.4999, score), LEARNED_REASONS[result], self.version)
