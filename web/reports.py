"""PDF reports (ReportLab): one per image (the original, the heatmaps of the findings above threshold,
all 15 probabilities with the model's measured quality, the model, the disclaimer) and a summary per
batch. What is shown as the answer comes from web/reading.py: an image the input gate says is not a
frontal chest radiograph gets the gate's reason instead of findings; unreliable findings are marked; "No
Finding" is derived. For research and education: every page says it is not for diagnosis."""
from __future__ import annotations

import io
from xml.sax.saxutils import escape

import numpy as np

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from shared.db.models import Batch, Job, as_utc
from shared.imaging import maps
from shared.jobs.storage import LocalStorage, StorageError
from shared.model.labels import display_name
from shared.model.manifest import UNTRAINED_WARNING
from web import renders
from web.reading import NOT_READ, Reading
from web.serializers import thumbnail_finding

STYLES = getSampleStyleSheet()
SCALE_NOTE = ("Colour scale of every heatmap: activation for its finding relative to the map's own peak, from blue "
              "(0, low) through green and yellow to red (1, high).")
GRID = TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.grey), ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef9")),
                   ("FONTSIZE", (0, 0), (-1, -1), 8), ("VALIGN", (0, 0), (-1, -1), "TOP")])


def _p(text: str, style: str = "BodyText") -> Paragraph:
    return Paragraph(escape(text), STYLES[style])


def _image(data: bytes, width: float) -> Image:
    reader = ImageReader(io.BytesIO(data))
    w, h = reader.getSize()
    return Image(io.BytesIO(data), width=width, height=width * h / w)


def _when(moment) -> str:
    return as_utc(moment).strftime("%Y-%m-%d %H:%M UTC") if moment else "–"


def _colour_scale() -> list:
    """The heatmaps' colour table as a strip with its meaning: a printed heatmap is read with it."""
    strip = np.repeat(maps.JET_RGB[None, :, :], 12, axis=0)
    return [_image(maps.encode_image(strip, "png"), 90 * mm),
            Table([["0 low", "", "1 high"]], colWidths=[30 * mm] * 3, hAlign="LEFT",
                  style=TableStyle([("FONTSIZE", (0, 0), (-1, -1), 7), ("ALIGN", (2, 0), (2, 0), "RIGHT"),
                                    ("LEFTPADDING", (0, 0), (-1, -1), 0), ("RIGHTPADDING", (0, 0), (-1, -1), 0)])),
            _p(SCALE_NOTE)]


def _header(disclaimer: str) -> list:
    return [_p("Chest X-ray analysis", "Title"), _p(disclaimer, "Heading4")]


def _model_lines(job: Job) -> list:
    if job.model is None:
        return [_p("Model: none (the image was not analysed).")]
    lines = [_p(f"Model: {job.model.name} {job.model.version} ({job.model.architecture}).")]
    if not job.model.trained:
        lines.append(_p(UNTRAINED_WARNING, "Heading4"))
    return lines


def job_report(job: Job, storage: LocalStorage, disclaimer: str, **limits) -> bytes:
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, title=f"Report {job.id}", leftMargin=15 * mm, rightMargin=15 * mm)
    story = _header(disclaimer) + [
        _p(f"Image: {job.original_filename} ({job.width}×{job.height} px) · job {job.id}"),
        _p(f"Submitted {_when(job.created_at)} · finished {_when(job.finished_at)} · status {job.status}"),
        *_model_lines(job)]
    if job.error:
        story.append(_p(f"This image could not be analysed: {job.error}", "Heading4"))
    reading = Reading.of(job)
    if reading.gated:
        check = reading.check
        story.append(_p(f"{NOT_READ}: {check.get('reason')} (input check: {check.get('result', '').replace('_', ' ')}, "
                        f"{100 * float(check.get('score', 0)):.0f}% like a frontal chest radiograph). The model was "
                        "trained on frontal chest radiographs only, so no finding is reported for this image.", "Heading4"))
    pictures = []
    if job.image_key:
        grey = renders.base_grey(storage, job, **limits)
        pictures.append((maps.encode_image(maps.grey_rgb(grey)), "Original"))
    shown = reading.shown
    missing = []
    for finding in shown:  # every finding above threshold: the table below lists them all, so do the heatmaps
        try:
            data, _ = renders.overlay(storage, job, finding.label, **limits)
        except renders.RenderError:
            missing.append(display_name(finding.label))
            continue
        pictures.append((data, f"Heatmap of {display_name(finding.label)}, {100 * finding.probability:.1f}%"
                             + ("" if reading.reliable(finding.label) else " (unreliable)")))
    if pictures:
        cells = [[_image(data, 56 * mm), _p(caption)] for data, caption in pictures]
        cells += [""] * (-len(cells) % 3)
        story += [Spacer(1, 4 * mm), Table([cells[i:i + 3] for i in range(0, len(cells), 3)], colWidths=[60 * mm] * 3,
                                           hAlign="LEFT")]
        if len(pictures) > 1:
            story += _colour_scale()
    if missing:
        story.append(_p("No heatmap is stored for: " + ", ".join(missing) + "."))
    if job.findings and not reading.gated:
        rows = [["Finding", "Probability", "Threshold", "Above", "AUROC (95% CI)", "Reliable"]]
        for f in reading.findings:  # most probable first
            q = reading.quality[f.label]
            auroc = "–" if q["auroc"] is None else f"{q['auroc']:.2f} ({q['ci_low']:.2f}–{q['ci_high']:.2f})"
            rows.append([display_name(f.label), f"{100 * f.probability:.1f}%", f"{100 * f.threshold:.1f}%",
                         "yes" if f.positive else "no", auroc, "yes" if q["reliable"] else "no"])
        summary = reading.summary if shown else "none (\u201cNo Finding\u201d: no finding above its threshold)"
        on = "external set" if reading.reliability_set == "external" else "held-out test patients"
        story += [Spacer(1, 4 * mm), _p(f"Findings above threshold: {summary}."), Table(rows, style=GRID, hAlign="LEFT")]
        story.append(_p(f"AUROC from the model card, measured on its {on}. A finding marked not reliable has an AUROC "
                        "interval that does not lie above 0.5: the model is no better than chance at it."))
    doc.build(story)
    return out.getvalue()


def _thumbnail(storage: LocalStorage | None, job: Job, reading: Reading, limits: dict):
    finding, above = thumbnail_finding(reading)
    if storage is None or finding is None:
        return ""
    try:
        data, _ = renders.overlay(storage, job, finding.label, size="thumb", **limits)
    except (renders.RenderError, StorageError):
        return ""
    caption = display_name(finding.label) + ("" if above else " (below threshold)")
    return [_image(data, 18 * mm), Paragraph(escape(caption), STYLES["Normal"])]


def batch_report(batch: Batch, disclaimer: str, storage: LocalStorage | None = None, **limits) -> bytes:
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, title=f"Batch {batch.id}", leftMargin=15 * mm, rightMargin=15 * mm)
    counts: dict[str, int] = {}
    for job in batch.jobs:
        counts[job.status] = counts.get(job.status, 0) + 1
    models = sorted({f"{j.model.name} {j.model.version}" for j in batch.jobs if j.model})
    story = _header(disclaimer) + [
        _p(f"Batch {batch.name or ''} {batch.id} · submitted {_when(batch.created_at)} · {batch.job_count} images: "
           + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))),
        _p("Model(s): " + (", ".join(models) or "none yet"))]
    if any(j.model and not j.model.trained for j in batch.jobs):
        story.append(_p(UNTRAINED_WARNING, "Heading4"))
    rows = [["#", "Heatmap", "File", "Status", "Findings above threshold (probability; unreliable ones marked)"]]
    for job in sorted(batch.jobs, key=lambda j: j.position):
        reading = Reading.of(job)
        result = job.error or reading.summary or ""
        rows.append([str(job.position + 1), _thumbnail(storage, job, reading, limits), _p(job.original_filename),
                     job.status, _p(result)])
    story += [Spacer(1, 4 * mm), Table(rows, style=GRID, hAlign="LEFT",
                                       colWidths=[9 * mm, 22 * mm, 45 * mm, 18 * mm, 86 * mm], repeatRows=1)]
    if storage is not None:
        story += _colour_scale()
    doc.build(story)
    return out.getvalue()
