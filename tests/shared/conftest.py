import pytest

from shared.db import Database
from shared.migrate import upgrade


@pytest.fixture(params=["postgres", "sqlite"])
def db(request, tmp_path):
    """A migrated database of the test's own, on each engine the service runs on."""
    if request.param == "postgres":
        url = request.getfixturevalue("own_pg_url")  # relay and reaper look at every job
    else:
        url = f"sqlite:///{tmp_path / 'test.db'}"
        upgrade(url)
    database = Database(url)
    yield database
    database.engine.dispose()
