"""Browser fixtures: the web app served on a free port (real Postgres, Redis and worker behind it) and
headless Debian Chromium driven by Playwright (never a downloaded browser)."""
import os

import pytest

from tests.helpers import REPO, ensure_user, wait_until

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = REPO / "test-artifacts"


PASSWORD = "a long enough password"


@pytest.fixture()
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (tests/run.sh does this)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield browser
        browser.close()


@pytest.fixture()
def page(browser):
    return browser.new_page(viewport={"width": 1200, "height": 900})


def images_loaded(page, selector: str) -> None:
    """Wait until every image the selector finds has loaded. Polled from here: the pages' CSP forbids the
    string evaluation Playwright's wait_for_function uses, and the tests keep the CSP on."""
    script = f"[...document.querySelectorAll({selector!r})].every(i => i.complete && i.naturalWidth > 0)"
    wait_until(lambda: page.evaluate(script), 30, interval=0.1, message=f"{selector} images to load")


def sign_in(page, base: str, username: str, pg_url: str) -> None:
    from shared.db.engine import Database

    database = Database(pg_url)
    with database.session() as session:
        ensure_user(session, username, password=PASSWORD)
    database.engine.dispose()
    page.goto(base + "/")
    assert "/signin" in page.url  # pages need a signed-in user
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")


