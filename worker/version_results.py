"""A job's image under another version than its batch's (shadow traffic, reruns): claim the result, run the
image through that version, store its probabilities and maps beside the served result."""
from __future__ import annotations

import logging
import uuid

from shared.imaging import maps
from shared.jobs import version_results
from shared.model.labels import LABELS
from shared.ops import metrics
from shared.truth.evaluate import evaluate_due

log = logging.getLogger(__name__)


def process(ctx, result_id: uuid.UUID) -> str:
    from worker.pipeline import ImageWork, _decode, _in_transaction

    def claim(session):
        row = version_results.claim(session, result_id, ctx.worker_name, ctx.lease_seconds)
        return None if row is None else (row.model_version, row.kind, *version_results.image_of(session, row))

    claimed = _in_transaction(ctx, f"claim version result {result_id}", claim)
    if claimed is None:
        return "skipped"
    version, kind, image_key, batch_id = claimed
    outcome = "failed"
    try:
        served = ctx.using(version)
        work = ImageWork(result_id, image_key, 1)
        _decode(served, work)
        analysis = served.engine.analyse_preprocessed(work.model_input[None])[0]
        probabilities = {label: float(analysis.probabilities[label]) for label in LABELS}
        stored = _in_transaction(ctx, f"record version result {result_id}", lambda session: version_results.succeed(
            session, result_id, ctx.worker_name, probabilities, maps.encode(analysis.heatmaps), served.engine.runtime))
        outcome = "succeeded" if stored else "lost"
    except Exception as exc:  # a bad image or a version that cannot load fails this result, not the worker
        message = f"{type(exc).__name__}: {exc}"
        log.warning("%s result %s on version %s failed: %s", kind, result_id, version, message)
        _in_transaction(ctx, f"record version result {result_id}", lambda session: version_results.fail(
            session, result_id, ctx.worker_name, message))
    metrics.VERSION_RESULTS.labels(kind, outcome).inc()
    try:  # the last rerun of a labelled batch: its evaluation, now (one query when nothing is due)
        evaluate_due(ctx.db, [batch_id])
    except Exception:
        log.exception("evaluating the batch of version result %s failed; the recovery loop will", result_id)
    return outcome
