"""STOW-RS (DICOMweb, PS3.18 10.5): ``POST /dicomweb/studies``, so that a modality router or a PACS can push
radiographs to the service without a bridge.

The request is ``multipart/related; type="application/dicom"``, one DICOM instance a part, with an API token
(``Authorization: Bearer``; the token's user owns what is stored: no browser session, no other way in). Each
CR or DX instance becomes a job of one batch, through the same path as an upload (checked, de-identified on
arrival, stored, queued: web/uploads.py); any other object (CT, MR, SR, a part that is no DICOM) is refused.

The answer is the Store Instances Response (PS3.18 10.5.3) in the DICOM JSON model: 200 when every instance
was stored, 202 when some were refused (Failed SOP Sequence, with the reason code), 409 when none was. It
names each instance by its de-identified SOP Instance UID (the keyed hash the stored file carries, PS3.15
action U), never by the UID it was sent with, and gives the URL of its stored file and of its batch.
"""
from __future__ import annotations

import email.parser
import email.policy
import io

import pydicom
from flask import Blueprint, current_app, jsonify, request, url_for
from werkzeug.datastructures import FileStorage

from shared.imaging import dicom_in
from shared.imaging.deidentify import replacement_uid
from web import queries
from web.auth import authenticate_api
from web.contract import route
from web.errors import ApiError
from web.security import current_viewer
from web.services import services
from web.uploads import submit_batch

DICOM_JSON = "application/dicom+json"
# Failure Reason (0008,1197) values, PS3.18 Table I.2-1 / PS3.4 Annex GG.
SOP_CLASS_NOT_SUPPORTED, CANNOT_UNDERSTAND, PROCESSING_FAILURE = 0x0122, 0xC000, 0x0110

blueprint = Blueprint("dicomweb", __name__)


@blueprint.before_request
def _authenticate():
    if not request.headers.get("Authorization", "").lower().startswith("bearer "):
        raise ApiError(401, "STOW-RS needs an API token: send 'Authorization: Bearer <token>' (create one on the "
                            "account page or with `xray-admin create-token`); the token's user owns what is stored",
                       headers={"WWW-Authenticate": 'Bearer realm="xray"'})
    authenticate_api()


def _parts() -> list[bytes]:
    """The request's DICOM parts; 415 for anything but multipart/related of application/dicom."""
    if request.mimetype != "multipart/related" or request.mimetype_params.get("type", "application/dicom").lower() \
            != "application/dicom" or "boundary" not in request.mimetype_params:
        raise ApiError(415, "STOW-RS takes 'multipart/related; type=\"application/dicom\"; boundary=...' with one "
                            f"DICOM instance a part (got {request.mimetype or 'no content type'!r})")
    head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.get_data())
    if not message.is_multipart():
        raise ApiError(400, "the multipart/related body could not be read (a missing or wrong boundary?)")
    parts = [part.get_payload(decode=True) or b"" for part in message.iter_parts()]
    if not parts:
        raise ApiError(400, "the request holds no DICOM instance")
    if len(parts) > services().settings.max_files_per_batch:
        raise ApiError(400, f"{len(parts)} instances were sent; one request may hold at most "
                            f"{services().settings.max_files_per_batch}")
    return parts


def _referenced(sop_class: str, uid: str, reason: int | None = None, url: str | None = None) -> pydicom.Dataset:
    item = pydicom.Dataset()
    if sop_class:
        item.ReferencedSOPClassUID = sop_class
    if uid:
        item.ReferencedSOPInstanceUID = uid
    if reason is not None:
        item.FailureReason = reason
    if url:
        item.RetrieveURL = url
    return item


def _screen(data: bytes, key: bytes, owner: str) -> tuple[pydicom.Dataset, bool]:
    """The instance's reference as answered (de-identified UID), and whether it may be stored."""
    try:
        ds = dicom_in.read_header(data)
    except ValueError:
        return _referenced("", "", CANNOT_UNDERSTAND), False
    sop_class, original = str(ds.get("SOPClassUID", "") or ""), str(ds.get("SOPInstanceUID", "") or "")
    uid = replacement_uid(key, owner, original) if original else ""
    if str(ds.get("Modality", "") or "").upper() not in dicom_in.RADIOGRAPH_MODALITIES:
        return _referenced(sop_class, uid, SOP_CLASS_NOT_SUPPORTED), False
    return _referenced(sop_class, uid), True


@blueprint.post("/studies")
@route((200, None), (202, None), errors=(400, 401, 409, 413, 415, 429), tags=["dicomweb"])
def store_instances():
    """STOW-RS: store CR/DX instances (multipart/related, application/dicom parts) as one batch of the token's
    user. Answers the Store Instances Response (application/dicom+json): 200 all stored, 202 some refused."""
    viewer, key = current_viewer(), current_app.secret_key.encode()
    screened = [(_screen(data, key, str(viewer.user_id)), data) for data in _parts()]
    failed = [reference for (reference, ok), _ in screened if not ok]
    kept = [(reference, data) for (reference, ok), data in screened if ok]
    if not kept:
        raise ApiError(409, f"no instance was stored: {len(failed)} refused (only CR and DX radiographs are "
                            "analysed; other objects, and parts that are no DICOM, are refused)")
    files = [FileStorage(io.BytesIO(data), filename="stow.dcm", content_type="application/dicom") for _, data in kept]
    try:
        batch_id = submit_batch(files, viewer, "STOW-RS")
    except ApiError as exc:
        if exc.code != 415:
            raise
        raise ApiError(409, f"no instance was stored: {exc.description}") from None
    with services().db.session() as session:
        jobs = sorted(queries.get_batch(session, viewer, batch_id).jobs, key=lambda job: job.position)
        stored = []
        for (reference, _), job in zip(kept, jobs):
            if job.error or not job.image_key:
                reference.FailureReason = PROCESSING_FAILURE
                failed.append(reference)
            else:
                reference.RetrieveURL = url_for("api.job_dicom_image", job_id=job.id, _external=True)
                stored.append(reference)
    answer = pydicom.Dataset()
    answer.RetrieveURL = url_for("api.get_batch", batch_id=batch_id, _external=True)
    if stored:
        answer.ReferencedSOPSequence = stored
    if failed:
        answer.FailedSOPSequence = failed
    response = jsonify(answer.to_json_dict())
    response.mimetype, response.status_code = DICOM_JSON, 202 if failed else 200
    response.headers["Location"] = answer.RetrieveURL
    return response
