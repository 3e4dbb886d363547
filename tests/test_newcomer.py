"""The newcomer's first hour (issue 17): the README tour works as written, an empty feed says why, tokens and
keys can be issued, a mistyped --db is refused, the anonymous feed does not claim picked topics, a reported post
is hidden from the reporter, and the CLI prints readable, pageable output."""

from __future__ import annotations

import json
import os
import stat
import time
from datetime import datetime

import pytest
from typer.testing import CliRunner

from glassfeed.bluesky.cli import clip_words
from glassfeed.cli import app
from glassfeed.feed.explain import source_reason
from glassfeed.feed.policy import HEADS
from glassfeed.feed.service import FeedService
from glassfeed.ingest import Ingestor, hash_token
from glassfeed.state import ServingState
from glassfeed.store import open_store

runner = CliRunner()


def _copy(src, dst) -> None:
    store = open_store(src)
    store.backup(dst)
    store.close()


def _generate(db, *extra: str) -> None:
    r = runner.invoke(app, ["generate", "--users", "150", "--days", "2", "--seed", "4", "--db", str(db), *extra])
    assert r.exit_code == 0, r.output


@pytest.fixture(scope="module")
def tour_db(tmp_path_factory):
    """A store made by `glassfeed generate` with its default start, as the README tour does."""
    db = tmp_path_factory.mktemp("tour") / "tour.db"
    _generate(db)
    return db


# ------------------------------------------------------------------ 1. generate ends now; an empty feed says why
def test_generate_defaults_to_a_history_that_ends_now_so_the_wall_clock_server_has_a_feed(tour_db):
    store = open_store(tour_db)
    try:
        newest = float(store.load_posts()["created_at"].max())
        assert time.time() - 86400 < newest <= time.time() + 3600
        svc = FeedService(Ingestor(store), clock="wall")  # what `glassfeed serve` ranks at
        page = svc.feed(None, limit=10, log_impressions=False)
        svc.close()
    finally:
        store.close()
    assert len(page["items"]) > 0 and "no post in the last" not in (page["notice"] or "")


def test_an_old_history_served_at_wall_clock_time_says_why_the_feed_is_empty(tmp_path):
    db = tmp_path / "old.db"
    _generate(db, "--start", "2026-01-01")
    store = open_store(db)
    try:
        svc = FeedService(Ingestor(store), clock="wall")
        page = svc.feed(None, limit=10, log_impressions=False)
        user_page = svc.feed("u1", policy="chronological", limit=10, log_impressions=False)
        svc.close()
    finally:
        store.close()
    for p in (page, user_page):
        assert p["items"] == []
        assert "no post in the last 168 h: the newest post is from 2026-01-0" in p["notice"]
        assert "ranks at wall-clock time" in p["notice"]


def test_a_page_whose_candidates_were_all_filtered_names_the_filters(fresh_feed):
    svc, _ = fresh_feed
    first = svc.feed("u5", policy="chronological", limit=10, log_impressions=False)
    pages, cursor = [first], first["cursor"]
    assert cursor is not None
    while cursor is not None:  # walk the session to its end
        pages.append(svc.feed("u5", limit=10, cursor=cursor, log_impressions=False))
        cursor = pages[-1]["cursor"]
    assert len(pages) > 2
    again = svc.feed("u5", limit=10, cursor=first["cursor"], log_impressions=False)  # everything served already
    assert again["items"] == []
    assert again["notice"].startswith("every candidate was filtered: ")
    assert "served this session" in again["notice"]


# ------------------------------------------------------------------ 5. token, key, the demo's saved key
def test_token_issues_a_fresh_hashed_token_for_an_existing_user(tour_db):
    r = runner.invoke(app, ["token", "u3", "--db", str(tour_db)])
    assert r.exit_code == 0, r.output
    first = r.stdout.strip().splitlines()[-1]
    store = open_store(tour_db)
    idx = store.user_idx("u3")
    assert store.token_hash(idx) == hash_token(first)
    store.close()
    again = runner.invoke(app, ["token", "u3", "--db", str(tour_db)])
    second = again.stdout.strip().splitlines()[-1]
    store = open_store(tour_db)
    assert second != first and store.token_hash(idx) == hash_token(second)  # the old token no longer works
    store.close()
    ghost = runner.invoke(app, ["token", "ghost", "--db", str(tour_db)])
    assert ghost.exit_code == 1 and "unknown user 'ghost'" in ghost.output
    assert len(ghost.output.strip().splitlines()) == 1


def test_key_prints_a_fresh_key_and_how_to_set_it():
    a, b = runner.invoke(app, ["key"]), runner.invoke(app, ["key"])
    assert a.exit_code == 0
    ka, kb = a.stdout.splitlines()[0], b.stdout.splitlines()[0]
    assert len(ka) >= 32 and ka != kb
    assert f"GLASSFEED_API_KEY={ka}" in a.output and "[api]" in a.output


def test_demo_reuses_its_saved_service_key_unless_one_is_configured(tour_db, tmp_path):
    db = tmp_path / "demo.db"
    _copy(tour_db, db)  # a demo store that already has users: demo neither generates nor trains

    def key_of(env=None):
        r = runner.invoke(app, ["demo", "--db", str(db), "--no-serve"], env=env)
        assert r.exit_code == 0, r.output
        return next(line for line in r.output.splitlines() if "service API key" in line).split(":", 1)[1].strip()

    first = key_of()
    assert key_of() == first
    saved = tmp_path / "demo.db.demo-key"
    assert saved.read_text().strip() == first and stat.S_IMODE(os.stat(saved).st_mode) == 0o600
    assert key_of({"GLASSFEED_API_KEY": "from-the-environment"}) == "from-the-environment"


# ------------------------------------------------------------------ 7. a mistyped --db is refused
@pytest.mark.parametrize(
    "args",
    [["stats"], ["feed", "u0"], ["train"], ["audit"], ["token", "u0"], ["serve"]],
)
def test_read_commands_refuse_a_store_that_does_not_exist(tmp_path, args):
    db = tmp_path / "typo" / "glasfeed.db"
    r = runner.invoke(app, [*args, "--db", str(db)])
    assert r.exit_code != 0
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and ("no store at" in lines[0] or "store not found" in lines[0]), r.output
    assert not db.exists() and not db.parent.exists()


# ------------------------------------------------------------------ 8. the anonymous feed picked no topic
def test_cold_start_reason_claims_a_picked_topic_only_for_a_person_who_picked_it(trained_feed):
    svc, _ = trained_feed
    st: ServingState = svc.state
    page = svc.feed(None, limit=50, log_impressions=False)
    cold = [it for it in page["items"] if it["source"] == "cold_start"]
    assert cold and not any("you picked" in it["reason"] for it in cold)
    u = next(u for u in range(1, st.n_users) if st.users.interests_of(u))
    picked = st.users.interests_of(u)[0]
    post = int(next(p for p in range(1, st.posts.n + 1) if st.posts.topic_id_of(p) == picked))
    assert source_reason(st, u, post, "cold_start", 0).endswith(", a topic you picked")
    assert "you picked" not in source_reason(st, 0, post, "cold_start", 0)


# ------------------------------------------------------------------ 9. a reported post is hidden from the reporter
def test_a_post_you_reported_is_hidden_from_your_feeds(fresh_feed):
    svc, _ = fresh_feed
    for policy in ("engagement", "chronological"):  # chronological does not filter seen posts
        before = svc.feed("u2", policy=policy, limit=20, log_impressions=False)
        target = before["items"][0]["post"]
        svc.ingestor.ingest_events([{"kind": "report", "user": "u2", "post": target}])
        after = svc.feed("u2", policy=policy, limit=20, log_impressions=False)
        assert target not in [it["post"] for it in after["items"]]
        assert after["dropped"]["reported_by_you"] >= 1
        other = svc.feed("u3", policy=policy, limit=100, log_impressions=False)
        assert other["dropped"]["reported_by_you"] == 0  # only the reporter's feeds
    svc.reload()  # rebuilt from the store: still hidden
    again = svc.feed("u2", policy="chronological", limit=20, log_impressions=False)
    assert again["dropped"]["reported_by_you"] >= 1


# ------------------------------------------------------------------ 10. readable CLI output
def test_training_table_is_not_wrapped_when_piped(tour_db, tmp_path):
    db = tmp_path / "train.db"
    _copy(tour_db, db)
    r = runner.invoke(app, ["train", "--db", str(db)])
    assert r.exit_code == 0, r.output
    rows = [line for line in r.stdout.splitlines() if line.startswith("|")]
    assert rows[0].startswith("| head |") and len(rows) == 2 + len(HEADS)
    assert all(line.count("|") == 8 for line in rows)  # one table row per line, however wide


def test_cli_feed_shows_text_and_pages_without_repeats_unwrapped_when_piped(trained_feed, tmp_path):
    svc, _ = trained_feed
    db = tmp_path / "feed.db"
    svc.store.backup(db)
    r = runner.invoke(app, ["feed", "u0", "--db", str(db), "--limit", "5", "--pages", "2"])
    assert r.exit_code == 0, r.output
    assert "page 2" in r.output and "text" in r.output
    assert max(len(line) for line in r.output.splitlines()) > 80  # not squeezed into 80 columns
    shown = [line.split("│")[2].strip() for line in r.output.splitlines() if line.startswith("│") and "│ p" in line]
    assert len(shown) == 10 and len(set(shown)) == 10
    cursor = r.output.strip().splitlines()[-1].split("--cursor ")[1]
    more = runner.invoke(app, ["feed", "u0", "--db", str(db), "--limit", "5", "--cursor", cursor])
    assert more.exit_code == 0 and "│" in more.output
    bad = runner.invoke(app, ["feed", "u0", "--db", str(db), "--cursor", "nonsense"])
    assert bad.exit_code == 2 and "cursor:" in bad.output


def test_bluesky_records_cut_names_at_a_word_and_give_a_real_creation_time():
    assert clip_words("Engagement (X's published heavy-ranker weights)", 24) == "Engagement (X's…"
    assert clip_words("short", 24) == "short"
    r = runner.invoke(app, ["bluesky", "records"], env={"GLASSFEED_BSKY_HOSTNAME": "feeds.example.com"})
    assert r.exit_code == 0, r.output
    records = json.loads(r.stdout)["records"]
    assert records and all(len(x["record"]["displayName"]) <= 24 for x in records)
    for x in records:
        assert datetime.fromisoformat(x["record"]["createdAt"].replace("Z", "+00:00")).year >= 2025
        title = x["record"]["displayName"].removesuffix("…")
        assert not title or title.split()[-1].isalnum() or title.endswith((")", "'s"))
