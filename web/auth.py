"""Signing in and out (Flask-Login sessions), one-time sign-in links, API bearer tokens, the account page."""
from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from flask import Blueprint, Flask, flash, g, redirect, render_template, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

from shared import accounts, webhooks
from shared.accounts import AccountError, Viewer
from shared.models import User
from web.audit import audit
from web.errors import ApiError
from web.security import SAFE_METHODS, check_cookie_change
from web.services import services

blueprint = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.signin"
login_manager.login_message = "Sign in to see this page."


class Account(UserMixin):
    """The signed-in user as the session knows them. The session id includes when the password last
    changed, so changing it (or an admin resetting it) signs out every other session."""

    def __init__(self, user: User):
        self.viewer = Viewer.of(user)
        self.username = user.username
        self.is_admin = user.is_admin
        stamp = user.password_changed_at.timestamp() if user.password_changed_at else 0
        self._session_id = f"{user.id}:{stamp:.6f}"

    def get_id(self) -> str:
        return self._session_id


@login_manager.user_loader
def _load(session_id: str):
    user_id, _, stamp = session_id.partition(":")
    try:
        with services().db.session() as db:
            user = db.get(User, uuid.UUID(user_id))
            if user is None or not user.active:
                return None
            account = Account(user)
    except ValueError:
        return None
    return account if account.get_id() == session_id else None


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    app.register_blueprint(blueprint)


def authenticate_api() -> None:
    """Before every API request: a bearer token, or a signed-in browser session (changes only from this
    site with a CSRF header). Nothing else: 401, with how to authenticate."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, presented = header.partition(" ")
        with services().db.session() as db:
            token = accounts.resolve_token(db, presented) if scheme.lower() == "bearer" else None
            if token is None:
                raise ApiError(401, "the API token is missing, malformed, expired or revoked",
                               headers={"WWW-Authenticate": 'Bearer realm="xray", error="invalid_token"'})
            g.viewer = Viewer.of(token.user)
            audit(db, "token_use", target_type="token", target_id=token.id, dedupe=True)
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


def _sign_in(user: User) -> None:
    session.clear()  # a fresh session: nothing from before signing in carries over
    login_user(Account(user))
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
            _sign_in(user)
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
            _sign_in(user)
            audit(db, "sign_in", detail={"method": "link"})
    if user is None:
        return render_template("signin.html", next="", error="That sign-in link was already used or has expired. "
                               "Restart `make run` for a new one, or sign in with a password."), 401
    return redirect(url_for("pages.upload_page"), code=303)


@blueprint.post("/signout")
def signout():
    if current_user.is_authenticated:
        with services().db.session() as db:
            audit(db, "sign_out")
    logout_user()
    session.clear()
    return redirect(url_for("auth.signin"), code=303)


def _me(db) -> User:
    return db.get(User, current_user.viewer.user_id)


@blueprint.get("/account")
def account():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    with services().db.session() as db:
        tokens = accounts.list_tokens(db, current_user.viewer.user_id)
        rows = [{"token": t, "state": accounts.token_state(t)} for t in tokens]
        me = _me(db)
        return render_template("account.html", tokens=rows, new_token=session.pop("new_token", None),
                               token_days=services().settings.token_days, webhook_url=me.webhook_url,
                               webhook_secret=webhooks.secret_for(db, me))


@blueprint.post("/account/webhook")
def set_webhook():
    """The default callback for batches that name none (empty removes it); "rotate" makes a new secret."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
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
def change_password():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    with services().db.session() as db:
        user = _me(db)
        if user.password_hash and accounts.authenticate(db, user.username, request.form.get("current", "")) is None:
            flash("The current password is wrong; nothing changed.", "error")
            return redirect(url_for("auth.account"), code=303)
        if request.form.get("new", "") != request.form.get("repeat", ""):
            flash("The two new passwords differ; nothing changed.", "error")
            return redirect(url_for("auth.account"), code=303)
        try:
            accounts.set_password(db, user, request.form.get("new", ""))
        except AccountError as exc:
            flash(f"{exc}; nothing changed.", "error")
            return redirect(url_for("auth.account"), code=303)
        audit(db, "password_change", target_type="user", target_id=user.id)
        login_user(Account(user))  # this session stays signed in; every other one is signed out
    flash("Password changed. Other sessions of yours are signed out.", "info")
    return redirect(url_for("auth.account"), code=303)


@blueprint.post("/account/tokens")
def create_token():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    try:
        days = float(request.form.get("days") or services().settings.token_days)
    except ValueError:
        days = services().settings.token_days
    days = min(max(days, 1.0), 3650.0)
    with services().db.session() as db:
        token, plain = accounts.create_token(db, _me(db), request.form.get("name", ""), expires_in_days=days)
        audit(db, "token_create", target_type="token", target_id=token.id)
    session["new_token"] = plain  # shown once on the next page, then gone from the session
    return redirect(url_for("auth.account"), code=303)


@blueprint.post("/account/tokens/<token_id>/revoke")
def revoke_token(token_id: str):
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
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
