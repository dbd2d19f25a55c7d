"""``xray labels`` and ``xray evaluate``: attach a batch's ground truth (an NIH-style label CSV) and read the
evaluation the service computes from it (per finding AUROC with patient-level 95% intervals, operating
points), or download readers' labels as a label CSV."""
from __future__ import annotations

from pathlib import Path

from client.service import Api, ServiceError


def put_labels(api: Api, batch_id: str, path: Path) -> dict:
    if not path.is_file():
        raise ServiceError(f"label file {path} does not exist")
    return api.request("PUT", f"/api/v1/batches/{batch_id}/labels", content=path.read_bytes(),
                       headers={"Content-Type": "text/csv"}).json()


def report_line(report: dict) -> str:
    line = (f"{report['images_labelled']} image(s) labelled from {report['rows']} row(s); "
            f"{report['unmatched_rows']} row(s) matched no image, {report['unmatched_images']} image(s) have no row")
    if report.get("unmatched_row_names"):
        line += "; e.g. rows " + ", ".join(report["unmatched_row_names"][:5])
    return line


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def evaluation_lines(body: dict) -> list[str]:
    """The evaluation as text: per model version, one line per finding."""
    lines = [f"evaluation: {body['state'].replace('_', ' ')}"]
    for version in body["versions"]:
        f = version["figures"]
        ci = f.get("mean_auroc_ci") or [None, None]
        lines.append(f"model {version['model_name'] or ''} {version['model_version']}: {f['images']} images, "
                     f"{f['patients']} patients, mean AUROC {_fmt(f['mean_auroc'])} ({_fmt(ci[0])}-{_fmt(ci[1])}) "
                     f"over {len(f['labels_scored'])} finding(s)")
        lines.append(f"  {'finding':20s} {'pos':>4s}  {'AUROC (95% CI)':22s} {'sens':>5s} {'spec':>5s}")
        for label, row in f["per_label"].items():
            auroc = (f"{_fmt(row['auroc'])} ({_fmt(row['ci_low'])}-{_fmt(row['ci_high'])})" if row["status"] == "scored"
                     else "too few positives")
            lines.append(f"  {label:20s} {row['positives']:4d}  {auroc:22s} {_fmt(row['sensitivity']['value'], 2):>5s} "
                         f"{_fmt(row['specificity']['value'], 2):>5s}")
    readers = body.get("readers")
    if readers:
        lines.append("readers: " + ", ".join(f"{r['reader']} ({r['images']} images)" for r in readers["readers"]))
    return lines
