"""Jetstream ingest against the fixture (written to the documented Jetstream schema): ids, deletes, cursor, replay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from glassfeed.bluesky.jetstream import JetstreamIngester
from glassfeed.cli import app
from glassfeed.domain import EventKind
from glassfeed.feed.service import FeedService
from glassfeed.ingest import Ingestor
from glassfeed.store import open_store

FIXTURE = Path(__file__).parent / "fixtures" / "jetstream_sample.jsonl"
ALICE, BOB = "did:plc:alice7xq2kzv4mf3hj5c", "did:plc:bobz3kd8rw2x6ty9qa1u"
CAROL, DAVE = "did:plc:carol5v9mf2k8hq3wz7e", "did:plc:dave2p6n4x8c1b7y3kr5"
P1 = f"at://{ALICE}/app.bsky.feed.post/3lf0000000001"
P6 = f"at://{CAROL}/app.bsky.feed.post/3lf0000000006"


@pytest.fixture()
def ing(tmp_path):
    store = open_store(tmp_path / "bsky.db", "OFF")
    yield Ingestor(store)
    store.close()


def kinds(store, user):
    return [EventKind(k) for _s, _i, k, *_ in reversed(store.user_events(store.user_idx(user)))]


def test_fixture_becomes_users_posts_and_events(ing):
    js = JetstreamIngester(ing)
    stats = js.ingest_file(FIXTURE, batch=7)  # small batches: creates and deletes land in different batches
    st = ing.store
    assert stats.messages == 30 and stats.errors == 0
    assert set(st.user_ids()) == {ALICE, BOB, CAROL, DAVE, "did:plc:erin9w3q5t7y1u2i4o6p"}
    assert all(p.startswith("at://") and "/app.bsky.feed.post/" in p for p in st.post_ids())
    cols = st.load_posts()
    posts = {
        pid: (None if r < 0 else r, None if q < 0 else q, ",".join(tp), ",".join(lb), tx)
        for pid, r, q, tp, lb, tx in zip(
            cols["id"],
            cols["reply_to"].tolist(),
            cols["quote_of"].tolist(),
            cols["topics"],
            cols["labels"],
            cols["text"],
        )
    }
    assert posts[f"at://{CAROL}/app.bsky.feed.post/3lf0000000003"][0] == st.post_idx(P1)  # reply
    assert posts[f"at://{DAVE}/app.bsky.feed.post/3lf0000000004"][1] == st.post_idx(
        f"at://{BOB}/app.bsky.feed.post/3lf0000000002"
    )  # quote
    assert posts[P1][2] == "nature" and posts[P1][4] == "Morning walk by the river #nature"  # update ignored
    assert posts[f"at://{BOB}/app.bsky.feed.post/3lf0000000005"][3] == "spoiler"  # self-label kept
    assert posts[P6][3] == "removed"  # deleted post: labelled, dropped from feeds
    # carol liked then unliked p1; dave followed then unfollowed bob; bob blocked then unblocked dave
    assert kinds(st, CAROL)[-1] is EventKind.UNLIKE
    src, dst, _ = st.load_edges("follows")
    follows = set(zip(src.tolist(), dst.tolist()))
    assert (st.user_idx(DAVE), st.user_idx(BOB)) not in follows
    assert (st.user_idx(ALICE), st.user_idx(BOB)) in follows
    assert st.count("blocks") == 0 and EventKind.UNBLOCK in kinds(st, BOB)
    # likes of a feed generator / of an unseen post, the repost delete, identity+account+update are skipped
    assert stats.skipped == 6
    like = f"at://{BOB}/app.bsky.feed.like/3lf0000000011"
    assert st.event_ids_exist([like, "at://nope"]) == {like}  # record URI is the event id
    assert js.cursor == json.loads(FIXTURE.read_text().splitlines()[-1])["time_us"]


def test_replay_changes_nothing_and_cursor_resumes(ing):
    js = JetstreamIngester(ing, rewind_s=5)
    js.ingest_file(FIXTURE)
    before = {t: ing.store.count(t) for t in ("users", "posts", "events", "follows", "blocks")}
    labels = ing.store.load_posts()["labels"]
    again = js.ingest_file(FIXTURE, batch=3)
    assert {t: ing.store.count(t) for t in before} == before
    assert ing.store.load_posts()["labels"] == labels
    assert again.events == 0 and again.posts == 0 and again.users == 0 and again.duplicates > 0
    last = js.cursor
    assert js.resume_cursor() == last - 5_000_000
    assert f"cursor={last - 5_000_000}" in js.stream_url("wss://jetstream.example/subscribe")
    # an older message never moves the cursor back; a newer one moves it forward
    lines = [json.loads(x) for x in FIXTURE.read_text().splitlines()]
    js.handle(lines[3])
    assert js.cursor == last
    newer = {**lines[2], "time_us": last + 10}
    newer["commit"] = {**newer["commit"], "rkey": "3lf9999999999"}
    stats = js.handle(newer)
    assert stats.posts == 1 and js.cursor == last + 10


def test_malformed_messages_are_counted_not_fatal(ing, tmp_path):
    bad = tmp_path / "bad.jsonl"
    good = FIXTURE.read_text().splitlines()[2]
    bad.write_text(
        "\n".join(["{not json", json.dumps({"kind": "commit"}), json.dumps({"did": "x", "time_us": 1}), good, ""])
    )
    stats = JetstreamIngester(ing).ingest_file(bad)
    assert stats.errors == 3 and stats.posts == 1 and stats.messages == 4


def test_deleted_post_leaves_the_feed(ing):
    JetstreamIngester(ing).ingest_file(FIXTURE)
    svc = FeedService(ing, clock="data", models_folder=ing.store.path.parent / "models")
    served = {it["post"] for it in svc.feed(None, policy="engagement", limit=50)["items"]}
    assert P1 in served and P6 not in served
    # the follow graph from Jetstream drives the in-network feed: Alice follows Bob and Carol
    mine = svc.feed(ALICE, policy="chronological", limit=50)["items"]
    assert {it["author"] for it in mine} == {BOB, CAROL} and P6 not in {it["post"] for it in mine}


def test_cli_ingests_a_file_and_prints_records(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSFEED_BSKY_HOSTNAME", "feeds.example.com")
    r = CliRunner().invoke(app, ["bluesky", "ingest", str(FIXTURE), "--db", str(tmp_path / "c.db")])
    assert r.exit_code == 0, r.output
    assert '"posts": 6' in r.output and '"cursor": 1735732842000002' in r.output
    r = CliRunner().invoke(app, ["bluesky", "records"])
    assert r.exit_code == 0 and "at://did:web:feeds.example.com/app.bsky.feed.generator/engagement" in r.output
