"""Pages for people: upload, batch (rendered here, then polls the API), the viewer (one image), history
with search, the model card, delete. All need a signed-in user."""
from __future__ import annotations

import datetime as dt
import math

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask_login import current_user

from shared.db.models import ModelVersion
from shared.jobs import version_results
from shared.model import registry
from shared.model.labels import LABELS, NO_FINDING, display_name
from shared.model.manifest import UNTRAINED_WARNING
from web import batch_actions, batch_rows, page_params, queries
from web.audit import audit_access
from web.auth import login_manager
from web.ids import not_found, parse_id
from web.model_card import card as card_figures
from web.owned import delete_owned_batch, delete_owned_job, owned_batch, owned_job
from web.queries import HistoryFilter
from web.security import current_viewer
from web.serializers import DISCLAIMER, counts_json, iso, job_json, other_versions_json
from web.services import services
from web.uploads import submit_batch

blueprint = Blueprint("pages", __name__)


@blueprint.before_request
def _signed_in():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()  # to the sign-in page, then back here


def register_template_globals(app: Flask) -> None:
    @app.context_processor
    def model_notice():
        try:
            with services().db.session() as session:
                model = queries.current_model(session)
                info = None if model is None else {"name": model.name, "version": model.version, "trained": model.trained}
        except Exception:  # an error page must still render when the database is down
            info = None
        return {"current_model": info, "disclaimer": DISCLAIMER, "untrained_warning": UNTRAINED_WARNING,
                "display_name": display_name, "findings_labels": [l for l in LABELS if l != NO_FINDING]}


@blueprint.get("/")
def upload_page():
    with services().db.session() as session:
        return render_template("upload.html", model_choices=model_choices(session))


def model_choices(session) -> list[dict]:
    """The upload form's model select: each alias, then each ready version (the registry's, shared/model/registry.py)."""
    aliases = registry.aliases(session)
    choices = [{"value": name, "label": f"{name}: {alias.version[:19]}"} for name, alias in aliases.items()
               if name != registry.SHADOW]
    choices += [{"value": row.version, "label": f"{row.name} {row.version[:19]}"} for row in registry.versions(session)
                if row.status == registry.READY and row.stored]
    return choices


@blueprint.post("/batches")
def upload_form():
    batch_id = submit_batch(request.files.getlist("files"), current_viewer(), request.form.get("name"),
                            model=(request.form.get("model") or "").strip() or None)
    with services().db.session() as session:
        batch = owned_batch(session, str(batch_id))
        if batch.job_count == 1:  # one image: straight to it
            return redirect(url_for("pages.job_page", job_id=batch.jobs[0].id), code=303)
    return redirect(url_for("pages.batch_page", batch_id=batch_id), code=303)


@blueprint.get("/batches/<batch_id>")
def batch_page(batch_id: str):
    """One page of rows, narrowed and sorted by the database (?q=&status=&finding=&min=&sort=&page=), rendered
    here (the page works without JavaScript); batch.js then polls for changes to them."""
    params = page_params.parse(page_params.BatchParams)
    narrowed = batch_rows.RowFilter(text=params.q, status=params.status, finding=params.finding,
                                    minimum=(params.min or 0) / 100, sort=params.sort or "position")
    per_page = services().settings.batch_page_size
    with services().db.session() as session:
        batch = batch_rows.head(session, current_viewer(), parse_id(batch_id, "batch"))
        if batch is None:
            raise not_found("batch", batch_id)
        audit_access(session, "view", "batch", batch.id, batch.owner_id)
        jobs, matching = batch_rows.page_of_jobs(session, batch.id, narrowed, params.page, per_page)
        counts = counts_json(queries.status_counts(session, [batch.id])[batch.id], batch.job_count)
        view = {**counts, "url": url_for("api.get_batch", batch_id=batch.id), "jobs": [job_json(j) for j in jobs],
                "cursor": iso(batch_rows.cursor(session, batch.id) or batch.created_at),
                "downloads": {kind: url_for("api.batch_export", batch_id=batch.id, kind=kind) for kind in ("csv", "json", "pdf")}}
        pages = max(1, math.ceil(matching / per_page))
        page = min(params.page, pages)
        query = {k: v for k, v in request.args.items() if k in ("q", "status", "finding", "min", "sort") and v}
        return render_template("batch.html", batch=batch, view=view, page=page, pages=pages, first=(page - 1) * per_page + 1,
                               matching=matching, query=query, params=params, refresh=not counts["finished"])


@blueprint.get("/jobs/<job_id>")
def job_page(job_id: str):
    """The viewer: one large image, every finding's heatmap, window/level, zoom, previous/next."""
    with services().db.session() as session:
        job = owned_job(session, job_id)
        audit_access(session, "view", "job", job.id, job.batch.owner_id)
        before, after = queries.neighbours(session, job)
        view = job_json(job, detail=True)
        view["other_versions"] = other_versions_json(job, version_results.with_maps(session, job.id))
        # ?findings=shown: the owner asked to see findings the input gate hid (works without JavaScript).
        show_hidden = request.args.get("findings") == "shown"
        # Without JavaScript the server draws the overlay: of ?finding= when it names a finding with a heatmap
        # (the viewer keeps the same parameter in the address), else of the finding the viewer opens on.
        visible = view["findings"] if not view["findings_hidden"] or show_hidden else []
        drawable = {f["label"]: f for f in visible if f.get("overlay_url")}
        wanted = request.args.get("finding") or ("" if view["findings_hidden"] else view.get("opening_label") or "")
        return render_template("job.html", job=job, view=view, before=before, after=after, show_hidden=show_hidden,
                               noscript_finding=drawable.get(wanted))


@blueprint.get("/models/<version>")
def model_card(version: str):
    """The model card of a model some worker served: data, split, per-finding quality, thresholds."""
    with services().db.session() as session:
        model = session.get(ModelVersion, page_params.model_version(version))
        if model is None:
            raise not_found("model", version)
        return render_template("model_card.html", model=model, manifest=model.manifest, card=card_figures(model.manifest))


@blueprint.post("/batches/<batch_id>/cancel")
def cancel_batch(batch_id: str):
    stopped = batch_actions.cancel(batch_id)
    flash(f"Cancelled: {stopped} queued image(s) will not be analysed (retry them to analyse them); "
          "images already running finish.", "info")
    return redirect(url_for("pages.batch_page", batch_id=batch_id), code=303)


@blueprint.post("/batches/<batch_id>/retry")
def retry_batch(batch_id: str):
    """The batch's failed images (or the one named by the form's ``job``) are queued again."""
    queued = batch_actions.retry(batch_id, (request.form.get("job") or "").strip() or None)
    flash(f"Queued {queued} failed image(s) again." if queued else "There was no failed image to retry.", "info")
    return redirect(url_for("pages.batch_page", batch_id=batch_id), code=303)


@blueprint.get("/batches/<batch_id>/delete")
def confirm_delete_batch(batch_id: str):
    with services().db.session() as session:
        batch = owned_batch(session, batch_id)
        return render_template("delete.html", what="batch", item=batch, images=batch.job_count,
                               action=url_for("pages.delete_batch", batch_id=batch.id),
                               cancel=url_for("pages.batch_page", batch_id=batch.id))


@blueprint.post("/batches/<batch_id>/delete")
def delete_batch(batch_id: str):
    removed = delete_owned_batch(batch_id)
    flash(f"Deleted the batch and its {removed.jobs} image(s), with their results and heatmaps.", "info")
    return redirect(url_for("pages.history_page"), code=303)


@blueprint.get("/jobs/<job_id>/delete")
def confirm_delete_job(job_id: str):
    with services().db.session() as session:
        job = owned_job(session, job_id)
        return render_template("delete.html", what="image", item=job, images=1,
                               action=url_for("pages.delete_job", job_id=job.id),
                               cancel=url_for("pages.job_page", job_id=job.id))


@blueprint.post("/jobs/<job_id>/delete")
def delete_job(job_id: str):
    removed = delete_owned_job(job_id)
    flash("Deleted the image with its results and heatmaps.", "info")
    target = url_for("pages.batch_page", batch_id=removed.batch_id) if removed.batch_id else url_for("pages.history_page")
    return redirect(target, code=303)


@blueprint.get("/history")
def history_page():
    """Your batches, newest first, with their name, first file and a thumbnail; searchable."""
    per_page = services().settings.history_page_size
    params = page_params.parse(page_params.HistoryParams)
    page = params.page
    narrowed = HistoryFilter(text=params.q, finding=params.finding, date_from=params.date_from, date_to=params.date_to)
    with services().db.session() as session:
        batches, total = queries.list_batches(session, current_viewer(), page, per_page, narrowed)
        counts = queries.status_counts(session, [b.id for b in batches])
        firsts = queries.first_jobs(session, [b.id for b in batches])
        rows = [{"batch": b, "first": firsts.get(b.id), "first_view": job_json(firsts[b.id]) if b.id in firsts else None,
                 **counts_json(counts[b.id], b.job_count)} for b in batches]
        images = []
        if params.q or params.finding:
            since = dt.datetime.combine(params.date_from, dt.time(), dt.UTC) if params.date_from else None
            before = (dt.datetime.combine(params.date_to + dt.timedelta(days=1), dt.time(), dt.UTC)
                      if params.date_to else None)
            images = [job_json(j) for j in batch_rows.matching_images(session, current_viewer().user_id, params.q,
                                                                      params.finding, since, before)]
    pages = max(1, math.ceil(total / per_page))
    query = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template("history.html", rows=rows, page=page, pages=pages, total=total, query=query,
                           searching=bool(query), images=images, images_limit=batch_rows.IMAGES_FOUND)
