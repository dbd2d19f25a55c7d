"""The run report written next to the artifact: markdown tables and ROC plots."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from shared.model.labels import LABELS
from shared.stats.metrics import mean_difference, roc_curve


def _pyplot():
    """pyplot on the file-only backend, imported when a plot is drawn: the tables alone (``xray-model
    evaluate``) should not pay its start-up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fmt(value: float | None, digits: int = 3) -> str:
    """A figure with ``digits`` decimals, or – where there is none (None or NaN)."""
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _signed(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:+.3f}"


def metrics_table(result: dict) -> str:
    lines = ["| finding | positives | AUROC | 95% CI | threshold | sensitivity | specificity |",
             "|---|---:|---:|---|---:|---:|---:|"]
    for label, row in result["per_label"].items():  # the labels evaluated, in LABELS order
        ci = f"{fmt(row['ci_low'])}–{fmt(row['ci_high'])}" if not math.isnan(row["ci_low"]) else "–"
        lines.append(f"| {label} | {row['positives']} | {fmt(row['auroc'])} | {ci} | {fmt(row['threshold'])} | "
                     f"{fmt(row['sensitivity'], 2)} | {fmt(row['specificity'], 2)} |")
    low, high = result["mean_auroc_ci"] or (math.nan, math.nan)
    lines.append(f"| **mean** ({len(result['labels_scored'])} labels with positives) | | "
                 f"**{fmt(result['mean_auroc'])}** | {fmt(low)}–{fmt(high)} | | | |")
    return "\n".join(lines)


def _auroc_ci(row: dict) -> str:
    if row["auroc"] is None or math.isnan(row["auroc"]):
        return "–"
    return f"{fmt(row['auroc'])} ({fmt(row['ci_low'])}–{fmt(row['ci_high'])})"


def comparison_table(result: dict, baseline: dict) -> str:
    """Model and baseline side by side per label: AUROC (95% interval) and the difference."""
    lines = ["| finding | positives | model AUROC (95% CI) | baseline AUROC (95% CI) | difference |",
             "|---|---:|---|---|---:|"]
    for label, row in result["per_label"].items():
        other = baseline["per_label"][label]
        difference = row["auroc"] - other["auroc"]
        lines.append(f"| {label} | {row['positives']} | {_auroc_ci(row)} | {_auroc_ci(other)} | "
                     f"{_signed(difference)} |")
    means = [(r["mean_auroc"], *(r["mean_auroc_ci"] or (math.nan, math.nan))) for r in (result, baseline)]
    cells = [f"**{fmt(m)}** ({fmt(low)}–{fmt(high)})" for m, low, high in means]
    paired = mean_difference(result, baseline)
    lines.append(f"| **mean** | | {cells[0]} | {cells[1]} | **{paired['difference']:+.3f}** "
                 f"({_signed(paired['ci_low'])} to {_signed(paired['ci_high'])}, paired) |")
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


def history_plot(histories: list[dict] | dict, path: Path) -> None:
    """Training loss and held-out mean AUROC per epoch, one line per member (fold): a falling loss under
    a flat or falling AUROC is overfitting."""
    plt = _pyplot()
    histories = [histories] if isinstance(histories, dict) else histories
    figure, (loss_axes, auroc_axes) = plt.subplots(1, 2, figsize=(10, 4))
    for k, history in enumerate(histories):
        member = f"fold {k + 1}" if len(histories) > 1 else "model"
        loss_axes.plot(history.get("loss", []), label=member)
        auroc_axes.plot(history.get("val_mean_auroc", []), label=member)
    loss_axes.set(title="training loss", xlabel="epoch")
    auroc_axes.set(title="held-out mean AUROC", xlabel="epoch")
    auroc_axes.axhline(0.5, color="#bbb", lw=1)
    auroc_axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
