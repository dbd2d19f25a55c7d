"""The admin page of the model registry: every version with its check and aliases, a push form, alias moves
(promote, roll back, shadow with its share), and how the shadow agrees with the default. The same operations
as the API (web/api_models.py), with the same registry code (shared/model/registry.py) and audit."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from shared.model import registry
from web.admin import admins_only
from web.api_models import move_alias, push_version
from web.comparison import agreement
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
    if upload is None or not upload.filename:
        flash("Choose the artifact folder packed as a .tar.gz (xray-model push packs it for you).", "error")
        return redirect(url_for("admin_models.models_page"), code=303)
    try:
        body, created = push_version(upload.stream)
    except registry.RegistryError as exc:
        flash(f"Not pushed: {exc}", "error")
        return redirect(url_for("admin_models.models_page"), code=303)
    version = body["version"]
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
        before, alias = move_alias(name, version, share)
        flash(f"Alias {name} now points at {alias['version']} (was {before or 'unset'}).", "info")
    except registry.RegistryError as exc:
        flash(f"Alias not moved: {exc}", "error")
    return redirect(url_for("admin_models.models_page"), code=303)
