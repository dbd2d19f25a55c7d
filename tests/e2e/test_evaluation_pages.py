"""The evaluation page and the label room in headless Chromium on real services: twenty real X-rays with
their NIH labels, labelled by keyboard only (blind read hides the model's probabilities, the next image is
preloaded), the evaluation page drawn from the stored figures with κ and subgroups, no accessibility
violations, and screenshots on a desktop and a phone."""
import csv
import io
import json
import urllib.request

import pytest

from shared.db.engine import Database
from shared.jobs.queue import create_celery
from shared.model.labels import LABELS
from shared.ops.config import load_settings
from tests.e2e.conftest import SCREENSHOTS, images_loaded, sign_in
from tests.helpers import REPO, SHARED_DATA, api_token, post_images, wait_until

pytestmark = pytest.mark.browser
SMALL = SHARED_DATA / "nih1000-64px"
AXE = REPO / "tests" / "js" / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP, PHONE = {"width": 1440, "height": 900}, {"width": 390, "height": 844}
KEYS = "1234567890qwer"  # web/pages_evaluation.KEYS: one per finding, in LABELS order


def _call(url, token, method="GET", data=None, content_type=None):
    headers = {"Authorization": f"Bearer {token}", **({"Content-Type": content_type} if content_type else {})}
    with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method, headers=headers), timeout=30) as r:
        return json.load(r)


@pytest.fixture()
def labelled_batch(live_server, page, pg_url):
    """A signed-in page and a finished batch of twenty real X-rays (twenty patients) with their label file."""
    if not SMALL.is_dir():
        pytest.skip("needs ../shared/data/nih/nih1000-64px")
    sign_in(page, live_server, "labeller", pg_url)
    token = api_token(pg_url, "labeller")
    rows, seen = [], set()
    # Twenty patients: six with an effusion, four with an infiltration, ten with no finding (enough positives
    # for two findings to be scored; the rest are marked too few).
    wanted = [("Effusion", 6), ("Infiltration", 4), ("No Finding", 10)]
    table = list(csv.DictReader(io.StringIO((SMALL / "labels.csv").read_text())))
    for finding, count in wanted:
        for row in table:
            if row["Patient ID"] not in seen and finding in row["Finding Labels"].split("|") and count:
                seen.add(row["Patient ID"])
                rows.append(row)
                count -= 1
    status, _, body = post_images(f"{live_server}/api/v1/batches",
                                        [(r["Image Index"], (SMALL / "images" / r["Image Index"]).read_bytes()) for r in rows],
                                        token=token)
    assert status == 202
    batch_id = body["id"]
    wait_until(lambda: _call(f"{live_server}/api/v1/batches/{batch_id}", token)["finished"], 120, message="the batch")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    report = _call(f"{live_server}/api/v1/batches/{batch_id}/labels", token, "PUT", out.getvalue().encode(), "text/csv")
    assert report["images_labelled"] == 20
    return {"id": batch_id, "base": live_server, "token": token, "truth": {r["Image Index"]: r["Finding Labels"].split("|")
                                                                             for r in rows}}


def _recovery_round(pg_stack):
    from worker.recovery import recover_once

    settings = load_settings(**{k: v for k, v in pg_stack.items() if k != "secret_key"})
    database = Database(settings.database_url)
    try:
        return recover_once(database, create_celery(settings), settings)
    finally:
        database.engine.dispose()


def test_twenty_images_labelled_by_keyboard_blind_then_evaluated_with_kappa_and_subgroups(labelled_batch, page, pg_stack):
    base, batch_id, token = labelled_batch["base"], labelled_batch["id"], labelled_batch["token"]
    page.set_viewport_size(DESKTOP)
    page.goto(f"{base}/batches/{batch_id}/label?blind=1")
    page.wait_for_selector("#label-position:has-text('Image 1 of 20')")
    images_loaded(page, "#label-image")
    # Blind read: not one probability, nor the model's answer, is drawn.
    assert all(text == "" for text in page.locator(".probability").all_inner_texts())
    assert not page.locator("#model-says").is_visible()
    page.keyboard.press("b")  # the model's answer shown ...
    assert all(text for text in page.locator(".probability").all_inner_texts())
    assert page.locator("#model-says").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "label-room-desktop.png"), full_page=True)
    page.keyboard.press("b")  # ... and hidden again for the read
    assert all(text == "" for text in page.locator(".probability").all_inner_texts())

    batch = _call(f"{base}/api/v1/batches/{batch_id}", token)
    jobs = batch["jobs"]
    # The next image was fetched while this one is read.
    wait_until(lambda: page.evaluate("(id) => performance.getEntriesByType('resource').some(e => e.name.includes(id + '/image'))",
                                     jobs[1]["id"]), 10, message="the next image to be preloaded")
    for number, job in enumerate(jobs, start=1):
        page.wait_for_selector(f"#label-room[data-ready='{number}']")
        for label in labelled_batch["truth"][job["filename"]]:
            if label != "No Finding":
                page.keyboard.press(KEYS[LABELS.index(label)])
        if number == 2:
            page.keyboard.press("Shift+1")  # unsure about the first finding
        page.keyboard.press("Enter")
        page.wait_for_selector(f"#label-status:has-text('Saved image {number};')")
    for number, job in enumerate(jobs, start=1):
        said = _call(f"{base}/api/v1/jobs/{job['id']}/labels", token)
        [mine] = [r for r in said["readers"] if r["label"] == "Mass"]
        assert mine["blind"] is True and mine["reader"] == "labeller"
        present = {label for label, answer in said["mine"].items() if answer == "present"}
        expected = set(labelled_batch["truth"][job["filename"]])
        if number == 2:
            assert said["mine"][LABELS[0]] == "unsure"
            expected.discard(LABELS[0])
            present.discard(LABELS[0])
        assert present == expected, job["filename"]

    assert _recovery_round(pg_stack)["evaluated"] >= 1
    page.goto(f"{base}/batches/{batch_id}/evaluation")
    page.wait_for_selector("#evaluation-state:has-text('Evaluated against 20')")
    assert page.locator("svg.roc polyline").count() >= 1 and page.locator("svg.calibration").count() == 1
    assert page.locator("table.subgroups caption:has-text('By sex')").count() == 1
    assert page.locator("table.subgroups caption:has-text('By view')").count() == 1
    assert page.locator(".too-few").count() >= 1  # findings with too few positives are marked, not scored
    assert page.locator("table.kappa th:has-text('labeller vs truth')").count() == 1
    evaluation = _call(f"{base}/api/v1/batches/{batch_id}/evaluation", token)
    kappa = evaluation["readers"]["against_truth"][0]["per_label"]
    assert all(kappa[label]["agreement"] == 1.0 for label in LABELS if kappa[label]["images"])  # read as the truth
    page.screenshot(path=str(SCREENSHOTS / "evaluation-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(SCREENSHOTS / "evaluation-phone.png"), full_page=True)
    page.goto(f"{base}/batches/{batch_id}/label")
    page.wait_for_selector("#label-position:has-text('Image 1 of 20')")
    images_loaded(page, "#label-image")
    page.screenshot(path=str(SCREENSHOTS / "label-room-phone.png"), full_page=True)


def test_the_evaluation_page_and_the_label_room_have_no_accessibility_violations(labelled_batch, browser, pg_stack):
    if not AXE.exists():
        pytest.skip(f"{AXE} is missing: npm ci --prefix tests/js (tests/run.sh does this)")
    assert _recovery_round(pg_stack)["evaluated"] >= 1
    page = browser.new_context(bypass_csp=True).new_page()  # axe is the test's instrument; the CSP stays on elsewhere
    sign_in(page, labelled_batch["base"], "labeller", pg_stack["database_url"])
    failures = []
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        for theme in ("light", "dark"):
            for path in (f"/batches/{labelled_batch['id']}/evaluation", f"/batches/{labelled_batch['id']}/label"):
                page.goto(labelled_batch["base"] + path)
                page.evaluate(f"() => {{ document.documentElement.dataset.theme = '{theme}'; }}")
                if "label" in path:
                    page.wait_for_selector("#label-position:has-text('Image 1 of 20')")
                width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
                if width[0] > width[1]:
                    failures.append(f"{path} at {viewport['width']} px scrolls sideways ({width[0]} > {width[1]})")
                page.add_script_tag(path=str(AXE))
                result = page.evaluate("async () => (await axe.run(document)).violations.map("
                                       "v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', '))")
                failures += [f"{path} at {viewport['width']} px, {theme}: {v}" for v in result]
    assert not failures, "\n".join(failures)


def test_another_user_sees_neither_page(labelled_batch, browser, pg_stack):
    page = browser.new_page()
    sign_in(page, labelled_batch["base"], "someone-else", pg_stack["database_url"])
    for path in ("evaluation", "label"):
        assert page.goto(f"{labelled_batch['base']}/batches/{labelled_batch['id']}/{path}").status == 404
