"""API routes for ground truth and readers: a batch's label file (PUT / DELETE), its evaluation (JSON, CSV,
PDF), readers' labels per image and as an NIH-style CSV, and reader grants (admins). On the API's blueprint
(web/api.make_blueprint), with its authentication.

Who may do what: the owner (and admins) everything; a reader granted the batch reads it, labels its images
and sees its evaluation, but cannot change its truth file, grant, or delete. Anyone else: 404."""
from __future__ import annotations

import json

from flask import Response, current_app, jsonify, request
from sqlalchemy import select

from shared.auth.accounts import find_user
from shared.db.models import TruthLabel, User
from shared.model.labels import LABELS
from shared.truth import labelfile, store
from web import evaluation_views, schemas
from web.api import PRIVATE
from web.audit import audit, audit_access
from web.contract import route
from web.errors import ApiError
from web.owned import owned_batch, readable_batch, readable_job
from web.routes import Routes
from web.security import current_viewer
from web.serializers import DISCLAIMER
from web.services import services

routes = Routes()


def read_label_upload() -> list[labelfile.TruthRow] | None:
    """The label file of a request: a multipart 'labels' file, or a text/csv body; None if there is none.
    A bad file is a 400 that says which line and why."""
    upload = request.files.get("labels")
    if upload is not None:
        data = upload.stream.read(labelfile.MAX_BYTES + 1)
    elif (request.mimetype or "").startswith("text/"):
        data = request.get_data()
    else:
        return None
    try:
        return labelfile.parse(data)
    except labelfile.LabelFileError as exc:
        raise ApiError(400, f"label file: {exc}") from None


def attach_labels(session, batch, rows) -> dict:
    """Called by PUT .../labels and by an upload that carries a label file; audited with counts only."""
    report = store.attach_truth(session, batch, rows, current_app.secret_key.encode())
    audit(session, "labels_attach", "batch", batch.id,
          detail={k: report[k] for k in ("images_labelled", "unmatched_rows", "unmatched_images")})
    return report


@routes.put("/batches/<batch_id>/labels")
@route((200, schemas.LabelReport), errors=(400, 401, 403, 404, 413, 429), form=schemas.LabelUpload, tags=["evaluation"])
def put_labels(batch_id: str):
    """Attach (or replace) the batch's ground truth: an NIH-style CSV in the multipart field 'labels' (or as
    a text/csv body), matched to the batch's images by file name. Answers the match report; the evaluation
    follows within seconds once every image is analysed."""
    rows = read_label_upload()
    if rows is None:
        raise ApiError(400, "send the label file in the multipart field 'labels' (or as a text/csv body)")
    with services().db.session() as session:
        batch = owned_batch(session, batch_id)
        return jsonify({"batch_id": str(batch.id), **attach_labels(session, batch, rows)})


@routes.delete("/batches/<batch_id>/labels")
@route((204, None), errors=(401, 403, 404, 429), tags=["evaluation"])
def delete_labels(batch_id: str):
    """Remove the batch's truth file (readers' labels stay); its evaluation is recomputed without it."""
    with services().db.session() as session:
        batch = owned_batch(session, batch_id)
        removed = store.remove_truth(session, batch)
        audit(session, "labels_remove", "batch", batch.id, detail={"images": removed})
    return "", 204


def _evaluation_body(session, batch) -> dict:
    audit_access(session, "view", "evaluation", batch.id, batch.owner_id)
    return evaluation_views.evaluation_json(session, batch)


@routes.get("/batches/<batch_id>/evaluation")
@route((200, schemas.Evaluation), tags=["evaluation"])
def get_evaluation(batch_id: str):
    """Per model version that ran on the batch: AUROC per finding with patient-level bootstrap intervals,
    ROC and calibration points, sensitivity / specificity / PPV / NPV at the operating points with
    intervals, the confusion tables, subgroups (sex, age band, view); and the readers' Cohen's κ."""
    with services().db.session() as session:
        body = _evaluation_body(session, readable_batch(session, batch_id))
    response = jsonify({**body, "disclaimer": DISCLAIMER})
    response.headers["Cache-Control"] = PRIVATE
    return response


@routes.get("/batches/<batch_id>/evaluation.<kind>")
@route((200, None), tags=["evaluation"])
def evaluation_export(batch_id: str, kind: str):
    """The evaluation as CSV (one row per version and finding), JSON or PDF."""
    if kind not in ("csv", "json", "pdf"):
        raise ApiError(404, f"evaluation exports are .csv, .json or .pdf, not .{kind}")
    with services().db.session() as session:
        body = _evaluation_body(session, readable_batch(session, batch_id))
    if kind == "csv":
        data, mimetype = evaluation_views.evaluation_csv(body), "text/csv"
    elif kind == "json":
        data, mimetype = json.dumps({**body, "disclaimer": DISCLAIMER}, indent=1), "application/json"
    else:
        data, mimetype = evaluation_views.evaluation_pdf(body, DISCLAIMER), "application/pdf"
    return Response(data, mimetype=mimetype, headers={
        "Content-Disposition": f'attachment; filename="evaluation-{batch_id[:8]}.{kind}"', "Cache-Control": PRIVATE})


@routes.get("/batches/<batch_id>/reader-labels.csv")
@route((200, None), errors=(400, 401, 404, 429), query=schemas.ReaderQuery, tags=["evaluation"])
def reader_labels_csv(batch_id: str):
    """Readers' labels as an NIH-style label CSV (``xray-model train --labels`` reads it); ``?reader=`` keeps
    one reader's, one row per image."""
    with services().db.session() as session:
        batch = readable_batch(session, batch_id)
        labels = store.reader_labels(session, batch_id=batch.id)
        reader = request.args.get("reader")
        if reader:  # a name that labelled nothing here (or no one's) gives no rows
            if len(reader) > 80:
                raise ApiError(400, "'reader' is a username: at most 80 characters")
            user = _user(session, reader)
            labels = [r for r in labels if user is not None and r.reader_id == user.id]
        truth = {t.job_id: t for t in session.scalars(select(TruthLabel).where(TruthLabel.batch_id == batch.id))}
        names = {u.id: u.username for u in session.scalars(select(User).where(User.id.in_({r.reader_id for r in labels})))}
        audit_access(session, "download", "reader_labels", batch.id, batch.owner_id)
        data = evaluation_views.reader_labels_csv(batch, labels, truth, names)
    return Response(data, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="reader-labels-{batch_id[:8]}.csv"', "Cache-Control": PRIVATE})


def _job_labels_json(session, job) -> dict:
    viewer = current_viewer()
    rows = store.reader_labels(session, job_ids=[job.id])
    names = {u.id: u.username for u in session.scalars(select(User).where(User.id.in_({r.reader_id for r in rows})))}
    mine = {r.label: r.answer for r in rows if r.reader_id == viewer.user_id}
    body = {"job_id": str(job.id), "labels": list(LABELS), "mine": mine,
            "readers": [{"reader": names.get(r.reader_id), "label": r.label, "answer": r.answer,
                         "model_missed": r.model_missed, "model_version": r.model_version, "blind": r.blind,
                         "at": r.at.isoformat()} for r in rows]}
    if viewer.is_admin or job.batch.owner_id == viewer.user_id:  # readers never see the truth file
        truth = session.get(TruthLabel, job.id)
        body["truth"] = None if truth is None else truth.labels
    return body


@routes.get("/jobs/<job_id>/labels")
@route((200, schemas.JobLabels), tags=["evaluation"])
def get_job_labels(job_id: str):
    """Every reader's answers on this image (and yours in ``mine``); the owner also sees the truth file's."""
    with services().db.session() as session:
        job = readable_job(session, job_id)
        return jsonify(_job_labels_json(session, job))


@routes.put("/jobs/<job_id>/labels")
@route((200, schemas.JobLabels), errors=(400, 401, 403, 404, 409, 429), json=schemas.JobLabelsIn, tags=["evaluation"])
def put_job_labels(job_id: str):
    """Your answers for some or all findings of this image: present, absent or unsure; ``blind``: you read
    it without the model's answer. Stored with the time and the model version you saw."""
    body = request.get_json(silent=True)
    answers = body.get("answers") if isinstance(body, dict) else None
    if not isinstance(answers, dict) or not answers or not all(isinstance(v, str) for v in answers.values()) \
            or not isinstance(body.get("blind", False), bool):
        raise ApiError(400, 'send JSON like {"answers": {"Effusion": "present", "Mass": "absent"}, "blind": false}')
    with services().db.session() as session:
        job = readable_job(session, job_id)
        if job.status != "succeeded":  # 409: the image's state, not the request, is the problem
            raise ApiError(409, f"this image has no result to label yet (status {job.status})")
        try:
            store.set_reader_labels(session, job, current_viewer().user_id, answers, body.get("blind", False),
                                    job.model_version)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        audit(session, "label", "job", job.id, detail={"findings": len(answers), "blind": body.get("blind", False)})
        session.flush()
        return jsonify(_job_labels_json(session, job))


def _user(session, username: str):
    """The user of that name, or None (also for what no username can be: Postgres text holds no NUL)."""
    return None if len(username) > 80 or "\x00" in username else find_user(session, username)


def _admin_only():
    if not current_viewer().is_admin:
        raise ApiError(403, "only an admin grants or revokes a reader role")


@routes.get("/batches/<batch_id>/readers")
@route((200, schemas.Readers), tags=["evaluation"])
def get_readers(batch_id: str):
    """Who besides the owner may read and label the batch."""
    with services().db.session() as session:
        batch = owned_batch(session, batch_id)
        return jsonify({"batch_id": str(batch.id), "readers": [
            {"username": r.user.username, "granted_at": r.granted_at.isoformat()} for r in store.readers(session, batch.id)]})


@routes.put("/batches/<batch_id>/readers/<username>")
@route((200, schemas.Readers), errors=(401, 403, 404, 429), tags=["evaluation"])
def grant_reader(batch_id: str, username: str):
    """(Admins) let ``username`` read and label this batch: not change its truth file, nor delete it."""
    _admin_only()
    with services().db.session() as session:
        batch = owned_batch(session, batch_id)
        user = _user(session, username)
        if user is None or not user.active:
            raise ApiError(404, "there is no such active user")
        if store.grant(session, batch, user.id, current_viewer().user_id):
            audit(session, "reader_grant", "batch", batch.id, detail={"reader_id": str(user.id)})
        session.flush()
        return jsonify({"batch_id": str(batch.id), "readers": [
            {"username": r.user.username, "granted_at": r.granted_at.isoformat()} for r in store.readers(session, batch.id)]})


@routes.delete("/batches/<batch_id>/readers/<username>")
@route((204, None), errors=(401, 403, 404, 429), tags=["evaluation"])
def revoke_reader(batch_id: str, username: str):
    """(Admins) take the reader role on this batch back; the reader's labels stay."""
    _admin_only()
    with services().db.session() as session:
        batch = owned_batch(session, batch_id)
        user = _user(session, username)
        if user is None or not store.revoke(session, batch, user.id):
            raise ApiError(404, "that user is not a reader of this batch")
        audit(session, "reader_revoke", "batch", batch.id, detail={"reader_id": str(user.id)})
    return "", 204
