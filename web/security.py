"""Headers, CSRF, rate limits and who is asking. See SECURITY.md for the threat model.

- Headers on every response (flask-talisman): a CSP with no inline script and ``frame-ancestors
  'none'``, ``nosniff``, ``Referrer-Policy: no-referrer``; HSTS and Secure cookies when served over TLS.
- CSRF: forms carry Flask-WTF tokens (expiring). The API takes bearer tokens; it accepts a signed-in
  browser's cookie for a change only from the same origin with a valid ``X-CSRFToken`` header, so a
  page elsewhere cannot post through it (127.0.0.1:9000 is the *same site* as 127.0.0.1:8000, so
  SameSite cookies alone would not stop it).
- Rate limits (Flask-Limiter; on the Redis broker, or in memory for the embedded run).
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import current_user
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFProtect, validate_csrf
from werkzeug.middleware.proxy_fix import ProxyFix
from wtforms import ValidationError

from shared.auth.accounts import Viewer
from web.errors import ApiError

csrf = CSRFProtect()
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data: blob:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def init_app(app: Flask, settings) -> None:
    if settings.proxy_count:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_count, x_proto=settings.proxy_count,
                                x_host=settings.proxy_count)
    app.config.update(
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=settings.tls,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=settings.tls,
        WTF_CSRF_TIME_LIMIT=4 * 3600,  # a form left open longer asks for a reload
        RATELIMIT_STORAGE_URI=settings.limiter_storage,
        RATELIMIT_HEADERS_ENABLED=True,  # X-RateLimit-* and Retry-After
        RATELIMIT_KEY_PREFIX=f"xray-limits:{settings.queue_name}",  # deployments sharing a Redis stay apart
        # Redis down must not take uploads down with it: limits fall back to this process's memory.
        RATELIMIT_SWALLOW_ERRORS=True,
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_STORAGE_OPTIONS={"socket_connect_timeout": 1, "socket_timeout": 1}
        if settings.limiter_storage.startswith("redis") else {},
    )
    Talisman(app, force_https=False, strict_transport_security=settings.tls, session_cookie_secure=settings.tls,
             content_security_policy=CONTENT_SECURITY_POLICY, frame_options="DENY", referrer_policy="no-referrer")
    csrf.init_app(app)


def init_limits(app: Flask, settings) -> Limiter:
    """Rate limits, once every route is registered. One Limiter per app: its storage is the app's own."""
    limiter = Limiter(key_func=actor_key, app=app)
    limiter.limit(settings.api_rate_limit, key_func=actor_key)(app.blueprints["api"])
    limiter.limit(settings.api_rate_limit, key_func=actor_key)(app.blueprints["dicomweb"])
    for endpoint in ("api.create_batch", "dicomweb.store_instances", "pages.upload_form"):
        app.view_functions[endpoint] = limiter.limit(settings.upload_rate_limit, key_func=actor_key)(
            app.view_functions[endpoint])
    # Sign-in attempts count per client address, whoever they claim to be.
    app.view_functions["auth.signin"] = limiter.limit(settings.signin_rate_limit, key_func=get_remote_address,
                                                      methods=["POST"])(app.view_functions["auth.signin"])
    app.view_functions["auth.signin_link"] = limiter.limit(settings.signin_rate_limit, key_func=get_remote_address)(
        app.view_functions["auth.signin_link"])
    return limiter


def actor_key() -> str:
    """Rate-limit bucket: a bearer token that authenticates, or the signed-in user, else the client address.
    Limits are checked before the view runs, so the token is resolved here (once per request, see
    web.auth.bearer): a made-up or borrowed token prefix counts against the address it came from, never
    against the real token's owner."""
    from web.auth import bearer  # imported here: web.auth imports this module

    if request.headers.get("Authorization") is not None:
        found = bearer()
        return f"token:{found.token_id}" if found is not None else f"ip:{get_remote_address()}"
    if current_user.is_authenticated:
        return f"user:{current_user.viewer.user_id}"
    return f"ip:{get_remote_address()}"


def same_origin() -> bool:
    """The request says it comes from a page of this site (Origin, or Referer when a browser omits it)."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source or source == "null":
        return False
    theirs, ours = urlsplit(source), urlsplit(request.host_url)
    return (theirs.scheme, theirs.netloc) == (ours.scheme, ours.netloc)


def check_cookie_change() -> None:
    """A change through the API on a browser session: same origin and a valid CSRF header, or 403."""
    if not same_origin():
        raise ApiError(403, "changes through the API from a browser session must come from this site's own pages; "
                            "programs send 'Authorization: Bearer <token>'")
    try:
        validate_csrf(request.headers.get("X-CSRFToken"))
    except ValidationError as exc:
        raise ApiError(403, f"a change through the API from a browser session needs a valid X-CSRFToken header ({exc})")


def current_viewer() -> Viewer:
    """Who is asking; routes that reach here have already required a signed-in user or a token."""
    viewer = getattr(g, "viewer", None)
    if viewer is None and current_user.is_authenticated:
        viewer = g.viewer = current_user.viewer
    if viewer is None:
        raise ApiError(401, "sign in first")
    return viewer
