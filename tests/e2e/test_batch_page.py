"""The batch page as a Flower-like task list, in headless Chromium on real services: each image's timing,
worker and attempts; cancelling a batch (queued images stop, a running one finishes, nothing is lost);
retrying a failed image with one click (audited), which the real worker then analyses."""
import re

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.test_viewer import PHONE, batch  # noqa: F401 (a fixture: four real X-rays, analysed)
from tests.helpers import wait_until

pytestmark = pytest.mark.browser


def statuses(engine, batch_id: str) -> dict[str, tuple[str, str | None, str | None]]:
    with engine.begin() as conn:
        rows = conn.execute(sa.text("SELECT id, status, error, image_key FROM jobs WHERE batch_id = :b"), {"b": batch_id})
        return {str(r.id): (r.status, r.error, r.image_key) for r in rows}


def test_timing_cancel_and_retry(batch, page, pg_url):  # noqa: F811
    url = f"{batch['base']}/batches/{batch['id']}"
    page.goto(url)
    timing = page.inner_text(f"#job-{batch['jobs'][0]['id']} td.timing")
    assert re.search(r"received \d\d:\d\d:\d\d waited [\d.]+ s ran [\d.]+ s attempt 1 \S+", timing), timing
    assert page.is_hidden("#cancel-form") and page.is_hidden("#retry-form")  # finished, nothing failed

    # Two images wait in the queue (their messages long consumed) and one runs on a worker.
    ids = [j["id"] for j in batch["jobs"]]
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE jobs SET status = 'queued', started_at = NULL, finished_at = NULL, worker = NULL,"
                             " dispatched_at = now(), dispatch_count = 1, updated_at = now() WHERE id IN (:a, :b)"),
                     {"a": ids[0], "b": ids[1]})
        conn.execute(sa.text("DELETE FROM findings WHERE job_id IN (:a, :b)"), {"a": ids[0], "b": ids[1]})
        conn.execute(sa.text("UPDATE jobs SET status = 'running', finished_at = NULL, worker = 'w-elsewhere',"
                             " lease_expires_at = now() + interval '1 hour', updated_at = now() WHERE id = :c"), {"c": ids[2]})
    before = statuses(engine, batch["id"])
    page.goto(url)
    page.click("#cancel-form button")
    page.wait_for_url(url)
    assert "Cancelled: 2 queued image(s)" in page.inner_text(".notices")
    after = statuses(engine, batch["id"])
    assert [after[i][0] for i in ids] == ["failed", "failed", "running", "succeeded"]
    assert "cancelled by its owner" in after[ids[0]][1]
    assert all(after[i][2] == before[i][2] and after[i][2] for i in ids)  # every stored image kept
    assert page.locator("tr.job form.retry").count() == 2 and page.is_visible("#retry-form")

    page.click(f"#job-{ids[0]} form.retry button")  # one click: queued again, analysed by the real worker
    page.wait_for_url(url)
    assert "Queued 1 failed image(s) again." in page.inner_text(".notices")
    wait_until(lambda: statuses(engine, batch["id"])[ids[0]][0] == "succeeded", 60, message="the retried image")
    assert statuses(engine, batch["id"])[ids[1]][0] == "failed"  # only the one asked for
    with engine.begin() as conn:
        actions = conn.execute(sa.text("SELECT action, detail FROM audit_events WHERE target_id = :b AND action IN"
                                       " ('cancel', 'retry') ORDER BY id"), {"b": batch["id"]}).all()
        conn.execute(sa.text("UPDATE jobs SET status = 'succeeded', worker = NULL, lease_expires_at = NULL,"
                             " finished_at = now() WHERE id = :c"), {"c": ids[2]})
    engine.dispose()
    assert [a.action for a in actions] == ["cancel", "retry"]
    page.goto(url)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.screenshot(path=str(SCREENSHOTS / "batch-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.reload()
    assert page.evaluate("() => getComputedStyle(document.querySelector('tr.job')).display") == "grid"  # cards
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(SCREENSHOTS / "batch-phone.png"), full_page=True)


def test_the_pdfs_carry_every_finding_above_threshold_named_with_the_colour_scale_and_thumbnails(batch, page, pg_url, tmp_path):  # noqa: F811
    import subprocess

    from shared.model.labels import LABELS, NO_FINDING, display_name

    job = batch["jobs"][0]
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:  # every finding above its threshold: the report once dropped those past six
        conn.execute(sa.text("UPDATE findings SET positive = true, threshold = 0.0 WHERE job_id = :j AND label <> 'No Finding'"),
                     {"j": job["id"]})
    engine.dispose()
    report = tmp_path / "report.pdf"
    report.write_bytes(page.request.get(f"{batch['base']}{job['url']}/report.pdf").body())
    text = subprocess.run(["pdftotext", "-layout", str(report), "-"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())
    for label in LABELS:
        if label != NO_FINDING:
            assert f"Heatmap of {display_name(label)}" in flat, label
    assert "Colour scale of every heatmap" in flat and "0 low" in flat and "1 high" in flat
    summary = tmp_path / "batch.pdf"
    summary.write_bytes(page.request.get(f"{batch['base']}/api/v1/batches/{batch['id']}/export.pdf").body())
    images = subprocess.run(["pdfimages", "-list", str(summary)], capture_output=True, text=True, check=True).stdout
    assert len(images.strip().splitlines()) - 2 >= len(batch["jobs"]) + 1  # a thumbnail per image, and the scale
    flat = " ".join(subprocess.run(["pdftotext", str(summary), "-"], capture_output=True, text=True, check=True).stdout.split())
    assert "(unreliable)" in flat and "unreliable ones marked" in flat
