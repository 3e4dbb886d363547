"""Jetstream ingest against the fixture (written to the documented Jetstream schema): ids, deletes, cursor, replay."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

import jetstream_support as js_support
from glassfeed.bluesky.jetstream import JetstreamFollower, JetstreamIngester
from glassfeed.bluesky.settings import load_bluesky_settings
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


# ---------------------------------------------------------------------- the long-running consumer, without sleeping
class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


class FakeConnection:
    """``recv`` plays a script: a str is a message; a float idles that long (TimeoutError); an exception is
    raised (the connection drops); a callable is called (then idles). An empty script idles for the timeout. Each
    ``recv`` waits at most its timeout, as a real one does."""

    def __init__(self, clock: FakeClock, script: list) -> None:
        self.clock, self.script = clock, list(script)

    def recv(self, timeout: float | None = None) -> str:
        if not self.script:
            self.clock.t += timeout or 0.0
            raise TimeoutError
        step = self.script.pop(0)
        if isinstance(step, str):
            return step
        if isinstance(step, BaseException):
            raise step
        if callable(step):
            step()
            raise TimeoutError
        waited = min(step, step if timeout is None else timeout)
        self.clock.t += waited
        if step > waited:  # the rest of the quiet spell is still ahead
            self.script.insert(0, step - waited)
        raise TimeoutError

    def __enter__(self) -> FakeConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def follower(ing, clock, scripts, rewind_s=2.0, max_messages=None, **cfg):
    """A JetstreamFollower whose connections play ``scripts`` in turn (an exception: connecting fails)."""
    urls: list[str] = []

    def connect(url: str):
        urls.append(url)
        s = scripts.pop(0)
        if isinstance(s, BaseException):
            raise s
        return FakeConnection(clock, s)

    base = {"reconnect_min_s": 1.0, "reconnect_max_s": 4.0, "reconnect_healthy_s": 30.0, "flush_interval_s": 1.0}
    settings = replace(load_bluesky_settings(), **{**base, **cfg})
    js = JetstreamIngester(ing, rewind_s=rewind_s)
    f = JetstreamFollower(
        js,
        "wss://js.example/subscribe",
        settings,
        max_messages=max_messages,
        connect=connect,
        clock=clock,
        sleep=clock.sleep,
        jitter=lambda: 1.0,
    )
    return f, js, urls


def msgs(n: int, start: int = 0) -> list[str]:
    return [json.dumps(js_support.post(ALICE, f"3lz{i:010d}", T0_US + i * 1_000_000)) for i in range(start, n)]


T0_US = 1_735_732_800_000_000


def test_follower_reconnects_with_backoff_from_the_saved_cursor(ing):
    clock = FakeClock()
    m = msgs(8)
    scripts = [
        [*m[:4], ConnectionResetError("peer reset")],  # up 0 s: not healthy
        OSError("connection refused"),
        OSError("connection refused"),
        [*m[2:6], 40.0, ConnectionResetError("dropped")],  # up 40 s: healthy, the backoff starts again
        [*m[5:]],
    ]
    f, js, urls = follower(ing, clock, scripts, max_messages=4 + 4 + 3)
    stats = f.run()
    assert clock.slept == [1.0, 2.0, 4.0, 1.0]  # doubling, capped at reconnect_max_s, reset after a healthy one
    assert "cursor=" not in urls[0]
    t = [json.loads(x)["time_us"] for x in m]
    assert [js_support.cursor_of(u) for u in urls[1:]] == [t[3] - 2_000_000] * 3 + [t[5] - 2_000_000]
    assert stats.messages == 11 and stats.posts == 8 and stats.duplicates == 3 and f.connections == 3
    assert ing.store.count("posts") == 8 and js.cursor == t[7]


def test_backoff_is_jittered_within_half_to_full_delay(ing):
    f, _, _ = follower(ing, FakeClock(), [])
    f.jitter = lambda: 0.0
    assert [f.backoff(n) for n in (1, 2, 3, 9)] == [0.5, 1.0, 2.0, 2.0]


def test_follower_commits_by_age_and_stop_commits_the_rest(ing):
    clock = FakeClock()
    m = msgs(3)
    commits: list[tuple[float, int]] = []
    f, js, _ = follower(ing, clock, [[m[0], 0.5, m[1], 5.0, m[2], lambda: f.on_signal(15, None)]], ingest_batch=100)
    real = js.handle_batch
    js.handle_batch = lambda batch: (commits.append((clock.t, len(batch))), real(batch))[1]
    stats = f.run()
    # m0 waited since t=0: committed with m1 at t=1.0 (flush_interval_s), long before a batch of 100 filled up;
    # the signal (as SIGTERM's handler) ended the wait at once, and m2 was committed on the way out
    assert commits == [(1.0, 2), (5.5, 1)] and stats.posts == 3
    assert js.cursor == json.loads(m[2])["time_us"]


def test_follower_prunes_at_start_and_every_interval(ing):
    clock = FakeClock()
    calls: list[float] = []
    f, _, _ = follower(ing, clock, [[10.0, 10.0, 10.0, 10.0, lambda: f.stop()]], prune_interval_s=15.0)
    f.prune = lambda: calls.append(clock.t)
    f.run()
    assert calls == [0.0, 15.0, 30.0]  # 40 s of quiet, waited in flush_interval_s steps
