"""No blank thumbnails on the batch page while its first batch runs (reported after `make run`): the page is
open from the upload on, polls, and every image's heatmap thumbnail has loaded (naturalWidth > 0) once its job
succeeded, each fetched once. A thumbnail whose request fails (a 429, a web process restarting) used to stay
blank for good, since an <img> never asks twice: it is now tried again until it loads (web/static/thumbs.js).
Rows a poll repeats unchanged are left alone. Headless Debian Chromium on real services (Postgres, Redis, a
real worker)."""
import collections
import re

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import images_loaded, sign_in
from tests.helpers import REPO, SHARED_DATA, wait_until

pytestmark = pytest.mark.browser
NIH = SHARED_DATA / "nih1000-64px"  # real X-rays at 64 px (read only)
THUMB = re.compile(r"/api/v1/jobs/([0-9a-f-]{36})/overlays/[^/?]+\?size=thumb")


def upload_and_watch(page, base: str, paths, fail_first: bool = False):
    """Upload through the form and stay on the batch page while it runs; the thumbnail requests and answers."""
    requests, answers = collections.Counter(), []
    failed = set()

    def first_fails(route):
        job = THUMB.search(route.request.url).group(1)
        if job in failed:
            return route.continue_()
        failed.add(job)
        return route.fulfill(status=429, headers={"Retry-After": "1"}, content_type="application/json",
                             body='{"error": {"status": 429, "message": "too many requests"}}')

    if fail_first:
        page.route(THUMB, first_fails)
    page.on("request", lambda r: THUMB.search(r.url) and requests.update([THUMB.search(r.url).group(1)]))
    page.on("response", lambda r: THUMB.search(r.url) and answers.append(r.status))
    page.set_input_files("#files", [str(p) for p in paths])
    page.click("#submit")
    page.wait_for_url("**/batches/*")
    page.wait_for_selector("#batch[data-finished='true']", timeout=120_000)
    return requests, answers, failed


def thumbnails(page) -> list[list]:
    return page.eval_on_selector_all("img.thumb", "is => is.map(i => [i.closest('tr').id, i.complete, i.naturalWidth])")


def test_every_thumbnail_of_a_first_batch_loads_once(live_server, page, pg_url):
    if not NIH.is_dir():
        pytest.skip("needs ../shared/data/nih/nih1000-64px")
    sign_in(page, live_server, "thumbs", pg_url)
    paths = sorted((NIH / "images").glob("*.png"))[:20]
    page.set_viewport_size({"width": 1440, "height": 5000})  # every row in view: lazy images load too
    requests, answers, _ = upload_and_watch(page, live_server, paths)
    images_loaded(page, "img.thumb")
    shown = thumbnails(page)
    assert len(shown) == len(paths) and all(width > 0 for _, _, width in shown), shown
    assert set(answers) == {200}, answers
    assert max(requests.values()) == 1, requests


def test_polls_that_repeat_rows_do_not_fetch_their_thumbnails_again(live_server, page, pg_url):
    """While a batch runs, each poll answers every row changed in the last few seconds again; a repeated row
    keeps its image, and a changed one keeps its thumbnail when that did not change."""
    sign_in(page, live_server, "thumbs-poll", pg_url)
    paths = sorted((REPO / "tests" / "fixtures" / "nih64").glob("*.png"))
    page.set_viewport_size({"width": 1440, "height": 2000})
    upload_and_watch(page, live_server, paths)
    batch_id = page.url.rsplit("/", 1)[1]
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:  # one image runs again (the batch is not done: the page polls), all just changed
        conn.execute(sa.text("UPDATE jobs SET updated_at = now() WHERE batch_id = :b"), {"b": batch_id})
        first = conn.execute(sa.text("SELECT id FROM jobs WHERE batch_id = :b ORDER BY position LIMIT 1"),
                             {"b": batch_id}).scalar()
        conn.execute(sa.text("UPDATE jobs SET status = 'running', finished_at = NULL WHERE id = :j"), {"j": first})
    requests = collections.Counter()
    page.on("request", lambda r: THUMB.search(r.url) and requests.update([THUMB.search(r.url).group(1)]))
    page.goto(f"{live_server}/batches/{batch_id}")
    wait_until(lambda: int(page.get_attribute("#batch", "data-polls")) >= 4, 20, interval=0.1, message="four polls")
    with engine.begin() as conn:  # the image is done again: its row changes, its thumbnail does not
        conn.execute(sa.text("UPDATE jobs SET status = 'succeeded', finished_at = now(), updated_at = now()"
                             " WHERE id = :j"), {"j": first})
    engine.dispose()
    page.wait_for_selector("#batch[data-finished='true']", timeout=20_000)
    images_loaded(page, "img.thumb")
    assert len(thumbnails(page)) == len(paths)
    # Once per image (a guard: Chromium also reused the image when every poll drew the repeated rows anew).
    assert len(requests) == len(paths) and max(requests.values()) == 1, requests


def test_a_thumbnail_that_failed_is_tried_again(live_server, page, pg_url):
    sign_in(page, live_server, "thumbs-429", pg_url)
    paths = sorted((REPO / "tests" / "fixtures" / "nih64").glob("*.png"))
    page.set_viewport_size({"width": 1440, "height": 2000})
    requests, answers, failed = upload_and_watch(page, live_server, paths, fail_first=True)
    images_loaded(page, "img.thumb")
    assert all(width > 0 for _, _, width in thumbnails(page))
    assert answers.count(429) == len(paths) and all(count >= 2 for count in requests.values()), (answers, requests)
    # The rows the server renders (a reload) are tried again too: each thumbnail's first answer a 429 again.
    failed.clear()
    page.reload()
    wait_until(lambda: len(thumbnails(page)) == len(paths), 10, interval=0.05, message="rows")
    images_loaded(page, "img.thumb")
