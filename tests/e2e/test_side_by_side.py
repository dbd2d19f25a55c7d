"""The viewer's side by side in headless Debian Chromium on real services: one analysed X-ray with a rerun
result under another registered model version (its maps stored in version_results) shows both versions'
maps of one finding, or two findings' maps; zoom and pan move both panes; keys reach it; it stacks at 390 px
without sideways scroll; axe-core finds nothing in either theme; the maps route answers other versions'
maps only to the owner."""
import base64
import uuid

import httpx
import numpy as np
import pytest

from shared.db.engine import Database
from shared.db.models import Job, ModelVersion, VersionResult
from shared.imaging import maps
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.test_pages_fit import sign_in_as, violations
from tests.e2e.test_viewer import AXE, DESKTOP, PHONE, batch  # noqa: F401 (a fixture: four real X-rays, analysed)
from tests.helpers import api_token, wait_until

pytestmark = pytest.mark.browser
OTHER = "rerun-e2e-v2"


@pytest.fixture()
def rerun(batch, pg_url):  # noqa: F811
    """The batch's first image analysed again under another registered version: its maps mirrored left to
    right (so the two panes differ where it matters), its probabilities halved."""
    job_id = uuid.UUID(batch["jobs"][0]["id"])
    database = Database(pg_url)
    with database.session() as session:
        job = session.get(Job, job_id)
        served = maps.decode(job.maps)
        # A pushed registry version (stored: it has a folder hash), so it never passes for the workers' own model,
        # which the shared stack's pages name as the current one.
        session.merge(ModelVersion(version=OTHER, name="rerun model", architecture="small-cnn", trained=False, manifest={},
                                   status="ready", folder_sha256="0" * 64))
        session.flush()
        session.add(VersionResult(
            job_id=job_id, model_version=OTHER, kind="rerun", status="succeeded", attempts=1,
            probabilities={f.label: f.probability / 2 for f in job.findings},
            maps=maps.encode({label: m[:, ::-1] / 255.0 for label, m in served.items()})))  # encode takes 0..1
        served_version = job.model_version
    database.engine.dispose()
    return {**batch, "job_id": str(job_id), "served": served_version, "served_maps": served}


def pane_pixels(page, side: str) -> np.ndarray:
    data = page.evaluate("""(side) => { const c = document.querySelector('#pane-' + side + ' canvas');
        return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)]; }""", side)
    return np.array(data[2], np.uint8).reshape(data[1], data[0], 4)[:, :, :3].astype(int)


def drawn_after(page, before: int) -> None:
    wait_until(lambda: int(page.get_attribute("#compare", "data-drawn") or 0) > before, 20, interval=0.05,
               message="the side by side to draw")


def transforms(page) -> list[str]:
    return page.eval_on_selector_all("#compare canvas", "cs => cs.map(c => c.style.transform)")


def test_maps_of_another_version_are_the_owners_only(rerun, pg_url):
    base, job_id = rerun["base"], rerun["job_id"]
    owner = {"Authorization": "Bearer " + api_token(pg_url, "reader")}
    stranger = {"Authorization": "Bearer " + api_token(pg_url, "someone-else")}
    body = httpx.get(f"{base}/api/v1/jobs/{job_id}", headers=owner).json()
    assert [v["version"] for v in body["other_versions"]] == [OTHER]
    assert body["other_versions"][0]["kind"] == "rerun" and len(body["other_versions"][0]["probabilities"]) >= 14
    other = httpx.get(f"{base}{body['other_versions'][0]['maps_url']}", headers=owner)
    assert other.status_code == 200 and other.json()["model_version"] == OTHER
    label = other.json()["labels"][0]
    got = np.frombuffer(base64.b64decode(other.json()["maps"][label]), np.uint8).reshape(other.json()["height"], -1)
    assert np.array_equal(got, rerun["served_maps"][label][:, ::-1])
    served = httpx.get(f"{base}/api/v1/jobs/{job_id}/maps", headers=owner).json()
    assert served["model_version"] == rerun["served"]
    named = httpx.get(f"{base}/api/v1/jobs/{job_id}/maps?version={rerun['served']}", headers=owner).json()
    assert named["maps"] == served["maps"]
    assert httpx.get(f"{base}/api/v1/jobs/{job_id}/maps?version=no-such-version", headers=owner).status_code == 404
    assert httpx.get(f"{base}/api/v1/jobs/{job_id}/maps?version=bad/version", headers=owner).status_code == 400
    assert httpx.get(f"{base}/api/v1/jobs/{job_id}/maps?version={OTHER}", headers=stranger).status_code == 404
    other_job = rerun["jobs"][1]["id"]  # no rerun result for this one
    assert httpx.get(f"{base}/api/v1/jobs/{other_job}/maps?version={OTHER}", headers=owner).status_code == 404
    assert httpx.get(f"{base}/api/v1/jobs/{other_job}", headers=owner).json()["other_versions"] == []


def test_side_by_side_shows_two_versions_or_two_findings_with_one_zoom_and_pan(rerun, browser):
    base, job_id = rerun["base"], rerun["job_id"]
    SCREENSHOTS.mkdir(exist_ok=True)
    csp = []
    page = browser.new_page(viewport=DESKTOP)
    page.on("console", lambda m: csp.append(m.text) if "Content Security Policy" in m.text else None)
    sign_in_as(page, base, "reader")
    page.goto(f"{base}/jobs/{job_id}")
    wait_until(lambda: page.get_attribute("#compare", "data-ready") == "true", 30, interval=0.05, message="viewer ready")
    assert page.is_hidden("#compare")

    # The viewer shows a finding's heatmap: the side by side opens on it.
    shown = page.eval_on_selector_all("#finding option", "os => os.map(o => o.value).filter(Boolean)")[0]
    page.select_option("#finding", shown)
    wait_until(lambda: page.evaluate("() => document.getElementById('show-heatmap').checked"), 10, interval=0.05,
               message="the heatmap shown")
    # Keyboard: Tab reaches the button, Enter opens the panes and puts the focus on the left image.
    page.focus("#show-shortcuts")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "side-by-side"
    page.keyboard.press("Enter")
    drawn_after(page, 0)
    assert page.get_attribute("#side-by-side", "aria-expanded") == "true"
    assert page.evaluate("() => document.activeElement.closest('.compare-pane').id") == "pane-left"

    # Two versions (the default when another version has analysed the image): one finding, both versions.
    state = page.evaluate("() => window.xrayCompare.panes")
    assert page.get_attribute("#compare", "data-mode") == "versions"
    assert state[0]["version"] == rerun["served"] and state[1]["version"] == OTHER
    assert state[0]["label"] == state[1]["label"] == shown
    left, right = pane_pixels(page, "left"), pane_pixels(page, "right")
    assert np.abs(left - right).mean() > 2  # the rerun's map is mirrored: the panes differ
    assert OTHER in page.inner_text("#pane-right .pane-caption")
    # Each pane is the viewer's own drawing of its maps: the served one equals the main canvas.
    main = page.evaluate("""() => { const c = document.getElementById('view');
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }""")
    assert np.array_equal(np.array(main, np.uint8).reshape(left.shape[0], left.shape[1], 4)[:, :, :3], left)
    page.screenshot(path=str(SCREENSHOTS / "viewer-side-by-side.png"), full_page=True)

    # Zoom in one pane (wheel over the left image): the other follows, transform for transform.
    before = transforms(page)
    assert before[0] == before[1]
    box = page.locator("#pane-left .compare-stage").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 3, box["y"] + box["height"] / 3)
    page.mouse.wheel(0, -300)
    wait_until(lambda: transforms(page)[0] != before[0], 10, interval=0.05, message="the wheel to zoom")
    zoomed = transforms(page)
    assert zoomed[0] == zoomed[1] and float(page.get_attribute("#compare", "data-zoom")) > page.evaluate(
        "() => window.xrayCompare.view.scale") - 1e-3
    # Pan by dragging the right image: the left one moves too.
    box = page.locator("#pane-right .compare-stage").bounding_box()
    page.mouse.move(box["x"] + 100, box["y"] + 100)
    page.mouse.down()
    page.mouse.move(box["x"] + 160, box["y"] + 130, steps=4)
    page.mouse.up()
    panned = transforms(page)
    assert panned[0] == panned[1] != zoomed[0]
    # Keys on the focused right image: + zooms both, 0 fits both again.
    page.focus("#pane-right .compare-stage")
    scale = page.evaluate("() => window.xrayCompare.view.scale")
    page.keyboard.press("+")
    assert page.evaluate("() => window.xrayCompare.view.scale") == pytest.approx(scale * 1.25)
    assert page.evaluate("() => document.getElementById('view').style.transform") not in transforms(page)  # main view untouched
    page.keyboard.press("0")
    fitted = transforms(page)
    assert fitted[0] == fitted[1] == before[0]

    # Two findings: the served version in both panes, two different findings' maps.
    drawn = int(page.get_attribute("#compare", "data-drawn"))
    page.click("#compare-findings")
    drawn_after(page, drawn)
    state = page.evaluate("() => window.xrayCompare.panes")
    assert state[0]["version"] == state[1]["version"] == rerun["served"]
    assert state[0]["label"] != state[1]["label"]
    assert np.abs(pane_pixels(page, "left") - pane_pixels(page, "right")).mean() > 1
    # Any pairing by hand: the right pane's finding picked from its list.
    labels = page.eval_on_selector_all("#right-finding option", "os => os.map(o => o.value)")
    drawn = int(page.get_attribute("#compare", "data-drawn"))
    page.select_option("#right-finding", labels[-1])
    drawn_after(page, drawn)
    assert page.evaluate("() => window.xrayCompare.panes[1].label") == labels[-1]
    assert not csp, csp

    # A phone: the panes stack, nothing scrolls sideways.
    page.set_viewport_size(PHONE)
    page.click("#compare-versions")
    wait_until(lambda: page.evaluate("() => window.xrayCompare.panes[1].version") == OTHER, 20, interval=0.05,
               message="two versions again")
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], width
    tops = page.eval_on_selector_all(".compare-stage", "ss => ss.map(s => s.getBoundingClientRect().top)")
    assert tops[1] > tops[0] + 100  # stacked, not side by side
    page.screenshot(path=str(SCREENSHOTS / "viewer-side-by-side-phone.png"), full_page=True)
    page.close()


def test_side_by_side_passes_axe_at_both_sizes_and_themes(rerun, browser):
    if not AXE.exists():
        pytest.skip(f"{AXE} is missing: npm ci --prefix tests/js (tests/run.sh does this)")
    context = browser.new_context(bypass_csp=True)  # axe is the test's instrument; the CSP stays on elsewhere
    page = context.new_page()
    sign_in_as(page, rerun["base"], "reader")
    for viewport in (DESKTOP, PHONE):
        for theme in ("light", "dark"):
            page.set_viewport_size(viewport)
            page.goto(f"{rerun['base']}/jobs/{rerun['job_id']}")
            wait_until(lambda: page.get_attribute("#compare", "data-ready") == "true", 30, interval=0.05,
                       message="viewer ready")
            page.evaluate(f"() => {{ document.documentElement.dataset.theme = '{theme}'; }}")
            page.click("#side-by-side")
            drawn_after(page, 0)
            assert violations(page) == [], (viewport, theme)
    context.close()
