"""The pages the viewer test's walk does not reach (the account page with a new token, the admin's audit
log, the API docs, a history search with its images, the viewer's key list): no sideways scroll at 390 px
and no axe-core violation of any impact at 1440×900 and 390×844 in both themes; the account page's copy
button and the confirmation before revoking a token. Headless Debian Chromium on real services."""
import pytest

from shared.db.engine import Database
from tests.e2e.conftest import PASSWORD
from tests.e2e.test_viewer import AXE, DESKTOP, PHONE, batch  # noqa: F401 (a fixture: four real X-rays, analysed)
from tests.helpers import ensure_user

pytestmark = pytest.mark.browser


def sign_in_as(page, base: str, username: str) -> None:
    page.goto(base + "/signin")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")


def violations(page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    return page.evaluate("async () => (await axe.run(document)).violations.map("
                         "v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', '))")


def test_the_remaining_pages_fit_a_phone_and_pass_axe_and_tokens_copy_and_confirm(batch, browser, pg_url):  # noqa: F811
    if not AXE.exists():
        pytest.skip(f"{AXE} is missing: npm ci --prefix tests/js (tests/run.sh does this)")
    base = batch["base"]
    database = Database(pg_url)
    with database.session() as session:
        ensure_user(session, "fit-admin", "admin", password=PASSWORD)
    database.engine.dispose()
    # axe-core is injected as a script past the CSP (this test's instrument only).
    context = browser.new_context(bypass_csp=True, permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    sign_in_as(page, base, "fit-admin")
    page.goto(base + "/account")
    page.fill("#token-name", "a token with a name long enough to matter on a phone")
    page.click("form[action$='/account/tokens'] button[type=submit]")
    token = page.inner_text("#new-token")
    page.click("#copy-token")
    # The clipboard write is a promise: the page says "Copied." once it resolved (not within the click).
    page.wait_for_function("() => document.getElementById('copy-state').innerText === 'Copied.'", timeout=10_000)
    assert page.evaluate("() => navigator.clipboard.readText()") == token
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.click("form.revoke button")
    assert asked and "Revoke the token" in asked[0] and page.locator("tr.token-active").count() == 1  # dismissed: kept
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("form.revoke button")
    page.wait_for_selector("tr.token-revoked")

    failures = []
    paths = ["/", "/account", "/admin/audit", "/admin/models", "/api/v1/docs", "/history", "/history?q=00000001",
             batch["jobs"][0]["page_url"] + "#keys"]
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        for theme in ("light", "dark"):
            for path in paths:
                page.goto(base + path.removesuffix("#keys"))
                page.evaluate(f"() => {{ document.documentElement.dataset.theme = '{theme}'; }}")
                if path.endswith("#keys"):  # the viewer with its key list open
                    page.wait_for_selector("#viewer[data-ready='true']")
                    page.click("#show-shortcuts")
                width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
                if width[0] > width[1]:
                    failures.append(f"{path} at {viewport['width']} px scrolls sideways ({width[0]} > {width[1]})")
                failures += [f"{path} at {viewport['width']} px, {theme}: {v}" for v in violations(page)]
    page.goto(base + "/account")  # at 390 px
    token_cell = page.locator("code.token-id").first.bounding_box()
    assert token_cell["height"] < 2 * 24, token_cell  # a token id on one line, not a character a line
    assert page.request.get(base + "/docs", max_redirects=0).status == 301
    context.close()
    assert not failures, "\n".join(failures)
