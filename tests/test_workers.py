"""Several serving workers on one store, with real processes (issue 12, "many serving workers").

- Two ``uvicorn --factory glassfeed.api.app:create_app`` processes (``LiveServer``: worker A and worker B, each on
  its own port so that a test can address either; ``glassfeed serve --workers N`` runs the same app in N processes
  behind one port) on one SQLite store: a like sent through A shows on B's next page within 1 s (B tails the log).
- ``glassfeed serve --workers 2`` (uvicorn's supervisor): ``kill -9`` of one worker under load; it is replaced,
  the other keeps serving, and every acknowledged event is in the store.
- With ``[serving] redis_url``: a paging session, ``why``, the rate limits and browser sessions work whichever
  worker answers. Needs Redis (``$GLASSFEED_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/0``): skipped with
  the reason when it is unreachable, failed under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
import redis.asyncio as aioredis
from fastapi.testclient import TestClient

from glassfeed.api.app import create_app
from glassfeed.api.middleware import RedisTokenBuckets
from glassfeed.cli import settings_toml
from glassfeed.domain import EventBatch, EventKind
from glassfeed.feed.service import FeedError, FeedService
from glassfeed.feed.sessions import RedisSessions, make_sessions
from glassfeed.ingest import Ingestor
from glassfeed.settings import load_settings, packaged_settings
from glassfeed.state import C
from glassfeed.store import open_store
from live_server import LiveServer, ServeWorkers, free_port
from pg_support import require_service

KEY = "workers-key"
H = {"Authorization": f"Bearer {KEY}"}
REDIS_DEFAULT = "redis://127.0.0.1:6379/0"


# ---------------------------------------------------------------------- Redis: reachable, or skip (fail under CI)
def redis_base() -> str:
    return os.environ.get("GLASSFEED_TEST_REDIS_URL", REDIS_DEFAULT)


@functools.cache
def _redis_unreachable() -> str | None:
    try:
        redis.Redis.from_url(redis_base(), socket_connect_timeout=2, socket_timeout=2).ping()
    except redis.RedisError as e:
        return str(e) or type(e).__name__
    return None


@pytest.fixture
def redis_env() -> Iterator[dict[str, str]]:
    """Settings for servers sharing state through Redis under a prefix of their own (its keys deleted after)."""
    require_service("Redis", redis_base(), _redis_unreachable())
    prefix = f"gft:{uuid.uuid4().hex[:12]}:"
    yield {"GLASSFEED_SERVING__REDIS_URL": redis_base(), "GLASSFEED_SERVING__REDIS_PREFIX": prefix}
    client = redis.Redis.from_url(redis_base())
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)


# ---------------------------------------------------------------------- a small network, fresh for the wall clock
def make_store(db: Path, n_posts: int = 30) -> None:
    """Users u0..u9 (u1..u9 follow u0) and ``n_posts`` posts by u0, the newest first: p0 a minute old."""
    store = open_store(db)
    ing = Ingestor(store)
    ing.create_users([{"id": f"u{i}"} for i in range(10)])
    now = time.time()
    ing.create_posts(
        [{"id": f"p{i}", "author": "u0", "text": f"post {i}", "created_at": now - 60 * (i + 1)} for i in range(n_posts)]
    )
    ing.ingest_events([{"kind": "follow", "user": f"u{i}", "target_user": "u0"} for i in range(1, 10)])
    store.close()


def two_servers(db: Path, env: dict[str, str] | None = None) -> tuple[LiveServer, LiveServer]:
    """Worker A and worker B on ``db``, started at once (each builds its state from the store)."""
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda _: LiveServer(db, KEY, env=env, start_timeout=90), range(2))
    return a, b


def page(url: str, user: str, **params: object) -> dict:
    r = httpx.get(f"{url}/v1/users/{user}/feed", params={"policy": "chronological", **params}, headers=H, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def likes(pg: dict, post: str) -> int:
    return next(it["counts"]["likes"] for it in pg["items"] if it["post"] == post)


# ---------------------------------------------------------------------- (a) a like through A reaches B's next page
@pytest.mark.slow
def test_a_like_through_worker_a_changes_worker_b_next_page_within_1_s(tmp_path):
    db = tmp_path / "w.db"
    make_store(db)
    a, b = two_servers(db)
    with a, b:
        before = page(b.url, "u1", limit=10)
        assert [it["post"] for it in before["items"]] == [f"p{i}" for i in range(10)]
        assert likes(before, "p3") == 0
        # a post and a user created through A reach B's state too (B tails users, posts and events)
        now = time.time()
        assert httpx.post(f"{a.url}/v1/users", json=[{"id": "late"}], headers=H).status_code == 201
        r = httpx.post(
            f"{a.url}/v1/posts", json=[{"id": "fresh", "author": "u0", "text": "x", "created_at": now}], headers=H
        )
        assert r.status_code == 201
        sent = time.monotonic()
        r = httpx.post(f"{a.url}/v1/events", json=[{"kind": "like", "user": "late", "post": "p3"}], headers=H)
        assert r.status_code == 200 and r.json()["accepted"] == 1
        seen_at = None
        while time.monotonic() - sent < 1.0:
            nxt = page(b.url, "u1", limit=10)
            if nxt["items"][0]["post"] == "fresh" and likes(nxt, "p3") == 1:
                seen_at = time.monotonic() - sent
                break
            time.sleep(0.02)
        assert seen_at is not None, "worker B's page did not show the like sent through worker A within 1 s"
        print(f"the like reached worker B's page {seen_at * 1000:.0f} ms after worker A acknowledged it")
        assert page(a.url, "u1", limit=10)["items"][0]["post"] == "fresh"
        lag = None  # A's page logged impressions: B's lag behind the log comes back to 0 at its next tail
        for _ in range(50):
            lag = httpx.get(f"{b.url}/readyz", timeout=5).json()["checks"]["state"]["lag_events"]
            if lag == 0:
                break
            time.sleep(0.05)
        assert lag == 0


# ---------------------------------------------------------------------- (b) kill -9 of one of two workers under load
@pytest.mark.slow
def test_kill_9_of_one_worker_under_load_loses_no_acknowledged_event(tmp_path):
    db = tmp_path / "k.db"
    make_store(db)
    acked: list[str] = []
    log: list[tuple[float, str, bool]] = []  # (time, what, ok)
    stop = threading.Event()

    def write(url: str) -> None:
        with httpx.Client(base_url=url, headers=H, timeout=10) as c:
            n = 0
            while not stop.is_set():
                ids = [f"e{n}-{j}" for j in range(20)]
                n += 1
                body = [{"id": i, "kind": "like", "user": f"u{1 + j % 9}", "post": f"p{j}"} for j, i in enumerate(ids)]
                try:
                    ok = c.post("/v1/events", json=body).status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    acked.extend(ids)
                log.append((time.monotonic(), "write", ok))

    def read(url: str) -> None:
        with httpx.Client(base_url=url, headers=H, timeout=10) as c:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    ok = c.get(f"/v1/users/u{1 + i % 9}/feed", params={"limit": 10}).status_code == 200
                except httpx.HTTPError:
                    ok = False
                log.append((time.monotonic(), "read", ok))

    with ServeWorkers(db, KEY, workers=2, start_timeout=90) as srv:
        before = srv.worker_pids()
        threads = [threading.Thread(target=f, args=(srv.url,)) for f in (write, read, read)]
        for t in threads:
            t.start()
        try:
            time.sleep(1.5)
            victim = before[0]
            killed_at = time.monotonic()
            os.kill(victim, 9)
            replaced_at = None  # when the new worker has built its app and serves ("Started server process [pid]")
            while time.monotonic() - killed_at < 60 and replaced_at is None:
                new = [p for p in srv.worker_pids() if p not in before]
                if new and f"Started server process [{new[0]}]" in srv.log():
                    replaced_at = time.monotonic()
                time.sleep(0.05)
            assert replaced_at is not None, f"the killed worker was not replaced: {srv.log()[-2000:]}"
            assert len(srv.worker_pids()) == 2
            time.sleep(1.5)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        survivor = next(p for p in before if p != victim)
        assert survivor in srv.worker_pids()
    during = [ok for t, _, ok in log if killed_at <= t <= replaced_at]
    failed = [(what, t - killed_at) for t, what, ok in log if not ok]
    after = [ok for t, _, ok in log if t > replaced_at]
    print(
        f"{len(log)} requests; {len(failed)} failed, all within {max((f[1] for f in failed), default=0):.2f} s of the"
        f" kill; {sum(during)} answered while the worker was replaced ({replaced_at - killed_at:.1f} s);"
        f" {len(acked)} events acknowledged"
    )
    assert sum(during) > 0, "the other worker stopped serving"
    assert after and all(after), "requests still failed after the replacement"
    assert len(acked) > 0
    store = open_store(db)
    try:
        assert store.event_ids_exist(acked) == set(acked), "an acknowledged event was lost"
    finally:
        store.close()


# ---------------------------------------------------------------------- (c) shared state through Redis
@pytest.mark.slow
def test_sessions_why_rate_limits_and_browser_sessions_work_on_either_worker(tmp_path, redis_env):
    db = tmp_path / "r.db"
    make_store(db)
    store = open_store(db)
    token = Ingestor(store).issue_token("u3")
    store.close()
    env = {
        **redis_env,
        "GLASSFEED_API__ANONYMOUS_FEED_BURST": "3",
        "GLASSFEED_API__ANONYMOUS_FEED_RATE_PER_S": "0.01",
        "GLASSFEED_API__USER_BURST": "3",
        "GLASSFEED_API__USER_RATE_PER_S": "0.01",
    }
    a, b = two_servers(db, env)
    with a, b:
        # a paging session: page 2 on B never repeats page 1 from A (chronological keeps no "seen" filter)
        first = page(a.url, "u1", limit=5)
        second = page(b.url, "u1", limit=5, cursor=first["cursor"])
        one, two = [it["post"] for it in first["items"]], [it["post"] for it in second["items"]]
        assert one == [f"p{i}" for i in range(5)] and two == [f"p{i}" for i in range(5, 10)]
        # why: B explains a post A served
        r = httpx.get(f"{b.url}/v1/users/u1/feed/p2/why", headers=H, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["post"] == "p2" and r.json()["source"] == "following"
        # a browser session made on A is known to B
        web = {"X-Glassfeed-Web": "1"}
        r = httpx.post(f"{a.url}/web/session", json={"user": "u3", "token": token}, headers=web, timeout=10)
        assert r.status_code == 200, r.text
        cookie = {"gf_session": r.cookies["gf_session"]}
        r = httpx.get(f"{b.url}/web/api/me/prefs", headers=web, cookies=cookie, timeout=10)
        assert r.status_code == 200, r.text
        # the anonymous limit counts requests to both workers: burst 3
        codes = [httpx.get(f"{srv.url}/v1/feed", params={"limit": 1}).status_code for srv in (a, b, a, b)]
        assert codes[:3] == [200, 200, 200] and codes[3] == 429
        # the per-person limit too: burst 3, of which signing in (the token is checked on /v1/users/u3/prefs) and
        # the proxied call took 2, on A and B
        tok = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{a.url}/v1/users/u3/prefs", headers=tok).status_code == 200
        r = httpx.get(f"{b.url}/v1/users/u3/prefs", headers=tok)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["detail"][0]["field"] == "user"
        # the service key is not limited per person
        assert all(httpx.get(f"{a.url}/v1/users/u3/prefs", headers=H).status_code == 200 for _ in range(4))


# ---------------------------------------------------------------------- in one process: two services, two handles
def _two_services(tmp_path: Path) -> tuple[FeedService, FeedService]:
    """Worker A and worker B as two FeedServices on two handles of one store, tailing by hand (``catch_up``)."""
    db = tmp_path / "two.db"
    make_store(db)
    settings = packaged_settings().replace(serving={"tail_interval_ms": 0})
    return tuple(FeedService(Ingestor(open_store(db)), settings) for _ in range(2))  # type: ignore[return-value]


def _likes(svc: FeedService, post: str) -> int:
    return int(svc.state.counters.totals(np.array([svc.store.post_idx(post)]))[0, C["like"]])


def test_writes_through_either_worker_are_applied_once_in_log_order(tmp_path):
    a, b = _two_services(tmp_path)
    try:
        b.ingestor.ingest_events([{"kind": "like", "user": "u1", "post": "p1"}])
        head = b.store.max_seq()
        assert a.state.last_seq == head - 1  # A has not tailed B's like yet
        a.ingestor.ingest_events([{"kind": "like", "user": "u2", "post": "p1"}])
        # A's listener read B's like first (the gap below its own event), then applied its own: both, once
        assert a.state.last_seq == head + 1 and _likes(a, "p1") == 2
        assert a.catch_up() == 0 and _likes(a, "p1") == 2
        assert b.catch_up() == 1 and _likes(b, "p1") == 2 and b.catch_up() == 0
        assert b.ingest_lag() == 0 == a.ingest_lag()
    finally:
        a.close()
        b.close()


def test_users_posts_and_unsequenced_changes_reach_the_other_worker(tmp_path):
    a, b = _two_services(tmp_path)
    try:
        a.ingestor.create_users([{"id": "late"}])
        a.ingestor.create_posts([{"id": "late-post", "author": "late", "text": "hello", "created_at": time.time()}])
        a.save_prefs("u1", policy="bridging", topics_more=["golf"])
        a.ingestor.set_muted_words("u2", ["spoiler"])
        a.ingestor.label_posts(["p0"], "removed")
        a.ingestor.delete_user_data("u4")
        u1, u2, u4 = (b.store.user_idx(u) for u in ("u1", "u2", "u4"))
        p0 = b.store.post_idx("p0")
        with pytest.raises(FeedError):  # B does not know the new user yet
            b.feed("late", policy="chronological")
        b.catch_up()
        assert b.store.user_idx("late") == a.store.user_idx("late") and b.store.post_idx("late-post") is not None
        assert b.feed("late", policy="chronological")["user"] == "late"
        assert b.state.feedback.prefs(u1)["policy"] == "bridging" and b.policy_for(u1, None).name == "bridging"
        assert b.state.feedback.muted_words(u2) == ["spoiler"]
        assert "removed" in b.state.posts.labels_of(p0)
        assert "p0" not in [it["post"] for it in b.feed("u3", policy="chronological", limit=30)["items"]]
        assert b.state.users.handle_of(u4) == "u4" and not b.state.graph.following(u4)
        before = b._change_seq
        assert b.catch_up() == 0 and b._change_seq == before  # nothing new: nothing read again
    finally:
        a.close()
        b.close()


def test_tail_thread_folds_in_the_other_workers_writes(tmp_path):
    db = tmp_path / "tail.db"
    make_store(db)
    settings = packaged_settings().replace(serving={"tail_interval_ms": 20})
    a, b = (FeedService(Ingestor(open_store(db)), settings) for _ in range(2))
    try:
        a.ingestor.ingest_events([{"kind": "like", "user": "u1", "post": "p2"}])
        deadline = time.monotonic() + 5
        while _likes(b, "p2") == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _likes(b, "p2") == 1
    finally:
        a.close()
        b.close()
    assert not b._tailer.is_alive()


def test_settings_reach_the_workers_through_a_config_file(tmp_path):
    s = packaged_settings().replace(
        api={"key": 'k"e\\y'}, store={"path": str(tmp_path / "ü.db")}, serving={"redis_url": "redis://h:1/2"}
    )
    f = tmp_path / "glassfeed.toml"
    f.write_text(settings_toml(s))
    assert load_settings(f, environ={}) == s


# ---------------------------------------------------------------------- rate limits, in process
def test_per_key_and_per_user_limits_answer_429_and_spare_the_service_key(tmp_path):
    db = tmp_path / "lim.db"
    make_store(db)
    store = open_store(db)
    tokens = {u: Ingestor(store).issue_token(u) for u in ("u1", "u2")}
    store.close()
    settings = load_settings(
        environ={},
        store={"path": str(db)},
        api={"key": KEY, "key_burst": 2, "key_rate_per_s": 0.01, "user_burst": 3, "user_rate_per_s": 0.01},
    )
    with TestClient(create_app(settings)) as c:
        t1 = {"Authorization": f"Bearer {tokens['u1']}"}
        assert [c.get("/v1/users/u1/prefs", headers=t1).status_code for _ in range(3)] == [200, 200, 429]
        r = c.get("/v1/users/u1/prefs", headers=t1)
        assert r.status_code == 429 and r.json()["detail"][0]["field"] == "credential"
        assert int(r.headers["retry-after"]) >= 1
        t2 = {"X-API-Key": tokens["u2"]}
        assert c.get("/v1/users/u2/prefs", headers=t2).status_code == 200  # another credential: its own bucket
        assert all(c.get("/v1/users/u1/prefs", headers=H).status_code == 200 for _ in range(5))  # service key
        # per person: a bad token for u2 still counts against u2 (2 of 3 left after one good request)
        bad = {"Authorization": "Bearer not-a-token"}
        assert c.get("/v1/users/u2/prefs", headers=bad).status_code == 401
        assert c.get("/v1/users/u2/prefs", headers={"Authorization": "Bearer other"}).status_code == 401
        r = c.get("/v1/users/u2/prefs", headers=t2)
        assert r.status_code == 429 and r.json()["detail"][0]["field"] == "user"


# ---------------------------------------------------------------------- Redis-backed parts, directly
def test_redis_sessions_and_buckets_are_shared_by_clients(redis_env):
    prefix = redis_env["GLASSFEED_SERVING__REDIS_PREFIX"]
    settings = packaged_settings().replace(
        serving={"redis_url": redis_env["GLASSFEED_SERVING__REDIS_URL"], "redis_prefix": prefix, "session_ttl_s": 60}
    )
    one, two = make_sessions(settings.serving), make_sessions(settings.serving)
    assert isinstance(one, RedisSessions)
    one.add("s1", [3, 1, 2], 0.0)
    two.record(
        EventBatch.from_columns(
            kind=[int(EventKind.IMPRESSION)] * 3, user=[1] * 3, post=[7, 8, 9], ts=[0.0] * 3,
            request_id=["engagement:s1.1", "engagement:s2.0", None],
        )
    )  # fmt: skip
    assert two.served("s1") == {1, 2, 3, 7} and one.served("s2") == {8} and one.served("none") == set()
    client = redis.Redis.from_url(redis_env["GLASSFEED_SERVING__REDIS_URL"])
    assert 0 < client.ttl(f"{prefix}served:s1") <= 60
    two.forget(["s1"])
    assert one.served("s1") == set()

    async def takes() -> list[float]:
        client = aioredis.Redis.from_url(redis_env["GLASSFEED_SERVING__REDIS_URL"])
        b1 = RedisTokenBuckets(client, "t", rate=0.5, burst=2.0, prefix=prefix)
        b2 = RedisTokenBuckets(client, "t", rate=0.5, burst=2.0, prefix=prefix)
        out = [await b.take_async("k") for b in (b1, b2, b1)] + [await b2.take_async("other")]
        await client.aclose()
        return out

    # in a thread of its own: an earlier test (Playwright's sync API) may leave an event loop running in this one
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waits = pool.submit(asyncio.run, takes()).result()
    assert waits[:2] == [0.0, 0.0] and 1.0 < waits[2] <= 2.0 and waits[3] == 0.0


def test_an_erasure_is_applied_once_and_before_the_persons_later_events(tmp_path):
    a, b = _two_services(tmp_path)
    try:
        a.ingestor.ingest_events([{"kind": "like", "user": "u4", "post": f"p{i}"} for i in range(3)])
        b.catch_up()
        u4 = b.store.user_idx("u4")
        assert int(b.state.counters.events(np.array([u4]))[0]) == 4  # its follow and 3 likes
        a.delete_user_data("u4")
        a.ingestor.ingest_events([{"kind": "like", "user": "u4", "post": "p9"}])  # the person goes on using it
        a.catch_up()  # A reads its own erasure back from the change log: not applied again
        b.catch_up()  # B forgets the person, then applies what they did since
        for svc in (a, b):
            assert int(svc.state.counters.events(np.array([u4]))[0]) == 1
            assert svc.state.feedback.top_affinities(u4, svc.now(), 5)  # the like after the erasure counts
    finally:
        a.close()
        b.close()


def test_redis_unreachable_is_a_503_for_pages_and_never_fails_a_committed_write(tmp_path):
    db = tmp_path / "down.db"
    make_store(db)
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings = load_settings(
        environ={}, store={"path": str(db)}, api={"key": KEY}, serving={"redis_url": nowhere, "redis_timeout_s": 0.5}
    )
    with TestClient(create_app(settings)) as c:
        r = c.get("/v1/users/u1/feed", headers=H)
        assert r.status_code == 503 and r.json()["detail"][0]["field"] == "service"
        assert c.get("/v1/feed").status_code == 503  # the rate limiter let it through (fails open), the page did not
        imp = [{"kind": "impression", "user": "u1", "post": "p1", "request_id": "engagement:s9.0"}]
        r = c.post("/v1/events", json=imp, headers=H)
        assert r.status_code == 200 and r.json()["accepted"] == 1
        assert c.get("/v1/users/u1", headers=H).status_code == 200


def test_a_failing_tail_backs_off_and_logs_once(tmp_path, caplog):
    db = tmp_path / "closed.db"
    make_store(db)
    svc = FeedService(Ingestor(open_store(db)), packaged_settings().replace(serving={"tail_interval_ms": 10}))
    svc.store.close()  # closed under a service nobody closed (as a simulator that is done may leave it)
    time.sleep(0.5)  # at a fixed 10 ms that would be about 50 attempts
    failures = [r for r in caplog.records if r.getMessage().startswith("tailing the store failed")]
    assert len(failures) == 1
    svc._stop_tail.set()
    svc._tailer.join(5)
    assert not svc._tailer.is_alive()
