"""`xray-db check`: what the Kubernetes init containers wait on before web, workers and recovery start."""
import subprocess
import sys

from shared.db.migrate import pending, upgrade
from tests.helpers import REPO, free_port, service_env


def check(url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shared.db.migrate", "check"], cwd=REPO, capture_output=True,
                          text=True,
                          env=service_env(DATABASE_URL=url), timeout=120)


def test_check_fails_until_the_schema_is_migrated_then_passes(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    upgrade(url, "base")  # an empty database that Alembic knows
    missing = pending(url)
    assert len(missing) >= 2
    before = check(url)
    assert before.returncode == 1
    assert f"lacks {len(missing)} migration(s), newest {missing[-1]}" in before.stderr and "xray-db upgrade" in before.stderr

    upgrade(url, missing[0])  # halfway: still not good enough
    assert pending(url) == missing[1:]
    assert check(url).returncode == 1

    upgrade(url)
    assert pending(url) == []
    after = check(url)
    assert after.returncode == 0 and "newest revision" in after.stdout


def test_check_on_the_migrated_postgres_passes(pg_url):
    assert pending(pg_url) == []
    assert check(pg_url).returncode == 0


def test_check_says_when_the_database_cannot_be_reached():
    result = check(f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/nothing")
    assert result.returncode == 1
    assert "database not reachable (OperationalError); schema not checked" in result.stderr
