"""Schema migrations (Alembic), as a function and as the ``xray-db`` command."""
from __future__ import annotations

import argparse
from pathlib import Path

from alembic import command
from alembic.config import Config

from shared.ops.config import load_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)


def pending(database_url: str) -> list[str]:
    """Revisions the database still lacks, oldest first (empty: the schema is the newest)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine

    script = ScriptDirectory.from_config(alembic_config(database_url))
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()
    if current == set(script.get_heads()):
        return []
    applied = {rev.revision for head in current for rev in script.iterate_revisions(head, "base")}
    return [rev.revision for rev in reversed(list(script.walk_revisions())) if rev.revision not in applied]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="xray-db", description="Database schema migrations.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("upgrade", help="bring the schema to the newest revision")
    # Kubernetes init containers wait on this until the migration Job is done (deploy/k8s/).
    sub.add_parser("check", help="exit 0 if the schema is the newest revision, 1 (saying what is missing) if not")
    rev = sub.add_parser("revision", help="write a new migration from the models (developers)")
    rev.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)
    url = load_settings().database_url
    if args.command == "upgrade":
        upgrade(url)
        print(f"database schema is up to date ({url.split('@')[-1]})")
    elif args.command == "check":
        try:
            missing = pending(url)
        except Exception as exc:  # not reachable yet: the caller waits and asks again
            raise SystemExit(f"database not reachable ({type(exc).__name__}); schema not checked") from None
        if missing:
            raise SystemExit(f"database schema lacks {len(missing)} migration(s), newest {missing[-1]}: "
                             "run `xray-db upgrade`")
        print("database schema is the newest revision")
    else:
        command.revision(alembic_config(url), message=args.message, autogenerate=True)


if __name__ == "__main__":
    main()
