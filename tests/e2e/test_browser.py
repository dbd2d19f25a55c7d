"""A person in a real browser: choose files, submit the form, watch the batch page fill in."""
import threading

import pytest
from werkzeug.serving import make_server

from tests.helpers import FIXTURES, REPO, corrupt_png, free_port

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = REPO / "test-artifacts"


@pytest.fixture()
def live_server(pg_stack):
    from web import create_app

    app = create_app(dict(pg_stack))  # CSRF on, as in production
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    thread.join(10)


@pytest.fixture()
def page():
    import os

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (tests/run.sh does this)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        yield page
        browser.close()


@pytest.mark.browser
def test_upload_through_the_form_and_watch_results_arrive(live_server, page, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(corrupt_png())
    good = sorted((FIXTURES / "nih64").glob("*.png"))[:2]

    page.goto(live_server + "/")
    assert "Research and education only" in page.inner_text(".disclaimer")
    assert "Untrained model" in page.inner_text(".untrained")
    page.set_input_files("#files", [str(p) for p in good] + [str(broken)])
    assert page.inner_text("#selection") == "3 files chosen."
    page.click("#submit")
    page.wait_for_url("**/batches/*")
    page.wait_for_selector("#batch[data-finished='true']", timeout=60_000)

    assert page.inner_text("#batch-summary").startswith("3 of 3 done (2 succeeded, 1 failed")
    assert page.locator("tr.job.status-succeeded").count() == 2
    failed = page.locator("tr.job.status-failed")
    assert failed.count() == 1 and "damaged or truncated" in failed.inner_text()
    # Thumbnails are real overlay images that loaded.
    page.wait_for_function("[...document.querySelectorAll('img.thumb')].every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator("img.thumb").count() == 2
    assert page.locator("td.model.untrained").first.inner_text().startswith("tiny-test-model sha256-")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "batch.png"), full_page=True)

    page.locator("tr.job.status-succeeded a").nth(1).click()
    page.wait_for_selector("table.findings")
    assert page.locator("table.findings tbody tr").count() == 15
    page.wait_for_function("[...document.querySelectorAll('img.overlay')].every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator("img.overlay").count() >= 1
    assert "untrained" in page.inner_text("main").lower()
    page.screenshot(path=str(SCREENSHOTS / "job.png"), full_page=True)

    page.click("text=History")
    assert page.locator("table.history tbody tr").count() >= 1


@pytest.mark.browser
def test_the_form_without_a_csrf_token_is_refused_with_a_readable_page(live_server, page):
    response = page.request.post(live_server + "/batches", multipart={"files": {"name": "a.png", "mimeType": "image/png", "buffer": b"x"}})
    assert response.status == 400
    assert "form expired" in response.text()
