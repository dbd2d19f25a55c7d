"""A batch's stored evaluation as the API, the page and the exports show it: per model version the figures
of shared.stats.evaluation, the readers' agreement, and the label files a reader's answers make. Nothing
is computed here (the worker and the recovery loop compute; shared/truth/evaluate.py): the web only reads."""
from __future__ import annotations

import csv
import io
from xml.sax.saxutils import escape

from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table

from shared.db.models import Batch, ReaderLabel, TruthLabel, as_utc
from shared.model.labels import LABELS, NO_FINDING
from shared.truth.evaluate import READERS, pending, stored
from web.exports import _cell
from web.reports import GRID

OPERATING = ("sensitivity", "specificity", "ppv", "npv")


def _iso(moment):
    return None if moment is None else as_utc(moment).isoformat()


def evaluation_json(session, batch: Batch) -> dict:
    rows = stored(session, batch.id)
    versions = [{"model_version": version, "model_name": row.figures.get("model_name"),
                 "computed_at": _iso(row.computed_at), "seconds": row.seconds, "figures": row.figures}
                for version, row in rows.items() if version != READERS]
    unfinished = pending(session, batch.id)
    state = ("no_labels" if batch.truth_summary is None and READERS not in rows and not batch.evaluation_due
             else "waiting_for_jobs" if unfinished else "due" if batch.evaluation_due else "ready")
    return {"batch_id": str(batch.id), "state": state, "truth": batch.truth_summary,
            "evaluated_at": _iso(batch.evaluated_at), "versions": versions,
            "readers": rows[READERS].figures if READERS in rows else None}


def _fmt(value, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def evaluation_csv(body: dict) -> str:
    """One row per model version and finding: AUROC with its interval, operating point figures with theirs."""
    out = io.StringIO()
    writer = csv.writer(out)
    header = ["model_version", "finding", "status", "positives", "negatives", "auroc", "auroc_ci_low", "auroc_ci_high",
              "threshold"]
    for name in OPERATING:
        header += [name, f"{name}_ci_low", f"{name}_ci_high"]
    writer.writerow(header + ["tp", "fp", "fn", "tn", "ece"])
    for version in body["versions"]:
        for label, row in version["figures"]["per_label"].items():
            line = [version["model_version"], label, row["status"], row["positives"], row["negatives"],
                    _fmt(row["auroc"]), _fmt(row["ci_low"]), _fmt(row["ci_high"]), row["threshold"]]
            for name in OPERATING:
                line += [_fmt(row[name]["value"]), _fmt(row[name]["ci_low"]), _fmt(row[name]["ci_high"])]
            confusion = row["confusion"]
            writer.writerow(line + [confusion["tp"], confusion["fp"], confusion["fn"], confusion["tn"], _fmt(row["ece"])])
    return out.getvalue()


def evaluation_pdf(body: dict, disclaimer: str) -> bytes:
    styles = getSampleStyleSheet()
    story = [Paragraph("Batch evaluation", styles["Title"]), Paragraph(escape(disclaimer), styles["BodyText"])]
    if not body["versions"]:
        story.append(Paragraph("No evaluation yet: " + escape(body["state"].replace("_", " ")), styles["BodyText"]))
    for version in body["versions"]:
        figures = version["figures"]
        story += [Spacer(1, 4 * mm), Paragraph(escape(f"Model {version['model_name'] or ''} {version['model_version'][:12]}: "
                                                      f"{figures['images']} images, {figures['patients']} patients, "
                                                      f"mean AUROC {_fmt(figures['mean_auroc'])}"), styles["Heading2"])]
        table = [["Finding", "Positives", "AUROC (95% CI)", "Sensitivity", "Specificity", "PPV", "NPV"]]
        for label, row in figures["per_label"].items():
            if row["status"] != "scored":
                table.append([label, str(row["positives"]), "too few positives", "", "", "", ""])
                continue
            table.append([label, str(row["positives"]), f"{_fmt(row['auroc'])} ({_fmt(row['ci_low'])}-{_fmt(row['ci_high'])})"]
                         + [f"{_fmt(row[n]['value'], 2)} ({_fmt(row[n]['ci_low'], 2)}-{_fmt(row[n]['ci_high'], 2)})"
                            for n in OPERATING])
        story.append(Table(table, style=GRID, repeatRows=1))
    out = io.BytesIO()
    SimpleDocTemplate(out, pagesize=landscape(A4), title="Batch evaluation").build(story)
    return out.getvalue()


READER_COLUMNS = ["Image Index", "Finding Labels", "Patient ID", "Reader", "Model Version Seen", "Blind",
                  "Model Missed", "Labelled At"]


def reader_labels_csv(batch: Batch, labels: list[ReaderLabel], truth: dict, usernames: dict) -> str:
    """NIH-style: one row per image and reader, the findings the reader said present joined by '|' ('No
    Finding' when none), so ``xray-model train --labels`` reads it. An image the reader left unsure on some
    finding is left out (an NIH label cannot say unsure). Patient ID: the truth file's patient key where
    there is one (never the file's ID), else the image's own id."""
    jobs = {job.id: job for job in batch.jobs}
    by_key: dict[tuple, list[ReaderLabel]] = {}
    for row in labels:
        by_key.setdefault((row.job_id, row.reader_id), []).append(row)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(READER_COLUMNS)
    for (job_id, reader_id), rows in sorted(by_key.items(), key=lambda kv: (jobs[kv[0][0]].position, str(kv[0][1]))):
        if any(r.answer == "unsure" for r in rows):
            continue
        present = [r.label for r in rows if r.answer == "present" and r.label != NO_FINDING]
        present = sorted(present, key=LABELS.index) or [NO_FINDING]
        known: TruthLabel | None = truth.get(job_id)
        patient = known.patient_key if known is not None and known.patient_key else f"image-{job_id}"
        latest = max(rows, key=lambda r: r.at)
        writer.writerow([_cell(jobs[job_id].original_filename), "|".join(present), patient, usernames.get(reader_id, ""),
                         latest.model_version or "", "yes" if latest.blind else "no",
                         "|".join(sorted((r.label for r in rows if r.model_missed), key=LABELS.index)),
                         _iso(latest.at)])
    return out.getvalue()
