"""What a worker does with a job id: claim it (and other queued jobs, up to a batch), decode, analyse
in one forward pass, record each job's probabilities and class activation maps.

Batching choice: a worker-side collector in Postgres. The task for job X claims X and, in the same
breath, up to claim_limit − 1 other queued first-attempt jobs (oldest first, SKIP LOCKED). Jobs that
arrive together, from one batch or from many single uploads, share a forward pass; a lone image is never
held back (there is no waiting at all: what is queued now is what runs now); the messages of jobs
claimed this way arrive later and are dropped in milliseconds. Retries and failures stay per image:
each job is claimed, failed or completed by its own conditional update, and a retried job runs alone.
claim_limit is the batch shape with the best throughput on this machine, capped by the latency goal
(worker/batching.py). Chosen over celery-batches (buffers messages in the worker, unacknowledged, and
adds a dependency) and over one task per chunk (groups only what the web sent together, not many single
uploads).

A task does not stop at its first group: while there are queued jobs of its version (for up to
XRAY_DRAIN_SECONDS), it claims the next group while the current one is in the forward pass, and that group is
decoded on a small thread pool (OpenCV and the runtimes release the GIL) meanwhile, so the forward pass does
not wait for decoding (on a GPU the two run side by side; on a CPU they share its cores, and the CPU per image
decides: bench/worker_pipeline.py prints both); each group's results go to Postgres in one transaction. A worker asked to stop
(SIGTERM) claims nothing more and finishes what it holds. The worker draws no pictures: every class's map is stored as a few
hundred bytes of data (shared/imaging/maps.py), and the browser or the web draws overlays when someone looks.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import threading
import time
import uuid

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded

from shared.db.engine import Database, retry_on_disconnect
from shared.imaging import maps
from shared.imaging.images import ImageError, decode_image_and_colour, inspect_image
from shared.jobs import lifecycle
from shared.jobs.storage import LocalStorage, StorageError
from shared.model.gate import Gate, InputCheck, Seen
from shared.model.labels import LABELS, NO_FINDING
from shared.model.manifest import ArtifactError, Manifest
from shared.model.registry import RegistryError
from shared.ops.config import Settings
from shared.truth.evaluate import evaluate_due
from worker import telemetry
from worker.batching import claim_size
from worker.budget import DecodeBudget
from worker.engine import Analysis, InferenceEngine
from worker.models import LoadedModels

log = logging.getLogger(__name__)
_stopping = threading.Event()  # set when the worker is asked to stop: claim nothing more


def stop_draining() -> None:
    """Called in the pool process when its worker is asked to stop (worker/main.py): the task in hand finishes
    the groups it holds and claims no more."""
    _stopping.set()


@dataclasses.dataclass
class WorkerContext:
    settings: Settings
    db: Database
    storage: LocalStorage
    engine: InferenceEngine
    manifest: Manifest
    worker_name: str
    gate: Gate = dataclasses.field(default=None)  # the artifact's input gate (rules only without gate.json)
    pool: concurrent.futures.ThreadPoolExecutor = dataclasses.field(default=None)
    decode_budget: DecodeBudget = dataclasses.field(default=None)
    models: LoadedModels | None = None  # the versions this process serves (worker/models.py)

    def __post_init__(self):
        if self.pool is None:
            self.pool = concurrent.futures.ThreadPoolExecutor(max(1, self.settings.io_threads), "xray-io")
        if self.decode_budget is None:
            self.decode_budget = DecodeBudget(self.settings.decode_budget_bytes)
        if self.gate is None:
            self.gate = Gate.load(self.settings.model_dir)
            if self.gate.learned is None:  # e.g. a model retrained into its folder, which removes gate.json
                log.warning("the model in %s has no learned input gate (gate.json): images meet the rules only; "
                            "fit one with `xray-model gate`", self.settings.model_dir)

    def using(self, version: str | None) -> "WorkerContext":
        """This context serving ``version`` (None: the worker's own folder), loading it on first use."""
        if self.models is None:
            return self
        served = self.models.get(version)
        if served.version == self.manifest.version:
            return self
        return dataclasses.replace(self, engine=served.engine, manifest=served.manifest, gate=served.gate)

    @property
    def lease_seconds(self) -> float:
        return float(self.settings.lease)

    @property
    def drain_seconds(self) -> float:
        """How long a task goes on claiming more groups: well inside its soft time limit."""
        return min(self.settings.drain_seconds, self.settings.task_soft_time_limit / 4)

    @property
    def claim_limit(self) -> int:
        """Jobs to claim at most for one forward pass (worker/batching.py)."""
        return min(self.settings.batch_size,
                   claim_size(self.engine.bucket_seconds, self.settings.latency_goal_ms))


@dataclasses.dataclass
class ImageWork:
    """One claimed job on its way through the worker. ``outcome`` is set once the job reached a final
    state (or was given back): 'succeeded', 'failed', 'lost' (reassigned meanwhile), 'deleted' (by its
    owner meanwhile) or 'released'."""

    job_id: uuid.UUID
    image_key: str | None
    attempts: int
    grey: np.ndarray | None = None  # the decoded original, 8-bit grey
    model_input: np.ndarray | None = None
    input_check: InputCheck | None = None  # is it a frontal chest radiograph? (shared/model/gate.py)
    decode_ms: float = 0.0
    inference_ms: float = 0.0
    outcome: str | None = None
    batch_id: uuid.UUID | None = None  # for the log line of its outcome
    decoding: concurrent.futures.Future | None = None  # its decode on the I/O threads, once started

    @classmethod
    def of(cls, job) -> "ImageWork":
        return cls(job.id, job.image_key, job.attempts, batch_id=job.batch_id)


@dataclasses.dataclass
class Drain:
    """A task's run past its first group: ``following`` is the next group, claimed (and decoding) while the
    current one is in the forward pass; no more is claimed after ``until`` (time.monotonic()) or once the worker
    is asked to stop."""

    version: str | None
    until: float
    following: list[ImageWork] = dataclasses.field(default_factory=list)

    def take(self) -> list[ImageWork]:
        group, self.following = self.following, []
        return group

    @property
    def open(self) -> bool:
        return time.monotonic() < self.until and not _stopping.is_set()


def _in_transaction(ctx: WorkerContext, what: str, operation):
    """Run operation(session) in its own transaction, waiting out a Postgres restart (with backoff)."""
    def attempt():
        with ctx.db.session() as session:
            return operation(session)

    return retry_on_disconnect(attempt, ctx.settings.db_retry_seconds, what)


def _claim_group(ctx: WorkerContext, job_id: uuid.UUID, version: str | None) -> list[ImageWork]:
    """job_id, and other queued jobs of the same version (a forward pass never mixes models)."""
    def claim(session):
        job = lifecycle.claim(session, job_id, ctx.worker_name, ctx.lease_seconds)
        group = [] if job is None else [ImageWork.of(job)]
        if group and group[0].attempts > 1:
            return group  # a retry runs alone
        more = lifecycle.claim_more(session, ctx.worker_name, ctx.lease_seconds, ctx.claim_limit - len(group),
                                    version=version)
        return group + [ImageWork.of(j) for j in more]

    return _in_transaction(ctx, f"claim {job_id}", claim)


def process_job(ctx: WorkerContext, job_id: uuid.UUID) -> str:
    """Run job_id (and the jobs claimed with it) to final states; returns job_id's outcome:
    'succeeded', 'failed', 'lost' (reassigned meanwhile) or 'skipped' (not ours: already claimed or done,
    or of a version this worker does not serve)."""
    found, version = _in_transaction(ctx, f"look up {job_id}", lambda session: lifecycle.version_of(session, job_id))
    if not found:
        log.info("job %s is gone (deleted); skipping", job_id)
        return "skipped"
    if ctx.models is not None and not ctx.models.serves(version):
        log.warning("job %s is for model version %s, which this worker does not serve: route that version to its "
                    "pool's queue (XRAY_VERSION_QUEUES); leaving it queued", job_id, version)
        return "skipped"
    try:
        ctx = ctx.using(version)  # the first job of a cold version waits here; the job is not claimed yet
    except (ArtifactError, RegistryError, OSError, ValueError) as exc:
        log.error("model version %s could not be loaded: %s", version, exc)
        if _in_transaction(ctx, f"claim {job_id}", lambda session: lifecycle.claim(
                session, job_id, ctx.worker_name, ctx.lease_seconds)) is None:
            return "skipped"
        return _fail(ctx, job_id, f"model version {version} could not be loaded on this worker: {exc}")
    group = _claim_group(ctx, job_id, version)
    drain = Drain(version, time.monotonic() + ctx.drain_seconds)
    if not group or group[0].job_id != job_id:
        log.info("job %s is not queued (already claimed or finished); skipping", job_id)
        if group:  # it was taken, but other queued work was: do that instead of idling
            _drain(ctx, group, drain)
        return "skipped"
    return _drain(ctx, group, drain)[job_id]


def _drain(ctx: WorkerContext, group: list[ImageWork], drain: Drain) -> dict[uuid.UUID, str]:
    """``group``, then each group claimed while the one before was in the forward pass; every outcome."""
    outcomes = {}
    try:
        while group:
            outcomes.update(process_group(ctx, group, drain))
            group = drain.take()
    finally:
        _hand_back(ctx, drain.take())  # claimed but never started (an error above): back to the queue
    return outcomes


def _hand_back(ctx: WorkerContext, group: list[ImageWork]) -> None:
    for work in group:
        work.outcome = _release(ctx, work.job_id)


def process_group(ctx: WorkerContext, group: list[ImageWork], drain: Drain | None = None) -> dict[uuid.UUID, str]:
    """Every claimed job of the group to a final state (or back to the queue); returns each one's outcome. With
    ``drain``, the next group is claimed and decoded while this one is in the forward pass."""
    try:
        _analyse_group(ctx, group, drain)
    except SoftTimeLimitExceeded:
        if drain is not None:  # the task is out of time: the next group goes back untouched
            drain.until = 0.0
            _hand_back(ctx, drain.take())
        # The time may have gone to waiting for the database rather than to the image: give unfinished
        # jobs back for another attempt, and fail only those that used their last one.
        for work in group:
            if work.outcome is not None:
                continue
            if work.attempts >= ctx.settings.max_attempts:
                work.outcome = _fail(ctx, work.job_id, "analysis took longer than "
                                     f"{ctx.settings.task_soft_time_limit} s, {work.attempts} times")
            else:
                work.outcome = _release(ctx, work.job_id)
    telemetry.group_finished(group, ctx.manifest.version)
    _evaluate_finished_batches(ctx, group)
    return {work.job_id: work.outcome for work in group}


def _evaluate_finished_batches(ctx: WorkerContext, group: list[ImageWork]) -> None:
    """A labelled batch whose last image this group finished is evaluated now, right here, so its evaluation
    is ready seconds after its last result (shared/truth/evaluate.py; batches without labels cost one query).
    A failure here leaves the batch due: the recovery loop evaluates it."""
    batch_ids = sorted({work.batch_id for work in group if work.batch_id and work.outcome in ("succeeded", "failed")})
    if not batch_ids:
        return
    try:
        evaluate_due(ctx.db, batch_ids)
    except Exception:
        log.exception("evaluating %d finished batch(es) failed; the recovery loop will", len(batch_ids))


def _release(ctx: WorkerContext, job_id: uuid.UUID) -> str:
    """No waiting here: the hard time limit may be near. If the database is still away, the lease runs out
    and the recovery loop returns the job instead."""
    try:
        with ctx.db.session() as session:
            lifecycle.release(session, job_id, ctx.worker_name)
        log.warning("job %s was not finished in this task; returned to the queue for another attempt", job_id)
    except Exception as exc:
        log.warning("job %s was not finished in this task; could not return it now (%s), recovery will", job_id, exc)
    return "released"


def _decode(ctx: WorkerContext, work: ImageWork) -> None:
    started = time.perf_counter()
    if work.image_key is None:
        raise StorageError("the job has no stored image")
    data = ctx.storage.get(work.image_key)
    limits = (ctx.settings.max_image_pixels, ctx.settings.max_decoded_bytes)
    info = inspect_image(data, *limits)
    with ctx.decode_budget.reserve(info.decoded_bytes):
        work.grey, colourfulness = decode_image_and_colour(data, *limits)
    dicom = info.dicom
    work.input_check = ctx.gate.check(Seen(work.grey, colourfulness, info.width, info.height,
                                           view_position=dicom.view_position if dicom else None,
                                           body_part=dicom.body_part if dicom else None))
    work.model_input = ctx.engine.preprocess(work.grey)
    work.decode_ms = (time.perf_counter() - started) * 1000


def _findings(ctx: WorkerContext, analysis: Analysis) -> list[lifecycle.FindingResult]:
    """Every label's probability against its threshold. "No Finding" is derived, never voted: it is yes
    exactly when no finding is above its threshold (the model's own "No Finding" output is kept as a
    probability), so a result never says "No Finding" beside findings."""
    thresholds, probabilities = ctx.manifest.thresholds, analysis.probabilities
    above = {label: probabilities[label] >= thresholds[label] for label in LABELS if label != NO_FINDING}
    above[NO_FINDING] = not any(above.values())
    return [lifecycle.FindingResult(label, probabilities[label], thresholds[label], above[label]) for label in LABELS]


def _refused(ctx: WorkerContext, work: ImageWork) -> bool:
    """With XRAY_INPUT_GATE=refuse, an image the gate says is not a frontal chest radiograph fails here
    with the gate's reason and gets no findings; with "flag" it is analysed and its findings hidden."""
    check = work.input_check
    telemetry.input_checked(check.result if check else "unchecked")
    if check is None or check.ok or ctx.settings.input_gate != "refuse":
        return False
    work.outcome = _fail(ctx, work.job_id, f"not analysed: {check.reason} (input check: {check.result})",
                         input_check=check.as_json())
    return True


def _start_decoding(ctx: WorkerContext, group: list[ImageWork]) -> None:
    for work in group:
        if work.decoding is None:
            work.decoding = ctx.pool.submit(_decode, ctx, work)


def _claim_following(ctx: WorkerContext, drain: Drain) -> None:
    """The next group of the drain's version, claimed now and decoding from now on, while this process runs
    the current group's forward pass."""
    if not drain.open or drain.following:
        return
    drain.following = [ImageWork.of(job) for job in _in_transaction(ctx, "claim more", lambda session: lifecycle.claim_more(
        session, ctx.worker_name, ctx.lease_seconds, ctx.claim_limit, version=drain.version))]
    _start_decoding(ctx, drain.following)


def _analyse_group(ctx: WorkerContext, group: list[ImageWork], drain: Drain | None = None) -> None:
    _start_decoding(ctx, group)
    ready = []
    for work in group:
        try:
            work.decoding.result()
            work.grey = None  # the model input is all that is needed from here on
        except (ImageError, StorageError) as exc:
            work.outcome = _fail(ctx, work.job_id, str(exc))
            continue
        finally:
            work.decoding = None
        if not _refused(ctx, work):
            ready.append(work)
    if drain is not None:
        _claim_following(ctx, drain)
    for start in range(0, len(ready), ctx.engine.max_batch):
        chunk = ready[start:start + ctx.engine.max_batch]
        telemetry.forward_pass(len(chunk))
        done = []
        for work, analysis in zip(chunk, _forward(ctx, chunk)):
            if analysis is not None:
                with telemetry.maps_timer():
                    job_maps = maps.encode(analysis.heatmaps)
                check = work.input_check
                done.append((work, lifecycle.Result(work.job_id, _findings(ctx, analysis),
                                                    lifecycle.Timings(work.decode_ms, work.inference_ms), job_maps,
                                                    check.as_json() if check else None)))
        _record(ctx, done)


def _forward(ctx: WorkerContext, chunk: list[ImageWork]) -> list[Analysis | None]:
    """The chunk in one pass; if the model fails on it, image by image, so only a bad image fails
    (its outcome is set here; its place in the result is None)."""
    started = time.perf_counter()
    try:
        analyses = ctx.engine.analyse_preprocessed(np.stack([work.model_input for work in chunk]))
        for work in chunk:
            work.inference_ms = (time.perf_counter() - started) * 1000 / len(chunk)
        return analyses
    except SoftTimeLimitExceeded:
        raise
    except Exception:
        if len(chunk) > 1:
            log.exception("forward pass failed on a batch of %d; retrying image by image", len(chunk))
    results = []
    for work in chunk:
        started = time.perf_counter()
        try:
            results.append(ctx.engine.analyse_preprocessed(work.model_input[None])[0])
            work.inference_ms = (time.perf_counter() - started) * 1000
        except SoftTimeLimitExceeded:
            raise
        except Exception as exc:  # a model or library error fails this job, not the worker
            log.exception("job %s failed in the model", work.job_id)
            work.outcome = _fail(ctx, work.job_id, f"internal error while analysing the image ({type(exc).__name__}: {exc})")
            results.append(None)
    return results


def _record(ctx: WorkerContext, done: list[tuple[ImageWork, lifecycle.Result]]) -> None:
    """The chunk's results in one transaction (per-job conditional updates, one INSERT of every finding)."""
    if not done:
        return
    recorded = _in_transaction(ctx, f"record {len(done)} results", lambda session: lifecycle.succeed_many(
        session, ctx.worker_name, ctx.manifest.version, [result for _, result in done], runtime=ctx.engine.runtime))
    for work, _ in done:
        if work.job_id in recorded:
            work.outcome = "succeeded"
            continue
        # The lease ran out (e.g. Postgres was away for longer) and the job was handed to another worker:
        # that worker's result is the one recorded (nothing of this attempt was written). Or its owner
        # deleted it meanwhile.
        deleted = not _in_transaction(ctx, f"look up {work.job_id}", lambda session, job_id=work.job_id:
                                      lifecycle.exists(session, job_id))
        log.warning("job %s was %s while this worker ran it; its result is discarded", work.job_id,
                    "deleted" if deleted else "reassigned")
        work.outcome = "deleted" if deleted else "lost"


def _fail(ctx: WorkerContext, job_id: uuid.UUID, message: str, input_check: dict | None = None) -> str:
    log.warning("job %s failed: %s", job_id, message)
    try:
        _in_transaction(ctx, f"record failure of {job_id}", lambda session: lifecycle.fail(
            session, job_id, message, worker=ctx.worker_name, input_check=input_check))
    except lifecycle.InvalidTransition:
        log.warning("job %s was reassigned while this worker ran it; its failure is discarded", job_id)
        return "lost"
    return "failed"
