"""The Jetstream consumer as a service (issue 12), against a real local websocket server (``jetstream_support``):

- (a) the server drops the connection mid-stream: the consumer reconnects with ``cursor`` = saved cursor minus
  the rewind, and every post is stored exactly once;
- (b) SIGTERM to a ``glassfeed bluesky ingest`` process: it commits the batch it holds, saves the cursor and
  exits 0 (and, with ``[store] retention_days`` set, it pruned the old post it found at start);
- (c) a post the consumer process writes shows in a running ``glassfeed serve`` process's feed within seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

import jetstream_support as jss
from glassfeed.bluesky.jetstream import CURSOR_KEY, JetstreamFollower, JetstreamIngester
from glassfeed.bluesky.settings import load_bluesky_settings
from glassfeed.ingest import Ingestor
from glassfeed.store import ERASED_LABEL, open_store
from glassfeed.store.retention import pruned_totals
from live_server import free_port
from pg_support import store_location

ALICE, BOB = "did:plc:alice7xq2kzv4mf3hj5c", "did:plc:bobz3kd8rw2x6ty9qa1u"
KEY = "consumer-key"
CLI = [sys.executable, "-c", "from glassfeed.cli import app; app()"]


def now_us() -> int:
    return int(time.time() * 1e6)


def consumer(db: Path, url: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """``glassfeed bluesky ingest --db DB --url URL`` (following the stream), stdout piped, stderr to ``log``."""
    environ = {**os.environ, **env}
    with log.open("wb") as err:
        return subprocess.Popen(
            [*CLI, "bluesky", "ingest", "--db", store_location(db), "--url", url],
            env=environ,
            stdout=subprocess.PIPE,
            stderr=err,
        )


def wait_for(cond, timeout: float, what: str, log: Path | None = None) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():
            return time.monotonic() - start
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
    raise AssertionError(f"{what} within {timeout} s; log: {tail}")


# ---------------------------------------------------------------------- (a) a dropped connection loses nothing
def test_a_dropped_connection_resumes_from_the_saved_cursor_minus_the_rewind(tmp_path):
    t0 = now_us() - 60_000_000
    messages = [jss.post(ALICE, f"3lz{i:010d}", t0 + i * 1_000_000, f"post {i}") for i in range(10)]

    def first(ws, _n, cursor):  # six messages, then the network drops (no close frame)
        jss.send_from(messages[:6], ws, cursor)
        time.sleep(0.2)
        ws.socket.shutdown(2)

    def later(ws, _n, cursor):
        jss.send_from(messages, ws, cursor)
        jss.hold_open(ws)

    store = open_store(tmp_path / "a.db", "OFF")
    with jss.JetstreamServer([first, later]) as server:
        cfg = replace(load_bluesky_settings(), reconnect_min_s=0.05, flush_interval_s=0.1)
        js = JetstreamIngester(Ingestor(store), rewind_s=2.0)
        stats = JetstreamFollower(js, server.url, cfg, max_messages=6 + 7).run()
        paths = list(server.paths)
    assert len(paths) == 2 and jss.cursor_of(paths[0]) is None
    assert jss.cursor_of(paths[1]) == messages[5]["time_us"] - 2_000_000  # saved cursor minus the rewind
    assert stats.messages == 13 and stats.duplicates == 3  # messages 3, 4, 5 came twice: replays change nothing
    ids = store.load_posts()["id"]
    assert sorted(ids) == sorted(jss.post_uri(ALICE, f"3lz{i:010d}") for i in range(10)) and len(set(ids)) == 10
    assert store.get_meta(CURSOR_KEY) == str(messages[-1]["time_us"])
    store.close()


# ---------------------------------------------------------------------- (b) SIGTERM commits and exits 0
@pytest.mark.slow
def test_sigterm_commits_the_batch_it_holds_and_exits_0(tmp_path):
    t0 = now_us() - 30_000_000
    messages = [jss.post(ALICE, f"3ly{i:010d}", t0 + i * 1_000_000) for i in range(5)]
    closed: list[int | None] = []
    done = threading.Event()

    def plan(ws, _n, cursor):
        jss.send_from(messages, ws, cursor)
        jss.hold_open(ws)
        closed.append(ws.close_code)
        done.set()

    db, log = tmp_path / "b.db", tmp_path / "b.log"
    old = jss.post(BOB, "3lw0000000001", now_us() - 10 * 86_400_000_000, "ten days old")
    store = open_store(db)
    JetstreamIngester(Ingestor(store)).handle_batch([old])
    store.close()
    # nothing would commit for a minute (batch 500, flush 60 s): only the shutdown can have written these;
    # with a 5-day retention the consumer prunes the ten-day-old post when it starts
    env = {
        "GLASSFEED_BLUESKY__FLUSH_INTERVAL_S": "60",
        "GLASSFEED_BLUESKY__STATS_INTERVAL_S": "0.1",
        "GLASSFEED_STORE__RETENTION_DAYS": "5",
    }
    with jss.JetstreamServer([plan]) as server:
        proc = consumer(db, server.url, log, **env)
        try:
            wait_for(lambda: "5 waiting" in log.read_text(errors="replace"), 60, "5 messages received", log)
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert done.wait(10) and closed == [1000]  # the consumer closed the websocket normally
    assert proc.returncode == 0, log.read_text()
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["posts"] == 5 and result["cursor"] == messages[-1]["time_us"]
    text = log.read_text()
    assert "connected to Jetstream" in text and "stopped following Jetstream" in text
    assert "pruned posts older than 5 days" in text
    store = open_store(db)
    assert store.count("posts") == 6 and store.get_meta(CURSOR_KEY) == str(messages[-1]["time_us"])
    posts = store.load_posts()
    assert [lb for pid, lb in zip(posts["id"], posts["labels"]) if lb] == [[ERASED_LABEL]]  # the old one only
    assert pruned_totals(store)["posts"] == 1
    store.close()


# ---------------------------------------------------------------------- (c) serving sees what the consumer wrote
@pytest.mark.slow
def test_a_post_the_consumer_writes_shows_in_a_running_serve_process(tmp_path):
    db = tmp_path / "c.db"
    seed_t = now_us() - 120_000_000
    store = open_store(db)
    JetstreamIngester(Ingestor(store)).handle_batch(
        [jss.post(ALICE, "3lx0000000001", seed_t, "an older post"), jss.follow(BOB, ALICE, "3lx0000000002", seed_t)]
    )
    store.close()
    fresh = jss.post_uri(ALICE, "3lx0000000003")
    go, sent_at = threading.Event(), []

    def plan(ws, _n, cursor):
        go.wait(120)  # once the server serves: the post is new to it
        ws.send(json.dumps(jss.post(ALICE, "3lx0000000003", now_us(), "straight off the firehose")))
        sent_at.append(time.monotonic())
        jss.hold_open(ws)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "GLASSFEED_API_KEY": KEY}
    serve_log = tmp_path / "serve.log"
    with jss.JetstreamServer([plan]) as server, serve_log.open("wb") as slog:
        srv = subprocess.Popen(
            [*CLI, "serve", "--db", store_location(db), "--port", str(port)], env=env, stdout=slog, stderr=slog
        )
        ing = consumer(db, server.url, tmp_path / "c.log", GLASSFEED_BLUESKY__FLUSH_INTERVAL_S="0.2")
        try:

            def bobs_feed() -> list[str]:
                r = httpx.get(
                    f"{url}/v1/users/{BOB}/feed",
                    params={"policy": "chronological"},
                    headers={"Authorization": f"Bearer {KEY}"},
                    timeout=5,
                )
                assert r.status_code == 200, r.text
                return [it["post"] for it in r.json()["items"]]

            def up() -> bool:
                try:
                    return httpx.get(url + "/healthz", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(up, 90, "glassfeed serve answering", serve_log)
            assert fresh not in bobs_feed()
            wait_for(server.connected.is_set, 60, "the consumer connected", tmp_path / "c.log")
            go.set()
            wait_for(lambda: fresh in bobs_feed(), 5, "the post in Bob's feed", tmp_path / "c.log")
            took = time.monotonic() - sent_at[0]
            print(f"the post was on Bob's page {took:.2f} s after the websocket server sent it")
            assert took < 5
            assert jss.post_uri(ALICE, "3lx0000000001") in bobs_feed()
        finally:
            for p in (ing, srv):
                if p.poll() is None:
                    p.terminate()
            for p in (ing, srv):
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
    assert ing.returncode == 0
