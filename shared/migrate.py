"""Schema migrations (Alembic), as a function and as the ``xray-db`` command."""
from __future__ import annotations

import argparse
from pathlib import Path

from alembic import command
from alembic.config import Config

from shared.config import load_settings

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="xray-db", description="Database schema migrations.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("upgrade", help="bring the schema to the newest revision")
    rev = sub.add_parser("revision", help="write a new migration from the models (developers)")
    rev.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)
    url = load_settings().database_url
    if args.command == "upgrade":
        upgrade(url)
        print(f"database schema is up to date ({url.split('@')[-1]})")
    else:
        command.revision(alembic_config(url), message=args.message, autogenerate=True)


if __name__ == "__main__":
    main()
