"""The run report written next to the artifact: markdown tables and ROC plots."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from shared.labels import LABELS
from training.metrics import roc_curve


def _pyplot():
    """pyplot on the file-only backend, imported when a plot is drawn: the tables alone (``xray-model
    evaluate``) should not pay its start-up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fmt(value: float, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def metrics_table(result: dict) -> str:
    lines = ["| finding | positives | AUROC | 95% CI | threshold | sensitivity | specificity |",
             "|---|---:|---:|---|---:|---:|---:|"]
    for label, row in result["per_label"].items():  # the labels evaluated, in LABELS order
        ci = f"{_fmt(row['ci_low'])}–{_fmt(row['ci_high'])}" if not math.isnan(row["ci_low"]) else "–"
        lines.append(f"| {label} | {row['positives']} | {_fmt(row['auroc'])} | {ci} | {_fmt(row['threshold'])} | "
                     f"{_fmt(row['sensitivity'], 2)} | {_fmt(row['specificity'], 2)} |")
    low, high = result["mean_auroc_ci"] or (math.nan, math.nan)
    lines.append(f"| **mean** ({len(result['labels_scored'])} labels with positives) | | "
                 f"**{_fmt(result['mean_auroc'])}** | {_fmt(low)}–{_fmt(high)} | | | |")
    return "\n".join(lines)


def roc_plot(y: np.ndarray, probabilities: np.ndarray, path: Path, title: str) -> None:
    plt = _pyplot()
    figure, axes = plt.subplots(3, 5, figsize=(16, 10), sharex=True, sharey=True)
    for c, (label, ax) in enumerate(zip(LABELS, axes.ravel())):
        ax.plot([0, 1], [0, 1], color="#bbb", lw=1)
        if 0 < y[:, c].sum() < len(y):
            fpr, tpr, _ = roc_curve(y[:, c], probabilities[:, c])
            ax.plot(fpr, tpr, lw=1.8)
        ax.set_title(f"{label} (n+={int(y[:, c].sum())})", fontsize=9)
    figure.suptitle(title)
    figure.supxlabel("false positive rate")
    figure.supylabel("true positive rate")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def history_plot(history: dict, path: Path) -> None:
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(7, 4))
    ax.plot(history.get("loss", []), label="training loss")
    ax2 = ax.twinx()
    ax2.plot(history.get("val_mean_auroc", []), color="tab:orange", label="validation mean AUROC")
    ax.set_xlabel("epoch")
    figure.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
