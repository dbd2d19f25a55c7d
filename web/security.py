"""CSRF protection for the browser forms, and who the current owner is.

Accounts and tokens come later; until then every request belongs to the one configured local owner,
and every query already goes through it.
"""
from flask_wtf.csrf import CSRFProtect

from web.services import services

csrf = CSRFProtect()


def current_owner() -> str:
    return services().settings.owner
