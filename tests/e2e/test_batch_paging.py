"""A batch of 2,000 images on the batch page: one page of rows at a time, searched by file name and finding
in the database, in headless Chromium on real services."""
import time

import pytest
import sqlalchemy as sa

from shared.db.engine import Database
from shared.jobs import lifecycle
from tests.e2e.conftest import sign_in
from tests.helpers import ensure_user

pytestmark = pytest.mark.browser
IMAGES = 2000
WITH_MASS = (5, 1500, 1999)


@pytest.fixture()
def big_batch(live_server, page, pg_url):
    sign_in(page, live_server, "paging-reader", pg_url)
    database = Database(pg_url)
    with database.session() as session:
        owner = ensure_user(session, "paging-reader").id
        batch_id = lifecycle.create_batch(session, owner, [lifecycle.NewJob(f"scan-{i:05d}.png", "0" * 64, 1)
                                                           for i in range(IMAGES)]).id
    database.engine.dispose()
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE jobs SET status = 'succeeded', started_at = now(), finished_at = now() "
                             "WHERE batch_id = :b"), {"b": str(batch_id)})
        for position, probability in zip(WITH_MASS, (0.7, 0.9, 0.8)):
            conn.execute(sa.text("INSERT INTO findings (job_id, label, probability, threshold, positive) SELECT id, 'Mass', "
                                 ":p, 0.5, true FROM jobs WHERE batch_id = :b AND position = :n"),
                         {"b": str(batch_id), "n": position, "p": probability})
    engine.dispose()
    return f"{live_server}/batches/{batch_id}"


def test_two_thousand_images_page_and_search_on_the_server(big_batch, page):
    started = time.perf_counter()
    page.goto(big_batch)
    seconds = time.perf_counter() - started
    print(f"batch page of {IMAGES} images: first page in {seconds:.2f} s")
    assert page.locator("tr.job").count() == 100 and "Images 1–100 of 2000." in page.inner_text("#matching")
    assert "page 1 of 20" in page.inner_text("nav.pager")
    page.click("#next-page")
    assert "scan-00100.png" in page.inner_text("tr.job >> nth=0") and "page 2 of 20" in page.inner_text("nav.pager")
    page.fill("#filter-q", "scan-01234")
    page.press("#filter-q", "Enter")
    page.wait_for_url("**q=scan-01234**")
    assert page.locator("tr.job").count() == 1 and "scan-01234.png" in page.inner_text("tr.job")
    page.goto(big_batch + "?finding=Mass&sort=top")
    names = page.eval_on_selector_all("tr.job td.name", "cells => cells.map(c => c.textContent.trim())")
    assert names == ["scan-01500.png", "scan-01999.png", "scan-00005.png"]  # 0.9, 0.8, 0.7
    page.goto(big_batch + "?page=999")  # past the end: the last page
    assert "page 20 of 20" in page.inner_text("nav.pager") and page.locator("tr.job").count() == 100
