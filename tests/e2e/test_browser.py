"""A person in a real browser: sign in, choose files, submit the form, watch the batch page fill in; and a
page on another origin that tries to upload with the person's cookies."""
import http.server
import threading

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import SCREENSHOTS, images_loaded, sign_in
from tests.helpers import FIXTURES, corrupt_png, free_port


@pytest.mark.browser
def test_upload_through_the_form_and_watch_results_arrive(live_server, page, tmp_path, pg_url):
    broken = tmp_path / "broken.png"
    broken.write_bytes(corrupt_png())
    good = sorted((FIXTURES / "nih64").glob("*.png"))[:2]

    sign_in(page, live_server, "browser-user", pg_url)
    assert "Research and education only" in page.inner_text(".disclaimer")
    assert "Untrained model" in page.inner_text(".untrained")
    page.fill("#batch-name", "two good, one broken")
    page.set_input_files("#files", [str(p) for p in good] + [str(broken)])
    assert page.inner_text("#selection") == "3 files chosen."
    page.click("#submit")
    page.wait_for_url("**/batches/*")
    page.wait_for_selector("#batch[data-finished='true']", timeout=60_000)

    assert page.inner_text("#batch-summary").startswith("3 of 3 done (2 succeeded, 1 failed")
    assert page.locator("tr.job.status-succeeded").count() == 2
    failed = page.locator("tr.job.status-failed")
    assert failed.count() == 1 and "the PNG file is truncated" in failed.inner_text()
    # Thumbnails are real overlay images that loaded.
    images_loaded(page, "img.thumb")
    assert page.locator("img.thumb").count() == 2
    assert page.locator("td.model.untrained").first.inner_text().startswith("tiny-test-model sha256-")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "batch.png"), full_page=True)

    page.locator("tr.job.status-succeeded a").nth(1).click()
    page.wait_for_selector("#viewer[data-ready='true']")
    assert page.locator("table.findings tbody tr").count() == 14  # "No Finding" is the summary line, not a row
    assert "untrained" in page.inner_text("main").lower()
    page.screenshot(path=str(SCREENSHOTS / "job.png"), full_page=True)

    page.click("text=History")
    assert "two good, one broken" in page.locator("table.history tbody tr").first.inner_text()


@pytest.mark.browser
def test_a_dicom_file_through_the_form_opens_in_the_viewer_with_its_view_flagged(live_server, page, tmp_path, pg_url):
    from tests.dicom_factory import grey_from_png, make_dicom

    scan = tmp_path / "lateral.dcm"
    png = sorted((FIXTURES / "nih64").glob("*.png"))[0]
    scan.write_bytes(make_dicom(grey_from_png(png.read_bytes()), "jpeg2000", monochrome1=True, view="LL"))
    sign_in(page, live_server, "dicom-user", pg_url)
    page.set_input_files("#files", [str(scan)])
    page.click("#submit")
    page.wait_for_url("**/jobs/*")  # one image: straight to its viewer
    page.wait_for_selector("#job-status[data-final='true']", timeout=60_000)
    page.reload()
    page.wait_for_selector("#viewer[data-ready='true']")
    assert page.inner_text("#view-position") == "LL"
    assert "Not a frontal view (LL)" in page.inner_text(".view-warning")
    assert page.locator("#dicom-sr").count() == 1
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "job-dicom.png"), full_page=True)


@pytest.mark.browser
def test_the_form_without_a_csrf_token_is_refused_with_a_readable_page(live_server, page, pg_url):
    sign_in(page, live_server, "browser-user", pg_url)
    response = page.request.post(live_server + "/batches", multipart={"files": {"name": "a.png", "mimeType": "image/png", "buffer": b"x"}})
    assert response.status == 400
    assert "form expired" in response.text()


EVIL_PAGE = """<!doctype html><html><body><p id="state">running</p><script>
const png = Uint8Array.from(atob("{png}"), c => c.charCodeAt(0));
async function attack(url) {{
  const form = new FormData();
  form.append("files", new Blob([png], {{type: "image/png"}}), "stolen.png");
  try {{ await fetch(url, {{method: "POST", mode: "no-cors", credentials: "include", body: form}}); }} catch (e) {{}}
}}
Promise.all([attack("{target}/api/v1/batches"), attack("{target}/batches")])
  .then(() => {{ document.getElementById("state").textContent = "done"; }});
</script></body></html>"""


@pytest.mark.browser
def test_a_page_on_another_origin_cannot_upload_with_the_signed_in_persons_cookies(live_server, page, pg_url):
    import base64

    sign_in(page, live_server, "victim", pg_url)
    html = EVIL_PAGE.format(png=base64.b64encode(sorted((FIXTURES / "nih64").glob("*.png"))[0].read_bytes()).decode(),
                            target=live_server)

    class Evil(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(html.encode())

        def log_message(self, *args):
            pass

    evil = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Evil)  # same site, another origin (port)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        page.goto(f"http://127.0.0.1:{evil.server_address[1]}/")
        page.wait_for_selector("#state:text('done')", timeout=20_000)
    finally:
        evil.shutdown()
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        uploads = conn.execute(sa.text("SELECT count(*) FROM batches b JOIN users u ON u.id = b.owner_id "
                                       "WHERE u.username = 'victim'")).scalar()
    engine.dispose()
    assert uploads == 0
    page.goto(live_server + "/history")  # still signed in: the attack was refused, not the person
    assert "No batches yet" in page.inner_text("main")
