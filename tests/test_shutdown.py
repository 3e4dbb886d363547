"""Graceful shutdown of ``glassfeed serve`` (issue 12, item 4), with real processes.

SIGTERM to ``glassfeed serve --workers 2`` while clients keep writing events (with client ids) and reading feeds:
a request the server was handling completes, none gets a 5xx, the rest are answered or refused cleanly
(connection refused, or a kept-alive connection closed before the request was read: counted), every acknowledged
event is in the store, every served page's impressions were written (the apps' shutdown flushed their queues),
the supervisor exits 0 with its workers gone, and the private settings file is removed. One worker: SIGTERM and
SIGINT both exit 0 after the same shutdown. In process: the app's shutdown stops the tail thread and closes every
Redis client and the store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from glassfeed.api.app import create_app
from glassfeed.domain import EventKind
from glassfeed.settings import load_settings
from glassfeed.store import open_store
from live_server import ServeWorkers, free_port
from pg_support import require_service, store_location
from test_workers import _redis_unreachable, make_store, redis_base

KEY = "shutdown-key"
H = {"Authorization": f"Bearer {KEY}"}


@dataclass
class Traffic:
    """What the client threads saw: acknowledged event ids, items served, and each request's outcome."""

    acked: list[str] = field(default_factory=list)
    items_served: int = 0
    outcomes: list[tuple[str, str]] = field(default_factory=list)  # (read | write, 200 | 5xx | 4xx | refused...)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, what: str, outcome: str) -> None:
        with self.lock:
            self.outcomes.append((what, outcome))

    def count(self, outcome: str) -> int:
        return sum(1 for _, o in self.outcomes if o == outcome)


def _outcome(status: int) -> str:
    return "200" if status == 200 else "5xx" if status >= 500 else str(status)


def _writer(url: str, tag: str, traffic: Traffic, stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        ids = [f"{tag}-{n}-{j}" for j in range(20)]
        n += 1
        body = [{"id": i, "kind": "like", "user": f"u{1 + j % 9}", "post": f"p{j}"} for j, i in enumerate(ids)]
        try:
            with httpx.Client(base_url=url, headers=H, timeout=20) as c:  # a new connection now and then
                for _ in range(5):
                    r = c.post("/v1/events", json=body)
                    traffic.record("write", _outcome(r.status_code))
                    if r.status_code == 200:
                        with traffic.lock:
                            traffic.acked.extend(ids)
                    if stop.is_set():
                        return
                    ids = [f"{tag}-{n}-{j}" for j in range(20)]
                    n += 1
                    body = [{**ev, "id": i} for ev, i in zip(body, ids, strict=True)]
        except httpx.ConnectError:
            traffic.record("write", "refused")
            time.sleep(0.02)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
            traffic.record("write", "closed")  # a kept-alive connection the server closed before reading this one
        except httpx.TimeoutException:
            traffic.record("write", "timeout")


def _reader(url: str, traffic: Traffic, stop: threading.Event) -> None:
    i = 0
    while not stop.is_set():
        try:
            with httpx.Client(base_url=url, headers=H, timeout=20) as c:
                for _ in range(5):
                    i += 1
                    r = c.get(f"/v1/users/u{1 + i % 9}/feed", params={"limit": 10, "policy": "chronological"})
                    traffic.record("read", _outcome(r.status_code))
                    if r.status_code == 200:
                        with traffic.lock:
                            traffic.items_served += len(r.json()["items"])
                    if stop.is_set():
                        return
        except httpx.ConnectError:
            traffic.record("read", "refused")
            time.sleep(0.02)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
            traffic.record("read", "closed")
        except httpx.TimeoutException:
            traffic.record("read", "timeout")


def _private_config(worker: int) -> Path:
    """``$GLASSFEED_CONFIG`` as a worker of ``serve --workers N`` inherited it: the private settings file."""
    env = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
    value = next(e for e in env if e.startswith(b"GLASSFEED_CONFIG=")).split(b"=", 1)[1]
    return Path(value.decode())


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.mark.slow
def test_sigterm_to_two_workers_under_load_answers_in_flight_requests_and_loses_nothing(tmp_path):
    db = tmp_path / "s.db"
    make_store(db)
    traffic, stop = Traffic(), threading.Event()
    big_ids = [f"big-{j}" for j in range(10_000)]  # one large write, in flight when the signal lands
    big: dict[str, object] = {}

    def big_write(url: str) -> None:
        body = [{"id": i, "kind": "like", "user": f"u{1 + j % 9}", "post": f"p{j % 30}"} for j, i in enumerate(big_ids)]
        try:
            r = httpx.post(f"{url}/v1/events", json=body, headers=H, timeout=30)
            big["status"], big["accepted"] = r.status_code, r.json().get("accepted")
        except httpx.HTTPError as e:
            big["status"] = type(e).__name__
        big["done_at"] = time.monotonic()

    with ServeWorkers(db, KEY, workers=2, env={"TMPDIR": str(tmp_path)}, start_timeout=90) as srv:
        workers = srv.worker_pids()
        config = _private_config(workers[0])
        assert config.is_file() and config.parent.parent == tmp_path
        assert config.stat().st_mode & 0o077 == 0  # it holds the service key
        threads = [threading.Thread(target=_writer, args=(srv.url, f"w{k}", traffic, stop)) for k in range(2)] + [
            threading.Thread(target=_reader, args=(srv.url, traffic, stop)) for _ in range(2)
        ]
        for t in threads:
            t.start()
        try:
            time.sleep(1.5)
            bulk = threading.Thread(target=big_write, args=(srv.url,))
            bulk.start()
            time.sleep(0.03)  # the request has reached a worker, which is ingesting it
            signalled = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            rc = srv.proc.wait(30)
            exited = time.monotonic()
            time.sleep(0.3)  # clients now find nothing listening
        finally:
            stop.set()
            for t in threads:
                t.join(30)
            bulk.join(30)
    print(
        f"exit {rc} {exited - signalled:.1f} s after SIGTERM; big write {big.get('status')} "
        f"{big.get('done_at', 0) - signalled:+.2f} s after it; outcomes: "
        + ", ".join(f"{o} {traffic.count(o)}" for o in sorted({o for _, o in traffic.outcomes}))
    )
    assert rc == 0
    assert not any(_alive(w) for w in workers), "a worker outlived the supervisor"
    assert not config.exists() and not config.parent.exists(), "the private settings file was left behind"
    # the large write was being handled when the signal came: it completed
    assert big["status"] == 200 and big["accepted"] == len(big_ids)
    assert big["done_at"] > signalled
    assert traffic.count("5xx") == 0 and traffic.count("timeout") == 0
    assert set(traffic.outcomes) <= {(w, o) for w in ("read", "write") for o in ("200", "refused", "closed")}
    assert traffic.count("refused") > 0  # the clients went on until nothing listened
    assert traffic.count("200") > 20 and len(traffic.acked) > 0
    store = open_store(db)
    try:
        acked = [*traffic.acked, *big_ids]
        assert store.event_ids_exist(acked) == set(acked), "an acknowledged event was lost"
        # each page's impressions were queued in its worker and written by the time it stopped
        assert store.count_events(EventKind.IMPRESSION) >= traffic.items_served > 0
    finally:
        store.close()


def _serve_one(db: Path, tmp_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = tmp_path / "one.toml"
    config.write_text(f'[api]\nkey = "{KEY}"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("GLASSFEED_DB", "GLASSFEED_API_KEY", "GLASSFEED_CONFIG")}
    cmd = [sys.executable, "-c", "from glassfeed.cli import app; app()", "--config", str(config), "serve",
           "--db", store_location(db), "--port", str(port)]  # fmt: skip
    log = (tmp_path / f"one-{port}.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp_path / f"one-{port}.log").read_text()
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("serve did not answer /healthz within 60 s")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_one_worker_stops_with_exit_0_and_writes_its_queued_impressions(tmp_path, sig):
    db = tmp_path / "one.db"
    make_store(db)
    proc, url = _serve_one(db, tmp_path)
    try:
        served = 0
        with httpx.Client(base_url=url, headers=H, timeout=10) as c:
            for i in range(20):
                r = c.get(f"/v1/users/u{1 + i % 9}/feed", params={"limit": 10, "policy": "chronological"})
                assert r.status_code == 200
                served += len(r.json()["items"])
        proc.send_signal(sig)  # at once: the last pages' impressions are still queued (group commit)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    store = open_store(db)
    try:
        assert store.count_events(EventKind.IMPRESSION) == served
    finally:
        store.close()


def test_the_apps_shutdown_stops_the_tail_and_closes_redis_clients_and_the_store(tmp_path):
    require_service("Redis", redis_base(), _redis_unreachable())
    db = tmp_path / "life.db"
    make_store(db)
    prefix = f"gft-life-{os.getpid()}:"
    settings = load_settings(
        environ={},
        store={"path": str(db)},
        api={"key": KEY},
        serving={"redis_url": redis_base(), "redis_prefix": prefix, "tail_interval_ms": 20},
    )
    app = create_app(settings)
    try:
        with TestClient(app) as c:
            assert c.get("/v1/feed").status_code == 200  # builds the rate limits (Redis) on the first request
            assert c.get("/v1/users/u1/feed", headers=H).status_code == 200  # a paging session, a page for why
            web = c.post("/web/session", json={"user": "u1", "token": KEY}, headers={"X-Glassfeed-Web": "1"})
            feed, limits = app.state.feed, app.state.rate_limits
            tailer = feed._tailer
            assert tailer is not None and tailer.is_alive()
            assert web.status_code == 200, web.text  # a browser session, kept in Redis
            clients = [
                feed.sessions.client,
                feed.shared_pages.client,
                app.state.web_sessions.client,
                app.state.ads.ledger.client,  # the ad lever's spend counters
            ]
            sync_pools = [client.connection_pool for client in clients]
            # each pool made a connection (one may be in use this instant: the impression writer records sessions)
            assert all(pool._available_connections or pool._in_use_connections for pool in sync_pools[:3])
        assert not tailer.is_alive()
        for pool in sync_pools:  # every connection the pools made is closed
            assert all(conn._sock is None for conn in pool._available_connections) and not pool._in_use_connections
        pool = limits.anonymous.client.connection_pool
        assert all(not conn.is_connected for conn in pool._available_connections) and not pool._in_use_connections
        with pytest.raises(Exception, match="closed"):
            app.state.store.max_seq()
    finally:
        client = redis.Redis.from_url(redis_base())
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)
