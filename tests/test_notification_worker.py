"""The delivery worker: a Web Push decrypted by a receiver holding the subscription's private key, a signed webhook
retried after a 500, a digest sent as one message, and SIGKILL mid-run losing nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from glassfeed.api.app import create_app
from glassfeed.notifications.delivery import webhook
from glassfeed.notifications.worker import DeliveryWorker
from glassfeed.settings import load_settings
from glassfeed.store import open_store
from test_delivery import Browser, Receiver, browser_decrypt

KEY = "test-service-key"
H = {"Authorization": f"Bearer {KEY}"}
SECRET = "whsec-test"


def _app(db: Path, **notifications):
    settings = load_settings(
        store={"path": db}, api={"key": KEY}, notifications={"default_policy": "engagement_push", **notifications}
    )
    return settings, TestClient(create_app(settings))


def _seed(c: TestClient, n_repliers: int) -> None:
    users = [{"id": "alice"}] + [{"id": f"r{i}"} for i in range(n_repliers)]
    assert c.post("/v1/users", json={"users": users}, headers=H).status_code == 201
    assert c.post("/v1/posts", json=[{"id": "p1", "author": "alice", "text": "hi"}], headers=H).status_code == 201


def _replies(c: TestClient, n: int, t0: float) -> None:
    rows = [{"kind": "reply", "user": f"r{i}", "post": "p1", "ts": t0 + i} for i in range(n)]
    assert c.post("/v1/events", json=rows, headers=H).status_code == 200


def test_webpush_is_encrypted_for_the_subscription_and_decrypted_by_its_browser(tmp_path):
    browser = Browser()
    got: list[dict] = []

    def check(seen):
        assert seen.headers["content-encoding"] == "aes128gcm" and seen.headers["authorization"].startswith("vapid ")
        got.append(json.loads(browser_decrypt(seen.body, browser.private, browser.auth)))

    rec = Receiver([201], check)
    try:
        settings, c = _app(tmp_path / "w.db")
        with c:
            _seed(c, 1)
            alice = c.app.state.store.user_idx("alice")
            sub = browser.subscription(rec.url + "/push/alice")
            store = c.app.state.store
            with store.transaction() as tx:  # the API takes https only; this receiver is plain http on loopback
                store.set_push_subscription(tx, alice, sub.endpoint, sub.p256dh, sub.auth)
            _replies(c, 1, time.time() - 5)
            (item,) = c.get("/v1/users/alice/notifications", headers=H).json()["items"]
            w = DeliveryWorker(store, settings.notifications, allow_insecure_localhost=True)
            report = w.run_once()
            assert (report.sent, report.messages) == (1, 1), report
            assert got[0]["notifications"] == [item["id"]] and got[0]["body"] == "New: 1 reply"
            assert c.get("/v1/users/alice/notifications", headers=H).json()["items"][0]["pushed_at"] is not None
            assert w.run_once().messages == 0  # sent once
    finally:
        rec.close()


def test_webhook_signed_and_retried_after_a_500(tmp_path):
    bodies: list[tuple[str, bytes]] = []

    def check(seen):
        assert webhook.verify(SECRET, seen.headers["x-glassfeed-signature"], seen.body, time.time(), 300)
        bodies.append((seen.headers["x-glassfeed-delivery"], seen.body))

    rec = Receiver([500, 200], check)
    try:
        settings, c = _app(tmp_path / "h.db", webhook_url=rec.url + "/hook", webhook_secret=SECRET, retry_base_s=0.01)
        with c:
            _seed(c, 1)
            _replies(c, 1, time.time() - 5)
            clock = {"t": time.time()}
            w = DeliveryWorker(
                c.app.state.store, settings.notifications, clock=lambda: clock["t"], allow_insecure_localhost=True
            )
            first = w.run_once()
            assert (first.sent, first.retried) == (0, 1)
            clock["t"] += 60  # past the backoff
            second = w.run_once()
            assert second.sent == 1
            assert len(bodies) == 2 and bodies[0][0] == bodies[1][0]  # the same delivery id on the retry
    finally:
        rec.close()


def test_a_digest_is_one_message(tmp_path):
    rec = Receiver([200], None)
    try:
        settings, c = _app(tmp_path / "d.db", webhook_url=rec.url, webhook_secret=SECRET)
        with c:
            _seed(c, 3)
            c.put("/v1/users/alice/notification-settings", json={"policy": "batched"}, headers=H)
            _replies(c, 3, time.time() - 60)
            items = c.get("/v1/users/alice/notifications", headers=H).json()["items"]
            assert len({i["push_at"] for i in items}) == 1  # held for the same digest
            due = items[0]["push_at"]
            w = DeliveryWorker(
                c.app.state.store, settings.notifications, clock=lambda: due + 1, allow_insecure_localhost=True
            )
            assert (w.run_once().messages, len(rec.seen)) == (1, 1)
            assert sorted(json.loads(rec.seen[0].body)["notifications"]) == sorted(i["id"] for i in items)
    finally:
        rec.close()


class SlowReceiver:
    """Counts every delivery id it acknowledges; answers each after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        self.ids: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                time.sleep(delay)
                assert webhook.verify(SECRET, self.headers["X-Glassfeed-Signature"], body, time.time(), 300)
                outer.ids.append(self.headers["X-Glassfeed-Delivery"])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()


def _worker(db: Path, url: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "GLASSFEED_NOTIFICATIONS__WEBHOOK_URL": url,
        "GLASSFEED_NOTIFICATIONS__WEBHOOK_SECRET": SECRET,
        "GLASSFEED_NOTIFICATIONS__WORKER_INTERVAL_S": "0.05",
    }
    cmd = [sys.executable, "-m", "glassfeed.cli", "notifications", "worker", "--db", str(db), "--insecure-localhost"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_sigkill_mid_run_loses_nothing(tmp_path):
    if not str(tmp_path).startswith("/") or os.environ.get("GLASSFEED_TEST_STORE") == "postgresql":
        pytest.skip("the worker subprocess opens the SQLite file")
    n = 12
    rec = SlowReceiver(delay=0.15)
    db = tmp_path / "k.db"
    _, c = _app(db, webhook_url=rec.url, webhook_secret=SECRET)
    with c:
        _seed(c, n)
        _replies(c, n, time.time() - 120)  # twelve notifications, each its own push, all due
    proc = _worker(db, rec.url)
    deadline = time.time() + 30
    while len(rec.ids) < 4 and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # mid-run: one push may be acknowledged by the receiver but not recorded
    proc.wait()
    assert 4 <= len(rec.ids) < n
    proc = _worker(db, rec.url)
    try:
        deadline = time.time() + 60
        store = open_store(db)
        while store.due_deliveries(time.time() + 1) and time.time() < deadline:
            time.sleep(0.1)
        assert store.due_deliveries(time.time() + 1) == []
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    alice = store.user_idx("alice")
    rows = store.notifications(alice, limit=100)
    assert len(rows) == n and all(r.pushed_at is not None for r in rows)  # nothing lost
    assert len(set(rec.ids)) == n  # every push arrived ...
    assert len(rec.ids) - len(set(rec.ids)) <= 1  # ... at most the one in flight twice, with the same id
    store.close()
