"""The admin page of the model registry: every version with its check and aliases, a push form, alias moves
(promote, roll back, shadow with its share), and how the shadow agrees with the default. The same operations
as the API (web/api_models.py), with the same registry code (shared/model/registry.py) and audit."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from shared.jobs.queue import verify_model
from shared.model import registry
from web.admin import admins_only
from web.audit import audit
from web.comparison import agreement
from web.security import current_viewer
from web.services import services

blueprint = Blueprint("admin_models", __name__, url_prefix="/admin")
blueprint.before_request(admins_only)


@blueprint.get("/models")
def models_page():
    with services().db.session() as session:
        aliases, counts = registry.aliases(session), registry.served_counts(session)
        rows = registry.versions(session)
        compared = None
        if registry.DEFAULT in aliases and registry.SHADOW in aliases:
            compared = agreement(session, registry.lookup(session, registry.DEFAULT),
                                 registry.lookup(session, registry.SHADOW))
        return render_template("models.html", versions=rows, aliases=aliases, counts=counts, compared=compared)


@blueprint.post("/models")
def push_model_form():
    upload = request.files.get("artifact")
    settings = services().settings
    if upload is None or not upload.filename:
        flash("Choose the artifact folder packed as a .tar.gz (xray-model push packs it for you).", "error")
        return redirect(url_for("admin_models.models_page"), code=303)
    data = upload.stream.read(settings.max_model_bytes + 1)
    try:
        if len(data) > settings.max_model_bytes:
            raise registry.RegistryError(f"the archive is larger than {settings.max_model_bytes} bytes", 413)
        with services().db.session() as session:
            row, created = registry.store(session, settings.storage_dir, data, current_viewer().user_id,
                                          settings.max_model_bytes)
            if created:
                audit(session, "model_push", "model", row.version, detail={"size_bytes": row.size_bytes})
            version = row.version
    except registry.RegistryError as exc:
        flash(f"Not pushed: {exc}", "error")
        return redirect(url_for("admin_models.models_page"), code=303)
    if created:
        verify_model(services().celery, version)
    flash(f"Version {version} pushed: a worker is checking it on real X-rays (reload to see the result)."
          if created else f"Version {version} was pushed before; nothing changed.", "info")
    return redirect(url_for("admin_models.models_page"), code=303)


@blueprint.post("/models/aliases")
def move_alias_form():
    name, version = (request.form.get("alias") or "").strip(), (request.form.get("version") or "").strip()
    raw_share = (request.form.get("share") or "").strip()
    try:
        share = float(raw_share) / 100 if raw_share and name == registry.SHADOW else None
    except ValueError:
        flash("The shadow share is a percentage, e.g. 10.", "error")
        return redirect(url_for("admin_models.models_page"), code=303)
    try:
        with services().db.session() as session:
            before, alias = registry.move_alias(session, name, version, current_viewer().user_id, share)
            audit(session, "model_alias", "model", alias.version,
                  detail={"alias": name, "from": before, "to": alias.version, "share": alias.share})
            flash(f"Alias {name} now points at {alias.version} (was {before or 'unset'}).", "info")
    except registry.RegistryError as exc:
        flash(f"Alias not moved: {exc}", "error")
    return redirect(url_for("admin_models.models_page"), code=303)
