"""``xray submit``: upload in chunks, each with its own Idempotency-Key, so an interrupted run resumes
(``--resume``) without a single image uploaded twice; then optionally wait and write the results.

The run's state (its id, the files, and each chunk's key and batch) is kept in a small JSON file, written
before a chunk is sent and after its answer. A run killed while a chunk was in flight resends that chunk
with the same key on resume, and the service answers with the batch it already made.
"""
from __future__ import annotations

import csv
import io
import json
import os
import secrets
import time
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from client.files import mime
from client.service import Api, ServiceError

LABELS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis", "Hernia",
          "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax", "No Finding")


class State:
    """The run on disk: rewritten atomically after every change."""

    def __init__(self, path: Path, data: dict):
        self.path, self.data = path, data

    @classmethod
    def new(cls, path: Path, files: list[Path], name: str | None, chunk: int, labels: Path | None = None,
            model: str | None = None) -> "State":
        chunks = [{"files": [str(p) for p in files[i:i + chunk]], "key": None, "batch_id": None}
                  for i in range(0, len(files), chunk)]
        data = {"run": secrets.token_hex(8), "name": name, "model": model, "chunks": chunks}
        if labels is not None:  # the ground truth goes with every chunk; each batch keeps the rows it matches
            data["labels"] = str(labels)
        return cls(path, data)

    @classmethod
    def load(cls, path: Path) -> "State":
        return cls(path, json.loads(path.read_text()))

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.path)


class ReadProgress(io.RawIOBase):
    """A file whose reads move a progress bar (httpx streams multipart bodies by reading)."""

    def __init__(self, path: Path, progress: Progress, task):
        self.handle, self.progress, self.task = open(path, "rb"), progress, task

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.handle.seek(offset, whence)

    def tell(self) -> int:
        return self.handle.tell()

    def fileno(self) -> int:  # lets httpx know the size, so the body has a Content-Length
        return self.handle.fileno()

    def readinto(self, buffer) -> int:
        count = self.handle.readinto(buffer)
        self.progress.advance(self.task, count)
        return count

    def close(self) -> None:
        self.handle.close()
        super().close()


def upload(api: Api, state: State, console) -> None:
    total = sum(Path(f).stat().st_size for c in state.data["chunks"] if not c["batch_id"] for f in c["files"])
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("uploading", total=total)
        for index, chunk in enumerate(state.data["chunks"]):
            if chunk["batch_id"]:
                continue
            chunk["key"] = chunk["key"] or f"xray-cli-{state.data['run']}-{index}"
            state.save()  # the key is known before anything is sent: a resume reuses it
            paths = [Path(f) for f in chunk["files"]]

            def files_factory():
                files = [("files", (p.name, ReadProgress(p, progress, task), mime(p))) for p in paths]
                if state.data.get("labels"):
                    files.append(("labels", ("labels.csv", Path(state.data["labels"]).read_bytes(), "text/csv")))
                return files

            data = {"name": state.data["name"]} if state.data["name"] else {}
            if state.data.get("model"):  # every chunk on the same version or alias
                data["model"] = state.data["model"]
            answer = api.request("POST", "/api/v1/batches", files_factory=files_factory, data=data,
                                 headers={"Idempotency-Key": chunk["key"]}).json()
            chunk["batch_id"] = answer["id"]
            if "labels" in answer:
                chunk["labelled"] = answer["labels"]["images_labelled"]
            state.save()


def wait(api: Api, batch_ids: list[str], console, poll: float = 2.0) -> list[dict]:
    """Follow the batches until every image is done; returns their final bodies."""
    bodies = {batch_id: api.json(f"/api/v1/batches/{batch_id}") for batch_id in batch_ids}
    total = sum(b["total"] for b in bodies.values())
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} images"),
                  TimeRemainingColumn(), console=console) as progress:
        task = progress.add_task("analysing", total=total)
        while True:
            progress.update(task, completed=sum(b["done"] for b in bodies.values()))
            if all(b["finished"] for b in bodies.values()):
                return list(bodies.values())
            time.sleep(poll)
            for batch_id, body in bodies.items():
                if not body["finished"]:
                    bodies[batch_id] = api.json(f"/api/v1/batches/{batch_id}")


def results_rows(api: Api, batch_id: str) -> list[dict]:
    text = api.request("GET", f"/api/v1/batches/{batch_id}/export.csv").text
    return list(csv.DictReader(io.StringIO(text)))


def write_csv(path: Path, rows: list[dict]) -> None:
    columns = ["path", "job_id", "batch_id", "filename", "status", "error", "model_name", "model_version",
               "findings_above_threshold"] + [f"prob_{label}" for label in LABELS] + [f"threshold_{label}" for label in LABELS]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def collect_results(api: Api, state: State) -> list[dict]:
    """Every image of the run with its local path, in the order given."""
    rows = []
    for chunk in state.data["chunks"]:
        by_position = {int(r["position"]): r for r in results_rows(api, chunk["batch_id"])}
        for position, path in enumerate(chunk["files"]):
            row = dict(by_position.get(position, {"status": "missing"}))
            row.update(path=path, batch_id=chunk["batch_id"])
            rows.append(row)
    return rows


def save_heatmaps(api: Api, rows: list[dict], folder: Path) -> int:
    """The overlay of every finding above threshold, as JPEG files named after the image and the finding."""
    folder.mkdir(parents=True, exist_ok=True)
    saved = 0
    for row in rows:
        for label in filter(None, (row.get("findings_above_threshold") or "").split("|")):
            image = api.request("GET", f"/api/v1/jobs/{row['job_id']}/overlays/{label}").content
            (folder / f"{Path(row['path']).stem}__{label}.jpg").write_bytes(image)
            saved += 1
    return saved


def failures(rows: list[dict]) -> list[str]:
    return [f"{row['path']}: {row.get('error') or row['status']}" for row in rows if row["status"] != "succeeded"]


__all__ = ["State", "ServiceError", "upload", "wait", "collect_results", "write_csv", "save_heatmaps", "failures"]
