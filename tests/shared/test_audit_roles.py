"""The audit log on Postgres: TRUNCATE is refused like UPDATE and DELETE (a statement trigger), and the
database role the app runs as (deploy/postgres/roles.sql) cannot truncate, drop or rewrite it."""
import subprocess
import uuid

import pytest
import sqlalchemy as sa

from shared.auth import audit
from shared.db.engine import Database
from shared.db.migrate import upgrade
from shared.db.models import AuditEvent
from tests.helpers import PG_SERVER, REPO


def test_truncate_empties_nothing_even_for_a_superuser(own_pg_url):
    db = Database(own_pg_url)
    with db.session() as session:
        audit.record(session, "sign_in", actor="alice")
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with db.session() as session:
            session.execute(sa.text("TRUNCATE audit_events"))
    with db.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 1
    db.engine.dispose()


@pytest.fixture()
def split_roles():
    """A database set up with roles.sql: migrated by its owner role, used through its app role."""
    name = f"xray_roles_{uuid.uuid4().hex[:8]}"
    owner, app = f"{name}_owner", f"{name}_app"
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    server = PG_SERVER.replace("+psycopg2", "")
    try:
        subprocess.run(["psql", "-q", "-v", f"owner={owner}", "-v", f"app={app}", "-v", f"db={name}",
                        "-d", f"{server}/{name}", "-f", str(REPO / "deploy" / "postgres" / "roles.sql")],
                       check=True, capture_output=True, text=True, timeout=60)
        host = PG_SERVER.split("@", 1)[1]
        upgrade(f"postgresql+psycopg2://{owner}@{host}/{name}")
        yield f"postgresql+psycopg2://{app}@{host}/{name}", f"postgresql+psycopg2://{owner}@{host}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            for role in (app, owner):
                conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def test_the_app_role_writes_rows_but_cannot_truncate_drop_or_rewrite_the_audit_log(split_roles):
    app_url, owner_url = split_roles
    db = Database(app_url)
    with db.session() as session:  # what the service does: add rows
        audit.record(session, "sign_in", actor="alice")
    for statement, refusal in (("TRUNCATE audit_events", "permission denied"),
                               ("DROP TABLE audit_events", "must be owner"),
                               ("ALTER TABLE audit_events DISABLE TRIGGER ALL", "must be owner"),
                               ("UPDATE audit_events SET actor = 'mallory'", "append-only"),
                               ("DELETE FROM audit_events", "append-only")):
        with pytest.raises(sa.exc.DBAPIError, match=refusal):
            with db.session() as session:
                session.execute(sa.text(statement))
    with db.session() as session:
        assert [e.actor for e in session.scalars(sa.select(AuditEvent))] == ["alice"]
    db.engine.dispose()
