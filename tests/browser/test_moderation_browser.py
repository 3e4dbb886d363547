"""The moderation lever's web pages in real headless Chromium against a real uvicorn server (issue 16, item 4):
a moderator decides a reported post in the console and sees its statement of reasons; the author reads it on
their statements page and appeals; the moderator who decided is refused the appeal and another reverses it.
Each effect is checked through the API too. Screenshots go to ``artifacts/``.

The server is our own small store (no training: the feed falls back to recency), not the shared trained one, so
this file runs in a few seconds."""

from __future__ import annotations

import time

import httpx
import pytest

from live_server import start_server

KEY = "modbrowser-service-key"
MODS = {"ana": "modbrowser-key-ana", "ben": "modbrowser-key-ben"}
PEOPLE = ("alice", "bob", "carol", "dan", "erin", "fay", "gus", "hal", "ivy", "kim")
# a home feed leaves out what its reader was already served: each check "shown at home?" asks a fresh reader
HOSTILE = 'Nobody likes you <b>loser</b> <img src=x onerror="window.pwned=1">'


@pytest.fixture(scope="module")
def mod_server(tmp_path_factory):
    """(base_url, tokens): uvicorn serving create_app + the moderation pages, moderators ana and ben, wall clock."""
    from glassfeed.api.app import create_app
    from glassfeed.settings import load_settings
    from glassfeed.web import moderation

    folder = tmp_path_factory.mktemp("modweb")
    settings = load_settings(
        store={"path": folder / "mod.db"},
        api={"key": KEY},
        moderation={"moderator_keys": MODS},
        serving={"clock": "wall"},
    )
    app = create_app(settings)
    moderation.install(app)  # until create_app does it (then this call is a no-op)
    base, stop = start_server(app)
    svc = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=base, timeout=10) as c:
        r = c.post("/v1/users", json={"users": [{"id": u} for u in PEOPLE]}, headers=svc)
        tokens = {u["id"]: u["token"] for u in r.json()["users"]}
        now = time.time() - 120
        posts = [
            {"id": "a1", "author": "alice", "text": HOSTILE, "created_at": now},
            {"id": "a2", "author": "alice", "text": "a walk in the park #nature", "created_at": now + 1},
            {"id": "b1", "author": "bob", "text": "my hot take on tax policy", "created_at": now + 2},
            {"id": "g1", "author": "gus", "text": "buy cheap followers here", "created_at": now + 3},
            {"id": "g2", "author": "gus", "text": "buy cheap likes here", "created_at": now + 4},
        ]
        assert c.post("/v1/posts", json=posts, headers=svc).status_code == 201
    yield base, tokens
    stop()


def bearer(k: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {k}"}


def public_ids(base: str) -> list[str]:
    return [i["post"] for i in httpx.get(f"{base}/v1/feed", params={"limit": 50}).json()["items"]]


def home_ids(base: str, tokens: dict[str, str], user: str) -> list[str]:
    r = httpx.get(f"{base}/v1/users/{user}/feed", params={"limit": 50}, headers=bearer(tokens[user]))
    assert r.status_code == 200, r.text
    return [i["post"] for i in r.json()["items"]]


UNLABELLED = """[...document.querySelectorAll('input, select, textarea, button')]
    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
    .map(e => e.outerHTML)"""


def use_key(page, key: str) -> None:
    page.fill("#mod-key", key)
    page.click("#key-form button[type=submit]")


def test_moderator_decides_a_reported_post_in_the_console(mod_server, page, artifacts):
    base, tokens = mod_server
    for u in ("carol", "dan", "erin"):
        r = httpx.post(
            f"{base}/v1/users/{u}/reports",
            json={"post": "a1", "category": "harassment", "text": f"{u}: <i>this</i> is bullying"},
            headers=bearer(tokens[u]),
        )
        assert r.status_code == 201, r.text
    assert "a1" in home_ids(base, tokens, "fay")  # three reports: queued, limited on public surfaces only

    page.goto(f"{base}/moderation")
    use_key(page, MODS["ana"])
    case = page.locator('#queue-list .case[data-subject="a1"]')
    case.wait_for()
    assert "ana" in page.locator("#key-status").inner_text()
    # the key is in this tab's sessionStorage only: not in the URL, not in a cookie, not left in the field
    assert page.evaluate("sessionStorage.getItem('glassfeed.moderatorKey')") == MODS["ana"]
    assert MODS["ana"] not in page.url and not any(MODS["ana"] in c["value"] for c in page.context.cookies())
    assert page.input_value("#mod-key") == ""
    # what the queue shows, escaped: the post's text and the reports' texts as text, nothing injected
    assert case.locator(".post-text").inner_text() == HOSTILE
    assert page.evaluate("window.pwned") is None and case.locator("img, b").count() == 0
    reports = case.locator('.case-items li[data-kind="report"]')
    assert reports.count() == 3 and "<i>this</i> is bullying" in reports.first.inner_text()
    # the rule "reported-review" queued it too: its case names the rule
    assert "reported-review" in case.locator('.case-items li[data-kind="automated"]').inner_text()
    assert "harassment" in case.locator('[data-field="categories"]').inner_text()
    for field in ("severity", "reach", "priority", "trusted", "scores"):
        assert case.locator(f'[data-field="{field}"]').inner_text().strip(), field
    assert case.locator('.vis tr[data-surface="public"]').get_attribute("data-action") == "followers_only"
    assert page.evaluate(UNLABELLED) == []  # every control has a name a screen reader can read
    page.screenshot(path=str(artifacts / "moderation_queue.png"), full_page=True)

    case.locator(".decide-one").click()
    assert "post a1" in page.locator("#decide-subjects").inner_text()
    page.select_option("#d-action", "drop")
    page.check('#d-grounds input[value="incompatible"]')
    page.select_option("#d-category", "harassment")
    page.fill("#d-grounds-explanation", "Terms 4.2: no harassment or bullying of other people.")
    page.fill("#d-facts", "Insults aimed at one person; three people reported it.")
    page.click("#decide-submit")
    sor = page.locator("#result-list .sor").first
    sor.wait_for()
    assert "removed" in sor.locator('[data-field="action"]').inner_text()
    assert sor.locator('[data-field="subject"]').inner_text() == "post a1"
    assert sor.locator('[data-field="ground"]').inner_text() == "incompatible with the terms"
    assert "Terms 4.2" in sor.locator('[data-field="ground-text"]').inner_text()
    assert "Harassment" in sor.locator('[data-field="category"]').inner_text()
    assert "three people reported it" in sor.locator('[data-field="facts"]').inner_text()
    assert sor.locator('[data-field="automated"]').inner_text().startswith("no")
    assert sor.locator('[data-field="appeal-deadline"]').inner_text().strip() not in ("", "–")
    page.wait_for_selector("#queue-list .empty")  # the case is resolved
    page.screenshot(path=str(artifacts / "moderation_decided.png"), full_page=True)

    # through the API: removed everywhere (public, and the home feed of someone who did not report it)
    assert "a1" not in public_ids(base)
    home = home_ids(base, tokens, "hal")
    assert home and "a1" not in home
    assert httpx.get(f"{base}/v1/moderation/queue", headers=bearer(MODS["ana"])).json()["cases"] == []

    # the audit log tab lists the reports, the automated actions and the decision
    page.click("#tab-log")
    page.wait_for_selector('#log-table tr[data-kind="decision"]')
    kinds = page.eval_on_selector_all("#log-table tbody tr", "rs => rs.map(r => r.dataset.kind)")
    assert kinds.count("report") == 3 and "automated" in kinds and "decision" in kinds


def test_bulk_decision_of_several_cases(mod_server, page):
    base, tokens = mod_server
    for post in ("g1", "g2"):
        r = httpx.post(
            f"{base}/v1/users/fay/reports", json={"post": post, "category": "spam"}, headers=bearer(tokens["fay"])
        )
        assert r.status_code == 201, r.text
    page.goto(f"{base}/moderation")
    use_key(page, MODS["ben"])
    for post in ("g1", "g2"):
        page.locator(f'#queue-list .case[data-subject="{post}"] .pick').check()
    assert page.locator("#decide-submit").inner_text() == "Decide all 2"
    page.select_option("#d-action", "downrank")
    page.fill("#d-factor", "0.3")
    page.check('#d-grounds input[value="incompatible"]')
    page.select_option("#d-category", "spam")
    page.fill("#d-grounds-explanation", "Terms 7: no platform manipulation.")
    page.fill("#d-facts", "Sells fake engagement.")
    page.click("#decide-submit")
    page.wait_for_function("() => document.querySelectorAll('#result-list .sor').length === 2")
    actions = page.locator('#result-list [data-field="action"]').all_inner_texts()
    assert actions == ["ranked lower (×0.30)"] * 2
    log = httpx.get(f"{base}/v1/moderation/log", headers=bearer(MODS["ben"])).json()["records"]
    decided = {r["subject"]["id"] for r in log if r["kind"] == "decision" and r["actor"] == "ben"}
    assert decided == {"g1", "g2"}


def test_author_appeals_and_another_moderator_reverses(mod_server, page, browser, artifacts):
    base, tokens = mod_server
    decision = {
        "post": "b1",
        "action": "drop",
        "ground": "incompatible",
        "grounds_explanation": "Terms 4.2: no harassment",
        "category": "harassment",
        "facts": "Targets a named person.",
    }
    r = httpx.post(f"{base}/v1/moderation/decisions", json={"decisions": [decision]}, headers=bearer(MODS["ana"]))
    assert r.status_code == 201, r.text
    sid = r.json()["statements"][0]["id"]
    assert "b1" not in public_ids(base)
    home = home_ids(base, tokens, "ivy")
    assert home and "b1" not in home

    # the author signs in with their token and reads the statement of reasons
    page.goto(f"{base}/statements")
    page.fill("#token-user", "bob")
    page.fill("#token-value", tokens["bob"])
    page.click("#token-form button[type=submit]")
    card = page.locator(f'.sor[data-statement="{sid}"]')
    card.wait_for()
    assert "removed" in card.locator('[data-field="action"]').inner_text()
    assert card.locator('[data-field="surfaces"]').inner_text() == "home, search, notifications, public"
    assert card.locator('[data-field="ground"]').inner_text() == "incompatible with the terms"
    assert "Harassment" in card.locator('[data-field="category"]').inner_text()
    assert card.locator('[data-field="facts"]').inner_text() == "Targets a named person."
    assert card.locator('[data-field="automated"]').inner_text() == "no: a person decided"
    assert card.locator('[data-field="appeal-deadline"]').inner_text()[:2] == "20"
    redress = card.locator('[data-field="redress"]').inner_text()
    assert "out-of-court" in redress.lower() and "courts" in redress.lower()
    assert card.get_attribute("data-appeal-status") == "none"
    assert page.evaluate(UNLABELLED) == []
    card.locator("textarea").fill("It criticised a public figure's policy; it was not harassment.")
    card.locator(".appeal-form button[type=submit]").click()
    page.wait_for_selector(f'.sor[data-statement="{sid}"] .appeal-state[data-appeal-state="open"]')
    card = page.locator(f'.sor[data-statement="{sid}"]')
    assert "open" in card.locator('[data-field="appeals"]').inner_text()
    assert card.locator(".appeal-form").count() == 0  # one open appeal per decision
    page.screenshot(path=str(artifacts / "moderation_statement_appealed.png"), full_page=True)

    # the moderator who decided is refused, clearly; another moderator reverses it
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        con = ctx.new_page()
        con.set_default_timeout(10_000)
        con.goto(f"{base}/moderation")
        use_key(con, MODS["ana"])
        con.wait_for_selector("#queue-list[aria-busy=false]")
        con.click("#tab-appeals")
        appeal = con.locator(f'.appeal[data-statement="{sid}"]')
        appeal.wait_for()
        assert appeal.locator('[data-own="true"]').is_visible()
        assert con.evaluate(UNLABELLED) == []
        assert "It criticised a public figure" in appeal.locator("blockquote.appeal-text").inner_text()
        appeal.locator('input[value="reversed"]').check()
        appeal.locator("textarea").fill("Criticism of policy, not harassment.")
        appeal.locator("button[type=submit]").click()
        refused = appeal.locator('[data-refused="true"]')
        refused.wait_for()
        text = refused.inner_text()
        assert "403" in text and "different moderator" in text
        con.screenshot(path=str(artifacts / "moderation_appeal_refused.png"), full_page=True)
        assert "b1" not in public_ids(base)  # nothing changed

        con.click("#key-forget")
        assert con.evaluate("sessionStorage.getItem('glassfeed.moderatorKey')") is None
        use_key(con, MODS["ben"])
        con.wait_for_function("() => document.body.dataset.moderator === 'ben'")
        con.click("#tab-appeals")
        appeal = con.locator(f'.appeal[data-statement="{sid}"]')
        appeal.wait_for()
        assert appeal.locator('[data-own="true"]').count() == 0
        appeal.locator('input[value="reversed"]').check()
        appeal.locator("textarea").fill("Criticism of policy, not harassment.")
        appeal.locator("button[type=submit]").click()
        con.wait_for_selector(f'.appeal[data-statement="{sid}"] [data-decided="reversed"]')
        con.screenshot(path=str(artifacts / "moderation_appeal_reversed.png"), full_page=True)
    finally:
        ctx.close()

    # through the API: the post is back; the author's page says so
    assert "b1" in public_ids(base)
    assert "b1" in home_ids(base, tokens, "kim")
    st = httpx.get(f"{base}/v1/users/bob/statements/{sid}", headers=bearer(tokens["bob"])).json()
    assert st["reversed"] is True and st["appeals"][0]["status"] == "reversed"
    page.reload()
    card = page.locator(f'.sor[data-statement="{sid}"]')
    card.wait_for()
    assert card.locator("[data-reversed=true]").is_visible()
    assert card.locator('.appeal-state[data-appeal-state="reversed"]').count() == 1
