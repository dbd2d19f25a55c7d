"""API routes of the model registry (shared/model/registry.py): list versions and aliases (anyone signed
in: a batch may name one), push a version, move or remove an alias, delete an unused version, and compare
two versions on shadow traffic (admins). On the API's blueprint (web/api.make_blueprint)."""
from __future__ import annotations

from flask import jsonify, request, url_for

from shared.db.models import ModelVersion
from shared.jobs import version_results
from shared.jobs.queue import VERSION_RESULT_TASK, dispatch_by_version, verify_model
from shared.model import registry
from web import schemas
from web.audit import audit
from web.comparison import agreement
from web.contract import route
from web.errors import ApiError
from web.owned import owned_batch
from web.routes import Routes
from web.security import current_viewer
from web.services import services

routes = Routes()


def _admin() -> None:
    if not current_viewer().is_admin:
        raise ApiError(403, "only an admin can change the model registry")


def _refused(exc: registry.RegistryError) -> ApiError:
    return ApiError(exc.status, str(exc))


def version_json(row: ModelVersion, aliases: dict, served: int = 0) -> dict:
    return {
        "version": row.version, "name": row.name, "architecture": row.architecture, "trained": row.trained,
        "status": row.status, "reason": row.reason, "stored": row.stored, "size_bytes": row.size_bytes,
        "uploaded_at": row.uploaded_at.isoformat() if row.uploaded_at else None,
        "registered_at": row.registered_at.isoformat() if row.registered_at else None,
        "aliases": sorted(name for name, alias in aliases.items() if alias.version == row.version),
        "jobs": served, "card_url": url_for("pages.model_card", version=row.version),
    }


def alias_json(alias) -> dict:
    return {"name": alias.name, "version": alias.version, "share": alias.share, "moved_at": alias.moved_at.isoformat()}


def push_version(stream) -> tuple[dict, bool]:
    """Store a pushed archive (audited) and ask a worker to check it; (the version's JSON, newly stored).
    The API and the admin page both push through here. Raises RegistryError."""
    settings = services().settings
    data = stream.read(settings.max_model_bytes + 1)
    if len(data) > settings.max_model_bytes:
        raise registry.RegistryError(f"the archive is larger than {settings.max_model_bytes} bytes "
                                     "(XRAY_MAX_MODEL_BYTES)", 413)
    with services().db.session() as session:
        row, created = registry.store(session, settings.storage_dir, data, current_viewer().user_id,
                                      settings.max_model_bytes)
        if created:
            audit(session, "model_push", "model", row.version, detail={"size_bytes": row.size_bytes})
        body = version_json(row, registry.aliases(session))
    if created:
        verify_model(services().celery, body["version"])
    return body, created


def move_alias(name: str, version: str, share: float | None) -> tuple[str | None, dict]:
    """Point an alias (audited); (the version it pointed at before, the alias's JSON). Raises RegistryError."""
    with services().db.session() as session:
        before, alias = registry.move_alias(session, name, version, current_viewer().user_id, share)
        audit(session, "model_alias", "model", alias.version,
              detail={"alias": name, "from": before, "to": alias.version, "share": alias.share})
        return before, alias_json(alias)


@routes.get("/models")
@route((200, schemas.ModelRegistry), errors=(401, 429), tags=["models"])
def list_models():
    """Every model version with its status and aliases; a batch may name any ready one, or an alias."""
    with services().db.session() as session:
        aliases, counts = registry.aliases(session), registry.served_counts(session)
        return jsonify({"versions": [version_json(row, aliases, counts.get(row.version, 0))
                                     for row in registry.versions(session)],
                        "aliases": [alias_json(a) for a in aliases.values()]})


@routes.post("/models")
@route((202, schemas.ModelVersionOut), (200, schemas.ModelVersionOut),
       errors=(400, 401, 403, 409, 413, 422, 429), form=schemas.ModelPush, tags=["models"])
def push_model():
    """Push a version: the artifact folder as a tar (gzip allowed) in the 'artifact' field. Answers 202 while a
    worker checks it on real X-rays (status 'verifying', then 'ready' or 'rejected' with the reason); 200 when
    this very folder was pushed before."""
    _admin()
    upload = request.files.get("artifact")
    if upload is None:
        raise ApiError(400, "send the artifact folder as a tar archive in the 'artifact' field (xray-model push does)")
    try:
        body, created = push_version(upload.stream)
    except registry.RegistryError as exc:
        raise _refused(exc) from None
    response = jsonify(body)
    response.status_code = 202 if created else 200
    response.headers["Location"] = url_for("api.get_model", version=body["version"])
    return response


@routes.get("/models/versions/<version>")
@route((200, schemas.ModelVersionOut), errors=(400, 401, 404, 429), tags=["models"])
def get_model(version: str):
    """One version (or the version an alias names): status, the reason it was rejected, its aliases."""
    with services().db.session() as session:
        try:
            row = registry.lookup(session, version)
        except registry.RegistryError as exc:
            raise _refused(exc) from None
        return jsonify(version_json(row, registry.aliases(session), registry.served_counts(session).get(row.version, 0)))


@routes.delete("/models/versions/<version>")
@route((204, None), errors=(400, 401, 403, 404, 409, 429), tags=["models"])
def delete_model(version: str):
    """Delete a version nothing uses; one that produced results, or that an alias names, is kept (409)."""
    _admin()
    with services().db.session() as session:
        try:
            row = registry.lookup(session, version)
            name = row.version
            registry.delete(session, services().settings.storage_dir, name)
        except registry.RegistryError as exc:
            raise _refused(exc) from None
        audit(session, "model_delete", "model", name)
    return "", 204


@routes.put("/models/aliases/<name>")
@route((200, schemas.ModelAliasOut), errors=(400, 401, 403, 404, 409, 429), json=schemas.ModelAliasIn,
       tags=["models"])
def put_alias(name: str):
    """Point an alias at a ready version: promote or roll back 'default', set the 'shadow' (with the share of
    default traffic it also runs), or name any other. New batches see it at once; stored results never change."""
    _admin()
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("version"), str):
        raise ApiError(400, 'send JSON like {"version": "<version or alias>"} (and "share": 0.1 for the shadow)')
    share = body.get("share")
    if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float))):
        raise ApiError(400, "'share' must be a number above 0 and at most 1")
    try:
        _, moved = move_alias(name, body["version"], None if share is None else float(share))
    except registry.RegistryError as exc:
        raise _refused(exc) from None
    return jsonify(moved)


@routes.delete("/models/aliases/<name>")
@route((204, None), errors=(400, 401, 403, 404, 429), tags=["models"])
def delete_alias(name: str):
    """Remove an alias (without 'default', batches that name no model go to the workers' own folder)."""
    _admin()
    with services().db.session() as session:
        try:
            version = registry.remove_alias(session, name)
        except registry.RegistryError as exc:
            raise _refused(exc) from None
        audit(session, "model_alias", "model", version, detail={"alias": name, "from": version, "to": None})
    return "", 204


@routes.get("/models/compare")
@route((200, schemas.ModelAgreement), errors=(400, 401, 403, 404, 429), query=schemas.CompareQuery, tags=["models"])
def compare_models():
    """How two versions agree on the same images (shadow traffic and reruns): per finding, the share of images
    where their threshold decisions differ and the correlation of their probabilities."""
    _admin()
    served, other = request.args.get("served", ""), request.args.get("other", "")
    with services().db.session() as session:
        try:
            a, b = registry.lookup(session, served), registry.lookup(session, other)
        except registry.RegistryError as exc:
            raise _refused(exc) from None
        return jsonify(agreement(session, a, b))


@routes.post("/batches/<batch_id>/reruns")
@route((202, schemas.RerunOut), errors=(400, 401, 404, 409, 429), json=schemas.RerunIn, tags=["models"])
def rerun_batch(batch_id: str):
    """Analyse the batch's images again under another version (a ready one, or an alias), without uploading them
    again. The results are kept beside the served ones; a labelled batch's evaluation then shows both versions."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise ApiError(400, 'send JSON like {"model": "<version or alias>"}')
    with services().db.session() as session:
        batch = owned_batch(session, batch_id)
        try:
            queued, version = queue_rerun(session, batch, body["model"])
        except registry.RegistryError as exc:
            raise _refused(exc) from None
        answer = {"batch_id": str(batch.id), "model_version": version, "queued": len(queued),
                  "evaluation_url": url_for("api.get_evaluation", batch_id=batch.id)}
    dispatch_queued_reruns(queued)
    response = jsonify(answer)
    response.status_code = 202
    return response


def queue_rerun(session, batch, reference: str) -> tuple[dict, str]:
    """Record the rerun of the batch's analysed images under ``reference`` (audited); returns ({result id:
    version}, the version). The caller sends them once the transaction is committed."""
    row = registry.lookup(session, reference)
    if row.status != registry.READY:
        raise registry.RegistryError(f"version {row.version} is {row.status}; only a ready version can run", 409)
    queued = version_results.rerun_batch(session, batch, row.version)
    audit(session, "rerun", "batch", batch.id, detail={"model_version": row.version, "images": len(queued)})
    return queued, row.version


def dispatch_queued_reruns(queued: dict) -> None:
    if not queued:
        return
    sent = dispatch_by_version(services().celery, services().settings, queued, task=VERSION_RESULT_TASK)
    with services().db.session() as session:
        version_results.mark_dispatched(session, sent)
