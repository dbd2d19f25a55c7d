import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shared.db.migrate import upgrade
from shared.db.models import Base


def _diff(url):
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), Base.metadata)


def test_migrations_build_exactly_the_models_on_postgres(pg_url):
    assert _diff(pg_url) == []


def test_migrations_build_exactly_the_models_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'nested' / 'x.db'}"
    upgrade(url)  # also creates the missing folder
    upgrade(url)  # and is idempotent
    assert _diff(url) == []
    tables = set(sa.inspect(sa.create_engine(url)).get_table_names())
    assert {"batches", "jobs", "findings", "model_versions", "alembic_version"} <= tables
