"""`xray-pacs`: the bridge between a PACS (Orthanc) and the service, run like the recovery loop.

Each round it (1) reads the PACS's change feed from where it stopped and records every new instance in
``pacs_instances`` (the cursor and the instances live in Postgres, so a restarted bridge resumes where it
was); (2) sends each new CR/DX instance to the service's API as a one-image batch under the bridge's
account, with the Idempotency-Key ``pacs-<source>-<instance>``: a bridge killed after sending but before
recording gets the same batch back on its next try, so an image is analysed exactly once; (3) when the
job has finished (read through the API as the bridge's account, never from the jobs tables), stores a DICOM
Measurement Report (SR TID 1500) and a Parametric Map of the shown findings' heatmaps back into the PACS (and,
with XRAY_DICOM_CAPTURES=1, a JPEG Secondary Capture per shown heatmap for viewers without map support),
in the image's own study (their UIDs come from the job id, so storing twice changes
nothing). Anything else the PACS receives (CT, MR, the bridge's own SR and captures) is skipped.

Several copies may run on one database: instances are recorded once (unique per source and instance) and
each is worked on under a row lock that other copies skip. The image is de-identified by the service on
arrival like any upload; the bridge keeps no image on disk and logs no identifier.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import uuid

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from client.service import Api, ServiceError
from pacs.dicomweb import DicomWeb
from pacs.orthanc import Orthanc
from pacs.results import JobState, job_state
from shared.db.engine import Database
from shared.db.models import PacsCursor, PacsInstance, utcnow
from shared.imaging import dicom_in, dicom_maps, dicom_out, maps
from shared.imaging.dicom_out import Result
from shared.imaging.images import ImageError, decode_image
from shared.ops import metrics, metrics_http
from shared.ops.config import ConfigError, Settings, web_secret_key
from shared.ops.loops import run_until_stopped

log = logging.getLogger("xray.pacs")
PENDING = ("new", "submitted")
MAX_ATTEMPTS = 10  # sending an instance (PACS or service errors) before it is marked failed


class Bridge:
    def __init__(self, db: Database, pacs: Orthanc | DicomWeb, api: Api, source: str = "orthanc",
                 settings: Settings | None = None):
        self.db, self.pacs, self.api, self.source = db, pacs, api, source
        self.settings = settings or Settings()

    def round(self) -> int:
        """Read the whole backlog of changes, then move every pending instance on; returns how many moved."""
        while not self.ingest():
            pass
        moved = self.advance()
        with self.db.session() as session:
            oldest = session.scalar(select(func.min(PacsInstance.created_at)).where(
                PacsInstance.source == self.source, PacsInstance.state.in_(PENDING)))
        metrics.PACS_OLDEST_PENDING.labels(self.source).set((utcnow() - oldest).total_seconds() if oldest else 0)
        metrics.PACS_LAST_ROUND.labels(self.source).set_to_current_time()
        return moved

    # 1. the change feed
    def _cursor(self, session) -> PacsCursor:
        cursor = session.get(PacsCursor, self.source)
        if cursor is None:
            try:
                with session.begin_nested():
                    session.add(PacsCursor(source=self.source, last_seq=0))
            except IntegrityError:
                pass  # another copy made it first
            cursor = session.get(PacsCursor, self.source)
        return cursor

    def ingest(self, limit: int = 100) -> bool:
        """One page of changes; True when the feed is read to its end."""
        with self.db.session() as session:
            since = self._cursor(session).last_seq
        page = self.pacs.changes(since, limit)
        with self.db.session() as session:
            for change in page["Changes"]:
                if change["ChangeType"] == "NewInstance":
                    if session.scalar(select(PacsInstance.id).where(PacsInstance.source == self.source,
                                                                    PacsInstance.instance_id == change["ID"])):
                        continue  # seen before (a DICOMweb listing names every instance every round)
                    try:
                        with session.begin_nested():
                            session.add(PacsInstance(source=self.source, instance_id=change["ID"], seq=change["Seq"]))
                        self._count("seen")
                    except IntegrityError:
                        pass  # seen before (a restart, or another copy)
            cursor = session.get(PacsCursor, self.source, with_for_update=True)
            cursor.last_seq, cursor.updated_at = max(cursor.last_seq, int(page["Last"])), utcnow()
        return bool(page["Done"])

    # 2. and 3. each pending instance
    def advance(self) -> int:
        with self.db.session() as session:
            ids = session.scalars(select(PacsInstance.id).where(PacsInstance.source == self.source,
                                                                PacsInstance.state.in_(PENDING))
                                  .order_by(PacsInstance.seq)).all()
        return sum(self._advance_one(row_id) for row_id in ids)

    def _advance_one(self, row_id) -> bool:
        with self.db.session() as session:
            row = session.scalars(select(PacsInstance).where(PacsInstance.id == row_id, PacsInstance.state.in_(PENDING))
                                  .with_for_update(skip_locked=True)).first()
            if row is None:
                return False  # done meanwhile, or another copy holds it
            before = row.state
            try:
                if row.state == "new":
                    self._submit(row)
                else:
                    self._write_back(row)
            except Exception as exc:  # the PACS, the service or this image: retried, then failed for good
                row.attempts += 1
                status = getattr(exc, "status", None)
                refused = isinstance(exc, ServiceError) and status is not None and 400 <= status < 500 \
                    and status not in (408, 409, 429)
                if refused or row.attempts >= MAX_ATTEMPTS:
                    row.state, row.error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
                    self._count("failed")
                log.warning("PACS instance %s: %s: %s (attempt %d)", row.id, type(exc).__name__, exc, row.attempts)
            row.updated_at = utcnow()
            return row.state != before

    def _count(self, outcome: str) -> None:
        metrics.PACS_INSTANCES.labels(self.source, outcome).inc()

    def _submit(self, row: PacsInstance) -> None:
        modality = str(self.pacs.tags(row.instance_id).get("Modality", "")).upper()
        if modality not in dicom_in.RADIOGRAPH_MODALITIES:
            row.state = "skipped"  # CT, MR, ... and the SR and captures this bridge stores
            self._count("skipped")
            return
        data = self.pacs.file(row.instance_id)
        name = f"pacs-{hashlib.sha256(row.instance_id.encode()).hexdigest()[:12]}.dcm"
        batch = self.api.request("POST", "/api/v1/batches", files={"files": (name, data, "application/dicom")},
                                 data={"name": f"PACS {self.source}"},
                                 headers={"Idempotency-Key": f"pacs-{self.source}-{row.instance_id}"}).json()
        job = batch["jobs"][0]
        row.job_id = uuid.UUID(job["id"])
        row.state = "failed" if job["status"] == "failed" else "submitted"
        row.error = job["error"]
        self._count(row.state)
        log.info("PACS instance %s sent as job %s", row.id, job["id"])

    def _write_back(self, row: PacsInstance) -> None:
        state = job_state(self.api, row.job_id) if row.job_id else JobState("gone", "the job is gone")
        if state.status in ("gone", "failed"):
            row.state, row.error = "failed", state.error
            self._count("failed")
        elif state.result is not None:
            self._store_results(state.result, self.pacs.file(row.instance_id))
            row.state = "done"
            self._count("stored_back")
            log.info("PACS instance %s: results of job %s stored back", row.id, row.job_id)

    def _store_results(self, result: Result, original: bytes) -> None:
        """The SR, the map and (if asked for) the captures, built on the PACS's own image so they join its
        study; the map first, so that the report never refers to a map the PACS has not got."""
        source = dicom_in.read_header(original)
        parametric = dicom_maps.parametric_map(source, result)
        if parametric is not None:
            self.pacs.store(dicom_out.to_bytes(parametric))
        self.pacs.store(dicom_out.to_bytes(dicom_out.structured_report(source, result)))
        shown = dicom_out.shown_labels(result)
        if not shown or not self.settings.dicom_captures:
            return
        try:  # the service's own decode limits: the bridge is no laxer than the upload it made
            grey = maps.base_image(decode_image(original, self.settings.max_image_pixels,
                                                self.settings.max_decoded_bytes))
        except ImageError as exc:
            log.warning("job %s: heatmap captures not stored back (%s)", result.job_id, exc)
            return
        for capture in dicom_out.captures(source, grey, result, shown):
            self.pacs.store(dicom_out.to_bytes(capture))


def pacs_from(settings: Settings) -> Orthanc | DicomWeb:
    """DICOMweb (QIDO/WADO/STOW) when XRAY_PACS_DICOMWEB_URL is set, for any PACS; else Orthanc's REST API,
    whose change feed finds new instances without listing them all."""
    if settings.pacs_dicomweb_url:
        try:  # the key of the hashes DICOMweb instances are recorded by (pacs/dicomweb.py)
            key = web_secret_key(settings).encode()
        except ConfigError as exc:
            raise SystemExit(f"xray-pacs with DICOMweb: {exc}") from None
        return DicomWeb(settings.pacs_dicomweb_url, key, settings.pacs_username, settings.pacs_password)
    return Orthanc(settings.pacs_url, settings.pacs_username, settings.pacs_password)


def bridge_from(settings: Settings) -> Bridge:
    if not (settings.pacs_url or settings.pacs_dicomweb_url) or not settings.pacs_token:
        raise SystemExit("xray-pacs needs XRAY_PACS_DICOMWEB_URL (any PACS's DICOMweb root, e.g. "
                         "http://127.0.0.1:8042/dicom-web) or XRAY_PACS_URL (Orthanc's REST root, e.g. "
                         "http://127.0.0.1:8042), and XRAY_PACS_TOKEN (an API token: `xray-admin create-user pacs` "
                         "then `xray-admin create-token pacs`)")
    return Bridge(Database(settings.database_url), pacs_from(settings), Api(settings.pacs_api_url, settings.pacs_token),
                  settings.pacs_source, settings)


def run(settings: Settings, stop: threading.Event) -> None:
    bridge = bridge_from(settings)
    metrics_http.serve(settings, "pacs", metrics_http.registry("pacs"))
    log.info("PACS bridge: %s (%s) -> %s every %.1f s", settings.pacs_source,
             "DICOMweb" if settings.pacs_dicomweb_url else "Orthanc changes", settings.pacs_api_url,
             settings.pacs_poll_seconds)
    while not stop.is_set():
        try:
            bridge.round()
        except Exception as exc:  # the PACS, the service or the database away: try again next round
            log.warning("PACS round failed (%s: %s); retrying", type(exc).__name__, exc)
        stop.wait(settings.pacs_poll_seconds)


def main() -> None:
    run_until_stopped(run, "pacs")


if __name__ == "__main__":
    main()
