"""The viewer's reading tools in headless Chromium on real services: window/level dragged on a 16-bit DICOM's
own values (not its 8-bit display pixels), presets, invert, the pixel readout, the length tool in mm from
Pixel Spacing, rotation, keyboard pan, the shortcut list, the view kept in the address, and how few Tab
presses reach the image."""
import io
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from tests.e2e.conftest import SCREENSHOTS, sign_in
from tests.e2e.test_viewer import batch  # noqa: F401 (a fixture: four real X-rays, analysed)
from tests.helpers import wait_until

pytestmark = pytest.mark.browser
DESKTOP = {"width": 1440, "height": 900}
SIZE = 256
ROW_MM, COLUMN_MM = 0.2, 0.25  # Pixel Spacing: rows 0.2 mm apart, columns 0.25 mm apart
INTERCEPT = -1024


def stored_values() -> np.ndarray:
    """Every 16-bit level once: value = row * 256 + column. The 8-bit display gives each row one grey."""
    return (np.arange(SIZE)[:, None] * SIZE + np.arange(SIZE)[None, :]).astype(np.uint16)


def gradient_dicom() -> bytes:
    from tests.dicom_factory import make_dataset

    ds = make_dataset(np.zeros((SIZE, SIZE), np.uint8), bits=16, window=False)
    ds.BitsStored, ds.HighBit = 16, 15
    ds.RescaleIntercept = str(INTERCEPT)  # through the Modality LUT: the values the viewer works on are stored - 1024
    del ds.ImagerPixelSpacing
    ds.PixelSpacing = [ROW_MM, COLUMN_MM]
    ds.PixelData = stored_values().tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.fixture()
def dicom_job(live_server, page, pg_url, tmp_path):
    scan = tmp_path / "gradient.dcm"
    scan.write_bytes(gradient_dicom())
    sign_in(page, live_server, "tools-reader", pg_url)
    page.set_input_files("#files", [str(scan)])
    page.click("#submit")
    page.wait_for_url("**/jobs/*")
    page.wait_for_selector("#job-status[data-final='true']", timeout=60_000)
    return page.url.split("?")[0]


def open_viewer(page, url: str) -> None:
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector("#viewer[data-ready]")
    assert page.get_attribute("#viewer", "data-ready") == "true", (page.inner_text("#viewer-state"), errors)


def canvas_grey(page) -> np.ndarray:
    data = page.evaluate("""() => { const c = document.getElementById('view');
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }""")
    return np.array(data, np.uint8).reshape(SIZE, SIZE, 4)[:, :, 0]


def client_point(page, x: float, y: float) -> tuple[float, float]:
    """Where image pixel (x, y)'s centre is on screen, from the canvas's box alone (no rotation here)."""
    box = page.evaluate("() => { const r = document.getElementById('view').getBoundingClientRect();"
                        " return [r.left, r.top, r.width, r.height]; }")
    return box[0] + (x + 0.5) * box[2] / SIZE, box[1] + (y + 0.5) * box[3] / SIZE


def window(page) -> dict:
    return page.evaluate("() => ({...window.xrayViewer.wl})")


def expected_grey(centre: float, width: float) -> np.ndarray:
    values = stored_values().astype(np.float64) + INTERCEPT
    return np.clip((values - (centre - width / 2)) * 255 / width, 0, 255)


def test_window_level_readout_and_length_work_on_the_dicoms_own_values(dicom_job, page):
    page.set_viewport_size(DESKTOP)
    open_viewer(page, dicom_job)
    if page.is_checked("#show-heatmap"):
        page.uncheck("#show-heatmap")
    values = page.evaluate("() => ({bits: xrayViewer.values.bits, min: xrayViewer.values.minimum,"
                           " max: xrayViewer.values.maximum, windows: xrayViewer.values.windows})")
    assert values["bits"] == 16 and values["min"] == INTERCEPT and values["max"] == 65535 + INTERCEPT
    start = window(page)
    assert start == pytest.approx(values["windows"]["default"])  # no window in the file: its full range

    # Right-button drag: left narrows the window, down raises its centre.
    box = page.locator("#stage").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down(button="right")
    page.mouse.move(cx - 500, cy + 40, steps=6)
    page.mouse.up(button="right")
    dragged = window(page)
    assert dragged["width"] < start["width"] / 2 and dragged["centre"] > start["centre"]
    wait_until(lambda: np.abs(canvas_grey(page) - expected_grey(**dragged)).max() <= 1, 10,
               interval=0.1, message="the canvas to show the dragged window")
    grey = canvas_grey(page)
    # Full bit depth: within one row (256 consecutive 16-bit levels, one grey in the 8-bit display) the
    # dragged window shows a gradient.
    inside = [r for r in range(SIZE) if 10 < grey[r].mean() < 245]
    assert inside and len(set(grey[inside[0]].tolist())) >= 5
    assert str(round(dragged["width"])) in page.inner_text("#wl-values")

    page.keyboard.press("w")  # the W/L tool: the left button drags the window too
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 100, cy, steps=3)
    page.mouse.up()
    assert window(page)["width"] > dragged["width"]

    page.select_option("#preset", "bone")
    assert window(page) == pytest.approx(values["windows"]["bone"])
    page.keyboard.press("i")  # invert
    wait_until(lambda: np.abs(canvas_grey(page) - (255 - expected_grey(**window(page)))).max() <= 1, 10,
               interval=0.1, message="the inverted window")
    page.screenshot(path=str(SCREENSHOTS / "viewer-window-level.png"))
    page.click("#reset-view")
    assert window(page) == pytest.approx(start) and not page.is_checked("#invert")

    page.locator("#stage").scroll_into_view_if_needed()
    x, y = 100, 50  # the readout: the value under the pointer, with its position in mm
    page.mouse.move(*client_point(page, x, y))
    text = page.inner_text("#readout")
    assert f"value {y * SIZE + x + INTERCEPT}" in text and f"x {x}, y {y} px" in text
    assert f"{(x + 0.5) * COLUMN_MM:.1f} mm, {(y + 0.5) * ROW_MM:.1f} mm" in text

    page.keyboard.press("m")  # the length tool: 200 columns and 150 rows apart → 50 mm by 30 mm
    page.mouse.move(*client_point(page, 20, 20))
    page.mouse.down()
    page.mouse.move(*client_point(page, 220, 170), steps=5)
    page.mouse.up()
    measured = page.evaluate("() => xrayViewer.measurement")
    assert measured["unit"] == "mm" and measured["length"] == pytest.approx(np.hypot(50, 30), rel=0.01)
    assert "Length: " in page.inner_text("#measurement") and "Pixel Spacing" in page.inner_text("#measurement")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "viewer-length-readout.png"))


def test_the_view_lives_in_the_address_and_keys_reach_and_move_the_image(dicom_job, page):
    page.set_viewport_size(DESKTOP)
    open_viewer(page, dicom_job + "?findings=shown")
    # Tab presses from the top of the page to the image: straight, and through the skip link.
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to the image"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "stage"
    open_viewer(page, dicom_job + "?findings=shown")
    presses = 0
    while page.evaluate("() => document.activeElement.id") != "stage" and presses < 40:
        page.keyboard.press("Tab")
        presses += 1
    print(f"Tab presses to reach the image: {presses}")
    assert presses < 13

    options = [v for v in page.eval_on_selector_all("#finding option", "os => os.map(o => o.value)") if v]
    page.select_option("#finding", options[-1])
    page.eval_on_selector("#opacity", "e => { e.value = 0.7; e.dispatchEvent(new Event('input', {bubbles: true})); }")
    page.focus("#stage")
    page.keyboard.press("=")  # zoom in
    page.keyboard.press("Shift+ArrowLeft")  # keyboard pan
    page.keyboard.press("r")  # rotate 90°
    page.keyboard.press("3")  # soft tissue window
    page.keyboard.press("i")
    state = page.evaluate("() => ({scale: xrayViewer.scale, x: xrayViewer.x, y: xrayViewer.y, rotation: xrayViewer.rotation,"
                          " wl: {...xrayViewer.wl}, invert: xrayViewer.invert})")
    assert state["rotation"] == 90 and state["invert"]
    address = lambda: parse_qs(urlparse(page.evaluate("() => location.href")).query)
    wait_until(lambda: "ww" in address() and "rot" in address(), 5, interval=0.05, message="the view to reach the address")
    query = address()
    assert query["finding"] == [options[-1]] and query["opacity"] == ["0.70"] and query["inv"] == ["1"]

    shared = page.evaluate("() => location.href")
    page.goto("about:blank")
    open_viewer(page, shared)  # a shared link (or a reload) restores the view
    again = page.evaluate("() => ({scale: xrayViewer.scale, x: xrayViewer.x, y: xrayViewer.y, rotation: xrayViewer.rotation,"
                          " wl: {...xrayViewer.wl}, invert: xrayViewer.invert})")
    assert again["rotation"] == 90 and again["invert"] and again["scale"] == pytest.approx(state["scale"], rel=1e-3)
    assert again["x"] == pytest.approx(state["x"], abs=1) and again["y"] == pytest.approx(state["y"], abs=1)
    assert again["wl"] == pytest.approx(state["wl"], rel=1e-4)
    assert page.input_value("#finding") == options[-1] and page.input_value("#opacity") == "0.7"

    page.keyboard.press("?")  # the shortcut list
    assert page.is_visible("#shortcuts") and "rotate 90°" in page.inner_text("#shortcuts")
    page.screenshot(path=str(SCREENSHOTS / "viewer-shortcuts.png"))
    page.click("#close-shortcuts")
    assert not page.is_visible("#shortcuts")

    open_viewer(page, dicom_job + "?zoom=nan&cx=1e999&ww=-5&rot=45&opacity=7")  # nonsense in the address is ignored
    assert page.evaluate("() => xrayViewer.rotation") == 0 and page.input_value("#opacity") != "7"


def test_the_batch_pages_filters_and_sort_live_in_its_address(batch, page):  # noqa: F811
    url = f"{batch['base']}/batches/{batch['id']}"
    page.goto(url)
    page.select_option("#filter-status", "succeeded")  # a changed list applies at once
    page.wait_for_url("**status=succeeded**")
    page.select_option("#sort-by", "top")
    page.wait_for_url("**sort=top**")
    address = lambda: parse_qs(urlparse(page.evaluate("() => location.href")).query)
    assert address() == {"sort": ["top"], "status": ["succeeded"]}  # empty fields stay out of the address
    order = page.eval_on_selector_all("tr.job", "rows => rows.map(r => r.id)")
    tops = page.eval_on_selector_all("tr.job", "rows => rows.map(r => Number(r.dataset.top))")
    assert len(order) == 4 and tops == sorted(tops, reverse=True)
    page.reload()
    assert (page.input_value("#sort-by"), page.input_value("#filter-status")) == ("top", "succeeded")
    assert page.eval_on_selector_all("tr.job", "rows => rows.map(r => r.id)") == order
    answer = page.request.get(url + "?sort=nonsense")  # what the page does not offer: a sentence and 400
    assert answer.status == 400 and "sort" in answer.text()


def test_without_javascript_the_job_page_shows_a_server_drawn_overlay_and_hides_what_cannot_work(batch, browser, pg_url):  # noqa: F811
    from shared.db.engine import Database
    from shared.jobs import lifecycle
    from tests.e2e.conftest import PASSWORD
    from tests.helpers import ensure_user

    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(batch["base"] + "/signin")
    page.fill("#username", "reader")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.goto(batch["base"] + batch["jobs"][0]["page_url"])
    assert page.is_hidden("#controls") and page.is_hidden("#theme-switch")  # they need JavaScript
    overlay = page.locator("img.noscript-image")
    opening = page.request.get(batch["base"] + batch["jobs"][0]["url"]).json()["opening_label"]  # as the viewer opens: on its finding, or on the image alone
    assert overlay.is_visible() and (f"/overlays/{opening}" if opening else "/image") in overlay.get_attribute("src")
    page.click("table.findings .pick[data-label='Edema']")  # a finding's name is a link: its overlay, drawn by the server
    assert "finding=Edema" in page.url and "/overlays/Edema" in overlay.get_attribute("src")
    assert "Edema" in overlay.get_attribute("alt")
    database = Database(pg_url)  # a batch still waiting: its page refreshes itself
    with database.session() as session:
        owner = ensure_user(session, "reader").id
        waiting = lifecycle.create_batch(session, owner, [lifecycle.NewJob("w.png", "0" * 64, 1)]).id
    database.engine.dispose()
    page.goto(f"{batch['base']}/batches/{waiting}")
    assert page.locator("noscript").first.inner_html().strip().startswith('<meta http-equiv="refresh"')
    page.goto(f"{batch['base']}/batches/{batch['id']}")  # a finished one does not
    assert 'http-equiv="refresh"' not in page.content()
    context.close()


def test_printing_keeps_the_heatmaps_name_and_colour_scale_and_drops_the_controls(batch, page):  # noqa: F811
    page.goto(batch["base"] + batch["jobs"][0]["page_url"])
    page.wait_for_selector("#viewer[data-ready='true']")
    page.click("table.findings .pick[data-label='Mass']")
    page.emulate_media(media="print")
    assert page.is_visible("#print-caption") and page.inner_text("#print-caption").startswith("Heatmap of Mass")
    assert page.is_visible("#legend-bar") and page.is_visible("#view")
    for hidden in (".danger-link", "#zoom-in", "#window", "#finding", "header.top"):
        assert page.is_hidden(hidden), hidden
    page.pdf(path=str(SCREENSHOTS / "viewer-print.pdf"))
    page.emulate_media(media="screen")
    assert page.is_hidden("#print-caption") and page.is_visible(".danger-link")
