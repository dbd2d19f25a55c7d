"""`make run`'s launcher (deploy/run_local.py): the passwordless local admin and its printed sign-in link
exist only for the embedded run (SQLite on loopback), and the launched processes find the tools of the
launcher's own environment."""
import importlib.util
import os
import sys
from pathlib import Path

import sqlalchemy as sa

from shared.db.models import SignInLink, User
from tests.helpers import REPO, TEST_SECRET_KEY


def _launcher():
    spec = importlib.util.spec_from_file_location("run_local", REPO / "deploy" / "run_local.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _users_and_links(url: str) -> tuple[list[str], int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        users = conn.execute(sa.select(User.username)).scalars().all()
        links = conn.execute(sa.select(sa.func.count()).select_from(SignInLink)).scalar()
    engine.dispose()
    return users, links


def test_on_postgres_the_launcher_makes_no_admin_and_prints_no_link(own_pg_url, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", own_pg_url)
    monkeypatch.setenv("XRAY_SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("XRAY_VAR_DIR", str(tmp_path))
    _, secret = _launcher()._prepare()
    assert secret is None
    assert _users_and_links(own_pg_url) == ([], 0)
    assert "xray-admin create-user" in _launcher().NO_LOCAL_ADMIN


def test_the_embedded_run_gets_a_local_admin_and_a_link_that_lasts_an_hour(tmp_path, monkeypatch):
    for name in ("DATABASE_URL", "XRAY_SECRET_KEY", "XRAY_BIND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XRAY_VAR_DIR", str(tmp_path))
    _, secret = _launcher()._prepare()
    url = f"sqlite:///{tmp_path / 'xray.db'}"
    assert secret and _users_and_links(url) == (["admin"], 1)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        created, expires = conn.execute(sa.select(SignInLink.created_at, SignInLink.expires_at)).one()
    engine.dispose()
    assert round((expires - created).total_seconds()) == 3600


def test_launched_processes_find_the_launchers_own_tools_without_make(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # as when run directly, the environment not activated
    path = _launcher()._environment()["PATH"].split(os.pathsep)
    assert path[0] == str(Path(sys.executable).parent) and (Path(path[0]) / "gunicorn").exists()
