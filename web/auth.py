"""Signing in and out (Flask-Login sessions), one-time sign-in links, API bearer tokens, the account page."""
from __future__ import annotations

import uuid
from typing import NamedTuple
from urllib.parse import urlsplit

from flask import Blueprint, Flask, flash, g, redirect, render_template, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user

from shared.auth import accounts, sessions
from shared.auth.accounts import AccountError, Viewer
from shared.db.models import User
from shared.jobs import webhooks
from web import page_params
from web.audit import audit
from web.errors import ApiError
from web.security import SAFE_METHODS, check_cookie_change
from web.services import services

blueprint = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.signin"
login_manager.login_message = "Sign in to see this page."


class Bearer(NamedTuple):
    viewer: Viewer
    token_id: uuid.UUID


class Account(UserMixin):
    """The signed-in user as a request knows them. ``get_id`` is the secret of a row of web_sessions
    (shared/auth/sessions.py), which Flask-Login keeps in the cookie: the row, not the cookie, says whether
    this browser is still signed in."""

    def __init__(self, user: User, session_secret: str):
        self.viewer = Viewer.of(user)
        self.username = user.username
        self.is_admin = user.is_admin
        self.session_secret = session_secret

    def get_id(self) -> str:
        return self.session_secret


@login_manager.user_loader
def _load(session_secret: str):
    settings = services().settings
    with services().db.session() as db:
        row = sessions.resolve(db, session_secret, settings.session_idle, settings.session_lifetime)
        return None if row is None else Account(db.get(User, row.user_id), session_secret)


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    app.register_blueprint(blueprint)


def bearer() -> Bearer | None:
    """The request's bearer token if it is valid, resolved once per request. The rate limiter asks first
    (web/security.actor_key), so that only a token that authenticates is charged for what it sends."""
    if "bearer" not in g:
        g.bearer = None
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            with services().db.session() as db:
                token = accounts.resolve_token(db, presented)
                if token is not None:
                    g.bearer = Bearer(Viewer.of(token.user), token.id)
    return g.bearer


def authenticate_api() -> None:
    """Before every API request: a bearer token, or a signed-in browser session (changes only from this
    site with a CSRF header). Nothing else: 401, with how to authenticate."""
    if request.headers.get("Authorization") is not None:
        found = bearer()
        if found is None:
            raise ApiError(401, "the API token is missing, malformed, expired or revoked",
                           headers={"WWW-Authenticate": 'Bearer realm="xray", error="invalid_token"'})
        g.viewer = found.viewer
        with services().db.session() as db:
            audit(db, "token_use", target_type="token", target_id=found.token_id, dedupe=True)
        return
    if current_user.is_authenticated:
        g.viewer = current_user.viewer
        if request.method not in SAFE_METHODS:
            check_cookie_change()
        return
    raise ApiError(401, "authentication required: send 'Authorization: Bearer <token>' (create a token on the "
                        "account page or with `xray-admin create-token`)",
                   headers={"WWW-Authenticate": 'Bearer realm="xray"'})


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect to another host."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("pages.upload_page")


def _sign_in(db, user: User) -> None:
    session.clear()  # a fresh session: nothing from before signing in carries over
    login_user(Account(user, sessions.start(db, user)))
    g.viewer = Viewer.of(user)


@blueprint.route("/signin", methods=["GET", "POST"])
def signin():
    if request.method == "GET":
        return render_template("signin.html", next=request.args.get("next", ""))
    username = request.form.get("username", "")
    with services().db.session() as db:
        user = accounts.authenticate(db, username, request.form.get("password", ""))
        if user is None:
            audit(db, "sign_in_failed", detail={"username": username.strip().lower()[:80]})
        else:
            _sign_in(db, user)
            audit(db, "sign_in", detail={"method": "password"})
    if user is None:
        return render_template("signin.html", next=request.form.get("next", ""),
                               error="Wrong username or password."), 401
    return redirect(_safe_next(request.form.get("next")), code=303)


@blueprint.get("/signin/link/<secret>")
def signin_link(secret: str):
    """The one-time link `make run` prints: signs in and is spent."""
    with services().db.session() as db:
        user = accounts.use_sign_in_link(db, secret)
        if user is None:
            audit(db, "sign_in_failed", detail={"method": "link"})
        else:
            _sign_in(db, user)
            audit(db, "sign_in", detail={"method": "link"})
    if user is None:
        return render_template("signin.html", next="", error="That sign-in link was already used or has expired. "
                               "Restart `make run` for a new one, or sign in with a password."), 401
    return redirect(url_for("pages.upload_page"), code=303)


@blueprint.post("/signout")
def signout():
    if current_user.is_authenticated:
        with services().db.session() as db:
            sessions.end(db, current_user.session_secret)
            audit(db, "sign_out")
    logout_user()
    session.clear()
    return redirect(url_for("auth.signin"), code=303)


def _me(db) -> User:
    return db.get(User, current_user.viewer.user_id)


@blueprint.get("/account")
@login_required
def account():
    with services().db.session() as db:
        tokens = accounts.list_tokens(db, current_user.viewer.user_id)
        rows = [{"token": t, "state": accounts.token_state(t)} for t in tokens]
        me = _me(db)
        pad = session.pop("reveal_pad", None)
        new_token = sessions.take_reveal(db, current_user.session_secret, bytes.fromhex(pad) if pad else None)
        return render_template("account.html", tokens=rows, new_token=new_token,
                               token_days=services().settings.token_days, webhook_url=me.webhook_url,
                               webhook_secret=webhooks.secret_for(db, me))


@blueprint.post("/account/webhook")
@login_required
def set_webhook():
    """The default callback for batches that name none (empty removes it); "rotate" makes a new secret."""
    url = (request.form.get("url") or "").strip() or None
    with services().db.session() as db:
        me = _me(db)
        if request.form.get("rotate"):
            me.webhook_secret = None
            webhooks.secret_for(db, me)
            flash("A new webhook secret: receivers must use it from now on.", "info")
        else:
            try:
                me.webhook_url = webhooks.check_url(url, services().settings.webhook_allow_private) if url else None
            except webhooks.WebhookError as exc:
                flash(f"{exc}; nothing changed.", "error")
                return redirect(url_for("auth.account"), code=303)
            flash("Default webhook saved." if url else "Default webhook removed.", "info")
        audit(db, "webhook_change", target_type="user", target_id=me.id)
    return redirect(url_for("auth.account"), code=303)


@blueprint.post("/account/password")
@login_required
def change_password():
    with services().db.session() as db:
        user = _me(db)
        if user.password_hash and accounts.authenticate(db, user.username, request.form.get("current", "")) is None:
            flash("The current password is wrong; nothing changed.", "error")
            return redirect(url_for("auth.account"), code=303)
        if request.form.get("new", "") != request.form.get("repeat", ""):
            flash("The two new passwords differ; nothing changed.", "error")
            return redirect(url_for("auth.account"), code=303)
        try:
            accounts.set_password(db, user, request.form.get("new", ""), keep_session=current_user.session_secret)
        except AccountError as exc:
            flash(f"{exc}; nothing changed.", "error")
            return redirect(url_for("auth.account"), code=303)
        audit(db, "password_change", target_type="user", target_id=user.id)  # this session stays signed in
    flash("Password changed. Other sessions of yours are signed out.", "info")
    return redirect(url_for("auth.account"), code=303)


@blueprint.post("/account/tokens")
@login_required
def create_token():
    form = page_params.parse(page_params.TokenForm, request.form)
    with services().db.session() as db:
        token, plain = accounts.create_token(db, _me(db), form.name,
                                             expires_in_days=form.days or services().settings.token_days)
        audit(db, "token_create", target_type="token", target_id=token.id)
        # Shown once on the next page from server-side state; the cookie holds only a random pad.
        session["reveal_pad"] = sessions.hold_reveal(db, current_user.session_secret, plain).hex()
    return redirect(url_for("auth.account"), code=303)


@blueprint.post("/account/tokens/<token_id>/revoke")
@login_required
def revoke_token(token_id: str):
    try:
        parsed = uuid.UUID(token_id)
    except ValueError:
        parsed = None
    with services().db.session() as db:
        token = accounts.revoke_token(db, parsed, owner_id=current_user.viewer.user_id) if parsed else None
        if token is None:
            raise ApiError(404, f"there is no token {token_id}")
        audit(db, "token_revoke", target_type="token", target_id=token.id)
    flash("Token revoked: programs using it now get 401.", "info")
    return redirect(url_for("auth.account"), code=303)
