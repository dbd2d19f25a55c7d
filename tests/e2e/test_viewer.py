"""The reading-room viewer and the pages around it, in headless Chromium on real services: picking a
finding, opacity, zoom, window/level, previous/next; the heatmap drawn in the canvas against the server's
own overlay; downloads; PDFs; phones; accessibility (axe-core); the batch page without JavaScript;
polling that stops when the batch is done and while the tab is hidden."""
import csv
import io
import json
import subprocess
import uuid

import cv2
import numpy as np
import pytest
import sqlalchemy as sa

from shared.db.engine import Database
from shared.jobs import lifecycle
from tests.e2e.conftest import PASSWORD, SCREENSHOTS, images_loaded, sign_in
from tests.helpers import REPO, ensure_user, real_xray_bytes, wait_until

pytestmark = pytest.mark.browser
AXE = REPO / "tests" / "js" / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP, PHONE = {"width": 1440, "height": 900}, {"width": 390, "height": 844}


@pytest.fixture()
def batch(live_server, page, pg_url):
    """A signed-in page and a finished batch of four real X-rays uploaded through the form."""
    sign_in(page, live_server, "reader", pg_url)
    paths = sorted((REPO / "tests" / "fixtures" / "nih64").glob("*.png"))
    name = f"viewer batch {uuid.uuid4().hex[:8]}"
    page.fill("#batch-name", name)
    page.set_input_files("#files", [str(p) for p in paths])
    page.click("#submit")
    page.wait_for_url("**/batches/*")
    page.wait_for_selector("#batch[data-finished='true']", timeout=60_000)
    batch_id = page.url.rsplit("/", 1)[1]
    body = page.request.get(f"{live_server}/api/v1/batches/{batch_id}").json()
    return {"id": batch_id, "jobs": body["jobs"], "base": live_server, "name": name}


def canvas_rgb(page) -> np.ndarray:
    data = page.evaluate("""() => { const c = document.getElementById('view');
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }""")
    height, width = page.evaluate("() => [document.getElementById('view').height, document.getElementById('view').width]")
    return np.array(data, np.uint8).reshape(height, width, 4)[:, :, :3]


def server_overlay(page, base: str, job_id: str, label: str, opacity: float) -> np.ndarray:
    response = page.request.get(f"{base}/api/v1/jobs/{job_id}/overlays/{label}?format=png&opacity={opacity}")
    assert response.ok
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(response.body(), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def set_range(page, selector: str, value) -> None:
    """Move a slider as a person would: its value changes and it fires 'input'."""
    page.eval_on_selector(selector, "(e, v) => { e.value = v; e.dispatchEvent(new Event('input', {bubbles: true})); }", str(value))


def drawn(page, previous: int) -> int:
    return wait_until(lambda: (n := int(page.get_attribute("#viewer", "data-drawn") or 0)) > previous and n, 10,
                      interval=0.05, message="the viewer to redraw")


def test_the_viewer_draws_each_findings_map_like_the_server_and_zooms_windows_and_pages(batch, page):
    base, first = batch["base"], batch["jobs"][0]
    page.set_viewport_size(DESKTOP)
    page.goto(base + first["page_url"])
    page.wait_for_selector("#viewer[data-ready='true']")
    count = int(page.get_attribute("#viewer", "data-drawn"))

    page.click("table.findings .pick[data-label='Mass']")  # pick a finding by its row
    count = drawn(page, count)
    assert page.input_value("#finding") == "Mass" and "selected" in page.get_attribute("#finding-Mass", "class")
    for opacity in (0.4, 1.0):  # the canvas matches the server-rendered overlay of the same finding
        set_range(page, "#opacity", opacity)
        count = drawn(page, count)
        difference = np.abs(canvas_rgb(page).astype(int) - server_overlay(page, base, first["id"], "Mass", opacity))
        # Equal but for rounding: OpenCV resizes in fixed point, the browser in floating point, and one level
        # of the map moves a JET channel by up to 4.
        assert difference.mean() < 0.5 and np.percentile(difference, 99) <= 4 and difference.max() <= 8, \
            (difference.max(), np.percentile(difference, 99), difference.mean())

    order = [v for v in page.eval_on_selector_all("#finding option", "os => os.map(o => o.value)") if v]
    page.keyboard.press("ArrowDown")  # keys step through the findings, most probable first
    count = drawn(page, count)
    assert page.input_value("#finding") == order[(order.index("Mass") + 1) % len(order)]
    page.keyboard.press("h")  # toggle: the original alone
    count = drawn(page, count)
    plain = canvas_rgb(page)
    assert (plain[:, :, 0] == plain[:, :, 1]).all() and (plain[:, :, 1] == plain[:, :, 2]).all()
    original = cv2.imdecode(np.frombuffer(real_xray_bytes(4)[0][1], np.uint8), cv2.IMREAD_GRAYSCALE)
    assert np.abs(plain[:, :, 0].astype(int) - original).max() <= 1

    set_range(page, "#window", 64)  # window/level on the original: more contrast
    count = drawn(page, count)
    windowed = canvas_rgb(page)[:, :, 0]
    assert windowed.std() > plain[:, :, 0].std() * 1.5

    scale = lambda: page.evaluate("() => window.xrayViewer.scale")  # noqa: E731
    before = scale()
    page.click("#zoom-in")
    assert scale() == pytest.approx(before * 1.25)
    box = page.locator("#stage").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -300)
    wait_until(lambda: scale() > before * 1.25, 5, message="the wheel to zoom in")
    x = page.evaluate("() => window.xrayViewer.x")
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 80, box["y"] + box["height"] / 2, steps=4)
    page.mouse.up()
    assert page.evaluate("() => window.xrayViewer.x") == pytest.approx(x + 80, abs=2)  # dragged
    SCREENSHOTS.mkdir(exist_ok=True)
    page.keyboard.press("0")
    page.keyboard.press("h")
    page.screenshot(path=str(SCREENSHOTS / "viewer-desktop.png"), full_page=True)

    page.keyboard.press("ArrowRight")  # the next image of the batch
    page.wait_for_url(base + batch["jobs"][1]["page_url"])
    page.wait_for_selector("#viewer[data-ready='true']")
    assert page.is_visible("#prev-image")
    page.set_viewport_size(PHONE)
    page.reload()
    page.wait_for_selector("#viewer[data-ready='true']")
    page.screenshot(path=str(SCREENSHOTS / "viewer-phone.png"), full_page=True)
    page.emulate_media(color_scheme="dark")
    page.evaluate("() => localStorage.removeItem('xray-theme')")
    page.reload()
    page.wait_for_selector("#viewer[data-ready='true']")
    assert page.evaluate("() => document.documentElement.dataset.theme") == "dark"
    page.screenshot(path=str(SCREENSHOTS / "viewer-phone-dark.png"), full_page=True)


def test_no_finding_is_a_summary_and_each_probability_shows_the_models_quality(batch, page):
    page.goto(batch["base"] + batch["jobs"][0]["page_url"])
    rows = page.locator("table.findings tbody tr")
    assert rows.count() == 14 and "No Finding" not in page.inner_text("table.findings")
    assert "No Finding" not in page.inner_text("#finding")  # never heatmapped
    assert page.locator("table.findings .unreliable").count() == 14  # the tiny test model measured nothing
    page.click("footer a[href*='/models/']")  # the model card is a page of its own
    assert "Model card" in page.inner_text("h1") and page.locator("table.quality tbody tr").count() == 15


def test_downloads_parse_and_hold_every_job_and_the_pdfs_have_pages(batch, page, tmp_path):
    api = f"{batch['base']}/api/v1/batches/{batch['id']}"
    rows = list(csv.DictReader(io.StringIO(page.request.get(api + "/export.csv").text())))
    assert len(rows) == 4 and {r["job_id"] for r in rows} == {j["id"] for j in batch["jobs"]}
    assert all(float(r["prob_Mass"]) >= 0 and r["model_version"] and r["threshold_Edema"] for r in rows)
    exported = json.loads(page.request.get(api + "/export.json").text())
    assert len(exported["jobs"]) == 4 and len(exported["jobs"][0]["probabilities"]) == 15
    assert "not for diagnosis" in exported["disclaimer"]
    for name, url in (("summary", api + "/export.pdf"), ("report", f"{batch['base']}/api/v1/jobs/{batch['jobs'][0]['id']}/report.pdf")):
        response = page.request.get(url)
        assert response.ok and response.headers["content-type"] == "application/pdf"
        pdf = tmp_path / f"{name}.pdf"
        pdf.write_bytes(response.body())
        subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / name)], check=True, timeout=60)
        pages = sorted(tmp_path.glob(f"{name}-*.png"))
        assert pages
        first = cv2.imread(str(pages[0]), cv2.IMREAD_GRAYSCALE)
        assert first.std() > 10 and (first < 128).mean() > 0.005  # text and pictures, not a blank page
        SCREENSHOTS.mkdir(exist_ok=True)
        cv2.imwrite(str(SCREENSHOTS / f"{name}-pdf-page1.png"), first)


def _pages(batch) -> list[str]:
    job = batch["jobs"][0]
    return ["/", f"/batches/{batch['id']}", job["page_url"], "/history", "/history?page=99", "/account",
            f"/batches/{batch['id']}/delete", job["model"]["card_url"], "/history?q=viewer", "/jobs/no-such-image"]


def test_every_page_fits_a_phone_and_has_no_accessibility_violations(batch, browser):
    if not AXE.exists():
        pytest.skip(f"{AXE} is missing: npm ci --prefix tests/js (tests/run.sh does this)")
    # axe-core is injected as a script: this test's browser lets it past the pages' CSP (the test's own
    # instrument; every other test keeps the CSP whole).
    page = browser.new_context(bypass_csp=True).new_page()
    sign_in_again(page, batch)
    failures = []
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        for theme in ("light", "dark"):
            for path in _pages(batch) + ["/signin"]:
                if path == "/signin":
                    page.context.clear_cookies()
                page.goto(batch["base"] + path)
                page.evaluate(f"() => {{ document.documentElement.dataset.theme = '{theme}'; }}")
                if page.locator("#viewer").count():
                    page.wait_for_selector("#viewer[data-ready='true']")
                width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
                if width[0] > width[1]:
                    failures.append(f"{path} at {viewport['width']} px scrolls sideways ({width[0]} > {width[1]})")
                page.add_script_tag(path=str(AXE))
                result = page.evaluate("async () => (await axe.run(document)).violations.map("
                                       "v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', '))")
                failures += [f"{path} at {viewport['width']} px, {theme}: {v}" for v in result]
                if viewport is PHONE and theme == "light" and path != "/signin":
                    small = page.evaluate("""() => [...document.querySelectorAll('a, button, input, select')]
                        .filter(e => e.offsetParent && !e.closest('p, td, li, .caption, footer, .muted'))
                        .map(e => e.getBoundingClientRect()).filter(r => r.height < 24 || r.width < 24).length""")
                    if small:
                        failures.append(f"{path} on a phone: {small} touch targets under 24 px")
            sign_in_again(page, batch)
    assert not failures, "\n".join(failures)


def sign_in_again(page, batch):
    page.goto(batch["base"] + "/signin")
    if page.locator("#username").count():
        page.fill("#username", "reader")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(batch["base"] + "/")


def test_the_batch_page_lists_its_rows_without_javascript(batch, browser, live_server):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(live_server + "/signin")
    page.fill("#username", "reader")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_server}/batches/{batch['id']}")
    assert page.locator("tr.job").count() == 4 and "4 of 4 done" in page.inner_text("#batch-summary")
    assert page.locator("img.thumb").count() == 4
    context.close()


def test_polling_asks_only_for_changes_stops_when_done_and_pauses_while_hidden(batch, page, live_server, pg_url):
    page.goto(f"{live_server}/batches/{batch['id']}")  # finished: no polling at all
    page.wait_for_timeout(2500)
    assert page.get_attribute("#batch", "data-polls") == "0" and page.title().startswith("Done: ")

    database = Database(pg_url)  # a batch whose jobs stay queued: recorded, never sent to a worker
    with database.session() as session:
        owner = ensure_user(session, "reader").id
        waiting = lifecycle.create_batch(
            session, owner, [lifecycle.NewJob("w.png", "0" * 64, 1, image_key="uploads/none.png")]).id
    database.engine.dispose()
    requests = []
    page.on("request", lambda r: requests.append(r.url) if "/api/v1/batches/" in r.url else None)
    page.goto(f"{live_server}/batches/{waiting}")
    wait_until(lambda: int(page.get_attribute("#batch", "data-polls")) >= 2, 10, message="polls")
    assert all("since=" in url for url in requests) and page.title().startswith("0% · ")
    page.evaluate("() => { Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
                  " document.dispatchEvent(new Event('visibilitychange')); }")
    page.wait_for_timeout(1500)
    paused = int(page.get_attribute("#batch", "data-polls"))
    page.wait_for_timeout(3000)
    assert int(page.get_attribute("#batch", "data-polls")) == paused  # hidden: no requests
    page.evaluate("() => { Object.defineProperty(document, 'hidden', {value: false, configurable: true});"
                  " document.dispatchEvent(new Event('visibilitychange')); }")
    wait_until(lambda: int(page.get_attribute("#batch", "data-polls")) > paused, 10, message="polling to resume")
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE jobs SET status = 'failed', error = 'test', finished_at = now(), updated_at = now() "
                             "WHERE batch_id = :b"), {"b": str(waiting)})
    engine.dispose()
    page.wait_for_selector("#batch[data-finished='true']", timeout=15_000)
    done = int(page.get_attribute("#batch", "data-polls"))
    page.wait_for_timeout(3000)
    assert int(page.get_attribute("#batch", "data-polls")) == done and page.title().startswith("Done: ")


def test_a_single_image_upload_goes_straight_to_its_page(live_server, page, pg_url):
    sign_in(page, live_server, "single-reader", pg_url)
    page.set_input_files("#files", [str(sorted((REPO / "tests" / "fixtures" / "nih64").glob("*.png"))[0])])
    page.click("#submit")
    page.wait_for_url("**/jobs/*")
    assert page.locator("#viewer, #job-status").count() >= 1


def test_history_shows_names_first_files_and_thumbnails_and_searches(batch, page):
    base = batch["base"]
    page.goto(base + "/history")
    row = page.locator("table.history tbody tr").first
    assert batch["name"] in row.inner_text() and "00000001_000.png" in row.inner_text()
    images_loaded(page, "table.history img.thumb")
    tag = batch["name"].split()[-1]
    for query, expected in ((f"q={tag}", 1), (f"q={tag}&finding=Mass&from=2000-01-01", None),
                            ("q=nothing-like-it", 0), (f"q={tag}&from=2000-01-01&to=2000-01-02", 0)):
        page.goto(f"{base}/history?{query}")
        found = page.locator("table.history tbody tr").count()
        if expected is None:  # a finding filter: the batch is found exactly when Mass is above threshold in it
            expected = int(any("Mass" in [f["label"] for f in j["shown_findings"]] for j in batch["jobs"]))
        assert found == expected, query
    page.goto(f"{base}/history?q=00000001_000")  # the search answers the images, not only their batches
    found = page.eval_on_selector_all("#found-images .found-name", "names => names.map(n => n.textContent)")
    assert found and set(found) == {"00000001_000.png"}
    page.goto(f"{base}/history?q=nothing-like-it")
    assert page.locator("#no-images").count() == 1
    page.goto(f"{base}/history?page=99")
    assert "past the last page" in page.inner_text("main")
