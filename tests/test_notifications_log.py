"""``[notifications] candidates_from = "log"``: the API processes make no notifications on ingest; the delivery
worker tails the store's event log from a cursor in the store and makes them from every writer's events (the API,
a bulk import, a second store handle), exactly once: a replay from an old cursor adds nothing, a failed transaction
moves neither the inbox nor the cursor, and a worker killed with SIGKILL mid-tail resumes without a duplicate
notification or push. ``"ingest"`` (the default) is unchanged: the API's own commits, nobody else's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from glassfeed.api.app import create_app
from glassfeed.bulk import import_records
from glassfeed.cli import app as cli_app
from glassfeed.feed.service import FeedService
from glassfeed.ingest import Ingestor
from glassfeed.notifications.service import LOG_CURSOR_KEY, LogCursor, NotificationService
from glassfeed.notifications.worker import DeliveryWorker
from glassfeed.settings import load_settings
from glassfeed.store import open_store
from pg_support import store_location

KEY = "test-service-key"
H = {"Authorization": f"Bearer {KEY}"}
SECRET = "whsec-test"
PEOPLE = ("alice", "bob", "carol", "dan")


def _settings(db: Path, mode: str, **notifications):
    return load_settings(
        store={"path": db},
        api={"key": KEY},
        notifications={"default_policy": "engagement_push", "candidates_from": mode, **notifications},
    )


def _seed(db: Path) -> None:
    ing = Ingestor(open_store(db))
    try:
        ing.create_users([{"id": u, "handle": u} for u in PEOPLE], with_tokens=False)
        ing.create_posts([{"id": "p1", "author": "alice", "text": "hello"}])
    finally:
        ing.store.close()


class Worker:
    """The delivery worker's side in-process, as ``glassfeed notifications worker`` builds it in "log" mode: its own
    store handle and Ingestor, a FeedService without a tail thread, the NotificationService's ``tail_log``."""

    def __init__(self, db: Path, **notifications) -> None:
        settings = _settings(db, "log", **notifications)
        self.ing = Ingestor(open_store(db), settings.ingest)
        self.feed = FeedService(self.ing, settings.replace(serving={"tail_interval_ms": 0}))
        self.svc = NotificationService(self.feed, settings)
        self.store = self.ing.store

    def close(self) -> None:
        self.feed.close()
        self.store.close()

    def cursor(self) -> LogCursor | None:
        return self.svc.log_cursor()

    def inbox(self, user: str) -> list:
        return self.store.notifications(self.store.user_idx(user), limit=1000)

    def pushes(self) -> list:
        return self.store.due_deliveries(time.time() + 10 * 86400, limit=100_000)


@pytest.fixture()
def db(tmp_path):
    _seed(tmp_path / "log.db")
    return tmp_path / "log.db"


def _post(c: TestClient, path: str, body) -> dict:
    r = c.post(path, json=body, headers=H)
    assert r.status_code in (200, 201), r.text
    return r.json()


def test_log_mode_notifies_every_writers_events_through_the_workers_tail(db):
    w = Worker(db)
    try:
        first = w.svc.tail_log()  # no cursor yet: it starts at the log's head (the seed is not notified)
        assert first.started and first.cursor == LogCursor(w.store.max_seq(), 1)
        now = (time.time() // 3600) * 3600 - 1800  # mid-hour: engagement_push aggregates likes per hour
        with TestClient(create_app(_settings(db, "log"))) as api:
            ing, svc = api.app.state.ingestor, api.app.state.notifications
            assert not [f for f in ing.listeners + ing.entity_listeners if getattr(f, "__self__", None) is svc]
            _post(api, "/v1/events", [{"kind": "reply", "user": "dan", "post": "p1", "ts": now}])
            assert api.get("/v1/users/alice/notifications", headers=H).json()["items"] == []  # not on ingest
            # a second writer: a bulk import through its own store handle and Ingestor (glassfeed import) ...
            other = Ingestor(open_store(db))
            try:
                likes = [
                    {"kind": "like", "user": u, "post": "p1", "ts": now + i} for i, u in enumerate(("bob", "carol"))
                ]
                assert import_records(likes, other).accepted == 2
                other.create_posts([{"id": "p2", "author": "bob", "text": "hi @Carol and @nobody"}])
                other.ingest_events([{"kind": "follow", "user": "carol", "target_user": "alice", "ts": now + 3}])
            finally:
                other.store.close()
            assert api.get("/v1/users/alice/notifications", headers=H).json()["items"] == []
            r = w.svc.tail_log()
            assert (r.events, r.posts, r.written, r.started) == (4, 1, 4, False)
            assert r.cursor == w.cursor() == LogCursor(w.store.max_seq(), 2)
            box = api.get("/v1/users/alice/notifications", headers=H).json()
            texts = sorted(i["text"] for i in box["items"])
            assert texts == ["@bob and @carol liked your post", "@carol followed you", "@dan replied to your post"]
            carol = api.get("/v1/users/carol/notifications", headers=H).json()["items"]
            assert [i["text"] for i in carol] == ["@bob mentioned you"]
            assert all(i["push_at"] is not None for i in box["items"] + carol)  # scheduled under their policy
            assert w.svc.tail_log().written == 0  # nothing new: nothing written
            # an open sent to the API marks the notification read once the tail reads it
            reply = next(i for i in box["items"] if i["kind"] == "reply")
            opened = {"kind": "notification_open", "user": "alice", "request_id": reply["request_id"]}
            _post(api, "/v1/events", [opened])
            assert w.svc.tail_log().events == 1
            box = api.get("/v1/users/alice/notifications", headers=H).json()
            assert [i["read"] for i in box["items"] if i["kind"] == "reply"] == [True] and box["unread"] == 2
    finally:
        w.close()


def test_ingest_mode_is_unchanged_and_other_writers_make_none(db):
    now = time.time() - 60
    settings = load_settings(store={"path": db}, api={"key": KEY}, notifications={"default_policy": "engagement_push"})
    assert settings.notifications.candidates_from == "ingest"  # the default
    with TestClient(create_app(settings)) as api:
        _post(api, "/v1/events", [{"kind": "reply", "user": "dan", "post": "p1", "ts": now}])
        items = api.get("/v1/users/alice/notifications", headers=H).json()["items"]
        assert [i["text"] for i in items] == ["@dan replied to your post"]  # at once, by the API that ingested it
        other = Ingestor(open_store(db))
        try:
            other.ingest_events([{"kind": "reply", "user": "bob", "post": "p1", "ts": now + 1}])
        finally:
            other.store.close()
        time.sleep(0.5)  # past the API's tail of the store: its state has the event, its notifications do not
        assert len(api.get("/v1/users/alice/notifications", headers=H).json()["items"]) == 1
        assert api.app.state.store.get_meta(LOG_CURSOR_KEY) is None


HOOK = {"webhook_url": "https://hooks.example/glassfeed", "webhook_secret": SECRET}  # a channel: pushes are queued


def test_replay_from_an_old_cursor_adds_no_notification_and_no_push(db):
    w = Worker(db, **HOOK)
    try:
        w.svc.tail_log()
        start = w.cursor()
        now = (time.time() // 3600) * 3600 - 1800
        other = Ingestor(open_store(db))
        try:
            rows = [{"kind": "like", "user": u, "post": "p1", "ts": now + i} for i, u in enumerate(("bob", "carol"))]
            rows += [{"kind": "reply", "user": "dan", "post": "p1", "ts": now + 2}]
            rows += [{"kind": "follow", "user": "bob", "target_user": "alice", "ts": now + 3}]
            other.ingest_events(rows)
            other.create_posts([{"id": "p2", "author": "dan", "text": "@alice look"}])
            r = w.svc.tail_log()
            assert r.written == 4
            before = (w.inbox("alice"), w.pushes(), w.cursor())
            assert len(before[0]) == 4 and len(before[1]) == 4
            other.ingest_events([{"kind": "like", "user": "dan", "post": "p1", "ts": now + 4}])  # one more like
            w.ing.set_meta(LOG_CURSOR_KEY, start.text())  # rewound: the same events again, and the new like
            again = w.svc.tail_log()
            assert (again.events, again.posts, again.written) == (5, 1, 1)  # only the aggregate changed
            box = {r.key: r for r in w.inbox("alice")}
            assert {k: r.id for k, r in box.items()} == {r.key: r.id for r in before[0]}
            like = next(r for r in box.values() if r.kind == "like")
            assert len(like.sources) == 3 and len(like.actors) == 3  # each source once
            assert w.pushes() == before[1]  # no push enqueued again (an aggregate is pushed when it first appears)
            w.ing.set_meta(LOG_CURSOR_KEY, LogCursor(0, 0).text())  # from the very start
            assert w.svc.tail_log().written == 0 and w.pushes() == before[1] and len(w.inbox("alice")) == 4
        finally:
            other.store.close()
    finally:
        w.close()


def test_a_failed_transaction_moves_neither_the_inbox_nor_the_cursor(db, monkeypatch, caplog):
    w = Worker(db, **HOOK)
    try:
        w.svc.tail_log()
        start = w.cursor()
        other = Ingestor(open_store(db))
        try:
            other.ingest_events([{"kind": "reply", "user": "bob", "post": "p1", "ts": time.time() - 5}])
        finally:
            other.store.close()
        real = w.ing.set_meta

        def crash(key, value, tx=None):
            real(key, value, tx)
            raise RuntimeError("killed between the notifications and the commit")

        monkeypatch.setattr(w.ing, "set_meta", crash)
        with pytest.raises(RuntimeError):
            w.svc.tail_log()
        assert w.cursor() == start and w.inbox("alice") == [] and w.pushes() == []  # rolled back together
        worker = DeliveryWorker(w.store, w.svc.settings, tail=w.svc.tail_log)
        tailed, sent = worker.round()  # in the worker: logged, and the round's delivery goes on
        assert tailed is None and sent.messages == 0 and "log tail failed" in caplog.text
        assert w.cursor() == start and w.inbox("alice") == []
        monkeypatch.setattr(w.ing, "set_meta", real)
        assert w.svc.tail_log().written == 1
        assert len(w.inbox("alice")) == 1 and len(w.pushes()) == 1 and w.cursor().seq > start.seq
    finally:
        w.close()


def test_the_worker_round_tails_then_delivers_and_the_cli_shows_and_moves_the_cursor(db, monkeypatch):
    runner = CliRunner()
    where = store_location(db)  # the file, or with GLASSFEED_TEST_STORE=postgresql the schema standing for it
    monkeypatch.setenv("GLASSFEED_NOTIFICATIONS__CANDIDATES_FROM", "log")
    monkeypatch.setenv("GLASSFEED_NOTIFICATIONS__DEFAULT_POLICY", "engagement_push")
    r = runner.invoke(cli_app, ["notifications", "cursor", "--db", where])
    assert r.exit_code == 0 and "no cursor yet" in r.output and "candidates_from = 'log'" in r.output, r.output
    r = runner.invoke(cli_app, ["notifications", "worker", "--once", "--db", where])
    assert r.exit_code == 0 and "the cursor starts at the log's head" in r.output, r.output
    other = Ingestor(open_store(db))
    try:
        other.ingest_events([{"kind": "reply", "user": "bob", "post": "p1", "ts": time.time() - 5}])
        head = other.store.max_seq()
    finally:
        other.store.close()
    r = runner.invoke(cli_app, ["notifications", "cursor", "--db", where])
    assert f"cursor: event seq {head - 1}, post 1" in r.output and "1 events behind" in r.output, r.output
    r = runner.invoke(cli_app, ["notifications", "worker", "--once", "--db", where])
    assert r.exit_code == 0 and "tailed 1 events and 0 posts: 1 notifications written" in r.output, r.output
    assert "sent 0, retried 0, failed 0, gone 0" in r.output  # alice has no channel: in the inbox, not pushed
    store = open_store(db)
    try:
        assert [n.kind for n in store.notifications(store.user_idx("alice"))] == ["reply"]
    finally:
        store.close()
    r = runner.invoke(cli_app, ["notifications", "cursor", "--db", where, "--seq", "0"])
    assert "cursor: event seq 0, post 1" in r.output, r.output
    r = runner.invoke(cli_app, ["notifications", "cursor", "--db", where, "--head"])
    assert f"cursor: event seq {head}, post 1" in r.output and "0 events behind" in r.output, r.output


# ---------------------------------------------------------------------------------------------- SIGKILL mid-tail
class Hook:
    """A webhook receiver: which notifications each delivery id carried."""

    def __init__(self) -> None:
        self.got: list[tuple[str, list[int]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.got.append((self.headers["X-Glassfeed-Delivery"], json.loads(body)["notifications"]))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()


def _worker_process(db: Path, url: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "GLASSFEED_NOTIFICATIONS__CANDIDATES_FROM": "log",
        "GLASSFEED_NOTIFICATIONS__TAIL_BATCH": "5",
        "GLASSFEED_NOTIFICATIONS__DEFAULT_POLICY": "engagement_push",
        "GLASSFEED_NOTIFICATIONS__WEBHOOK_URL": url,
        "GLASSFEED_NOTIFICATIONS__WEBHOOK_SECRET": SECRET,
        "GLASSFEED_NOTIFICATIONS__WORKER_INTERVAL_S": "0.05",
    }
    where = store_location(db)  # the file, or with GLASSFEED_TEST_STORE=postgresql the schema standing for it
    cmd = [sys.executable, "-m", "glassfeed.cli", "notifications", "worker", "--db", where, "--insecure-localhost"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_sigkill_mid_tail_resumes_without_a_duplicate_notification_or_push(tmp_path):
    n = 400
    db = tmp_path / "kill.db"
    ing = Ingestor(open_store(db))
    store = ing.store
    try:
        ing.create_users([{"id": "alice"}] + [{"id": f"r{i}"} for i in range(n)], with_tokens=False)
        ing.create_posts([{"id": "p1", "author": "alice", "text": "hi"}])
        ing.set_meta(LOG_CURSOR_KEY, LogCursor(store.max_seq(), 1).text())  # the tail starts here
        t0 = time.time() - 600
        replies = [{"kind": "reply", "user": f"r{i}", "post": "p1", "ts": t0 + i} for i in range(n)]
        assert import_records(replies, ing).accepted == n  # a bulk import by another process: a backlog
        head = store.max_seq()
        hook = Hook()

        def cursor() -> LogCursor:
            return LogCursor.parse(store.get_meta(LOG_CURSOR_KEY))

        proc = _worker_process(db, hook.url)
        deadline = time.time() + 120
        while cursor().seq < 10 and time.time() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # mid-tail: some batches folded and their cursor committed, not all
        proc.wait()
        killed_at = cursor().seq
        assert 10 <= killed_at < head, (killed_at, head)
        assert len(store.notifications(store.user_idx("alice"), limit=10 * n)) == killed_at  # as far as the cursor
        proc = _worker_process(db, hook.url)
        try:
            deadline = time.time() + 120
            while (cursor().seq < head or store.due_deliveries(time.time() + 1)) and time.time() < deadline:
                time.sleep(0.1)
            assert cursor().seq == head and store.due_deliveries(time.time() + 1) == []
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        rows = store.notifications(store.user_idx("alice"), limit=10 * n)
        assert len(rows) == n and len({r.key for r in rows}) == n  # one per reply: none lost, none twice
        assert sorted(s for r in rows for s in r.sources) == list(range(head - n + 1, head + 1))
        assert all(r.pushed_at is not None for r in rows)
        carried: dict[int, set[str]] = defaultdict(set)
        for delivery, ids in hook.got:
            for i in ids:
                carried[i].add(delivery)
        assert set(carried) == {r.id for r in rows}  # every notification pushed ...
        assert all(len(d) == 1 for d in carried.values())  # ... by one outbox row (a resend keeps its delivery id)
    finally:
        store.close()
