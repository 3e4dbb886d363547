"""Issue 17, the HTTP layer: the request-body limit (413 before reading, JSON parsed off the event loop), a 500
that keeps the keep-alive connection, security headers and the session cookie, demo sign-in only for loopback
clients, and the anonymous feed rate limit."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from glassfeed import cli as cli_module
from glassfeed.api.app import create_app
from glassfeed.api.middleware import TokenBuckets
from glassfeed.bluesky.xrpc import GET_SKELETON
from glassfeed.importers.synthetic import write_network
from glassfeed.ingest import Ingestor
from glassfeed.settings import Settings, load_settings, packaged_settings
from glassfeed.sim.generate import generate_network
from glassfeed.store import open_store
from glassfeed.web.routes import COOKIE, WEB_DIR

KEY = "hardening-http-test-key"
WEB = {"X-Glassfeed-Web": "1"}
LOCAL = "http://localhost:8000"
LIMIT = 64 * 1024  # a small body limit for these tests


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A small generated network on a store (untrained: feeds fall back to recency)."""
    folder = tmp_path_factory.mktemp("hardening_http")
    net = generate_network(80, 2, 5)
    end = max(float(net.events.ts.max()), float(net.post_created.max())) + 60.0
    store = open_store(folder / "h.db", "NORMAL")
    write_network(net, Ingestor(store, clock=lambda: end))
    store.close()
    (folder / "gf.toml").write_text('[serving]\nclock = "data"\n')
    return folder


def settings_for(folder: Path, **api: object) -> Settings:
    return load_settings(
        folder / "gf.toml",
        environ={},
        store={"path": folder / "h.db"},
        api={"key": KEY, "max_body_bytes": LIMIT, **api},
    )


def build_app(folder: Path, *, demo: bool = False, **api: object) -> tuple[FastAPI, list[str]]:
    """The app with a spy route that reads its body (``ran`` records each time its code after the read runs)
    and a route that raises."""
    app = create_app(settings_for(folder, **api).replace(web={"demo": demo}))
    ran: list[str] = []

    @app.post("/test/spy")
    async def spy(request: Request) -> dict[str, int]:
        body = await request.body()
        ran.append("spy")
        return {"n": len(body)}

    @app.get("/test/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    return app, ran


@pytest.fixture(scope="module")
def served(folder) -> Iterator[tuple[str, FastAPI, list[str]]]:
    """(base_url, app, ran): a real uvicorn on a free loopback port, in a thread."""
    app, ran = build_app(folder)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    t0 = time.time()
    while not srv.started:
        assert th.is_alive() and time.time() - t0 < 30, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app, ran
    srv.should_exit = True
    th.join(10)


# ------------------------------------------------------------------------------------------ body size limit
def test_default_limit_fits_a_batch_of_10000_events_of_the_largest_size():
    s = packaged_settings()
    lim = s.ingest
    ev = {
        "id": "i" * lim.max_id_chars,
        "kind": "not_interested",
        "user": "u" * lim.max_id_chars,
        "post": "p" * lim.max_id_chars,
        "target_user": "t" * lim.max_id_chars,
        "ts": "2026-11-30T10:00:00.000000+00:00",
        "value": float(lim.max_dwell_ms),
        "surface": "s" * lim.max_surface_chars,
        "position": lim.max_position - 1,
        "request_id": "r" * lim.max_request_id_chars,
    }
    assert len(orjson.dumps({"events": [ev] * lim.max_batch})) < s.api.max_body_bytes


def _body_error(r: httpx.Response) -> None:
    assert r.status_code == 413, r.text
    body = r.json()
    assert body["error"] == "request body too large"
    assert body["detail"] == [{"index": -1, "field": "body", "reason": body["detail"][0]["reason"]}]
    assert f"{LIMIT:,} bytes" in body["detail"][0]["reason"]


def test_declared_length_over_the_limit_is_refused_before_the_route_runs(folder):
    app, ran = build_app(folder)
    with TestClient(app) as c:
        _body_error(c.post("/test/spy", content=b"x" * (LIMIT + 1)))
        assert ran == []
        before = app.state.store.count("events")
        big = orjson.dumps({"events": [{"kind": "like", "user": "u1", "post": "p1"}] * 2000})
        assert len(big) > LIMIT
        _body_error(c.post("/v1/events", content=big, headers={"Authorization": f"Bearer {KEY}"}))
        assert app.state.store.count("events") == before
        _body_error(c.post("/web/session", content=b" " * (LIMIT + 1), headers=WEB))  # no login needed there
        assert c.post("/test/spy", content=b"x" * LIMIT).json() == {"n": LIMIT}  # the limit itself is fine
        assert ran == ["spy"]


def test_streamed_body_over_the_limit_is_refused_without_reading_it_all(served):
    url, _, ran = served
    pulled = []
    chunk = b"x" * 16384

    def gen() -> Iterator[bytes]:  # chunked: no Content-Length to refuse it by
        for _ in range(8000):  # 128 MB, if it were all sent
            pulled.append(1)
            yield chunk

    ran.clear()
    with httpx.Client(base_url=url, timeout=10) as c:
        for path, headers in (
            ("/test/spy", {}),
            ("/v1/events", {"Authorization": f"Bearer {KEY}"}),
            ("/v1/users/u1/prefs", {"Authorization": f"Bearer {KEY}", "content-type": "application/json"}),
        ):
            pulled.clear()
            r = c.request("PUT" if path.endswith("prefs") else "POST", path, content=gen(), headers=headers)
            _body_error(r)
            assert len(pulled) < 1000, path  # the server stopped reading at 64 KiB (the rest: socket buffers)
        assert ran == []  # the spy's code after reading the body never ran
        assert c.get("/healthz").json()["ok"] is True


def test_json_of_ingest_routes_is_parsed_off_the_event_loop(folder, monkeypatch):
    app, _ = build_app(folder)
    loop_threads: set[int] = set()
    parse_threads: set[int] = set()
    real = orjson.loads

    def spy_loads(b):
        parse_threads.add(threading.get_ident())
        return real(b)

    @app.get("/test/loop-thread")
    async def loop_thread() -> dict[str, bool]:
        loop_threads.add(threading.get_ident())
        return {"ok": True}

    monkeypatch.setattr("glassfeed.api.routes_ingest.orjson.loads", spy_loads)
    with TestClient(app) as c:
        c.get("/test/loop-thread")
        r = c.post("/v1/events", json=[{"kind": "like", "user": "u1"}], headers={"authorization": f"Bearer {KEY}"})
        assert r.status_code == 422  # parsed (in a worker thread), then refused: a like needs a post
    assert parse_threads and loop_threads and not parse_threads & loop_threads


# ------------------------------------------------------------------------------- a 500 keeps the connection
def _http(sock: socket.socket, path: str) -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536) or b"<closed>"
        if data.endswith(b"<closed>"):
            return data
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += sock.recv(65536)
    return head + b"\r\n\r\n" + rest


def test_after_a_500_the_same_keep_alive_connection_serves_the_next_request(served):
    url, _, _ = served
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        first = _http(sock, "/test/boom")
        assert first.startswith(b"HTTP/1.1 500")
        assert b'"internal error: RuntimeError"' in first and b"nosniff" in first
        second = _http(sock, "/healthz")  # was: connection reset
        assert second.startswith(b"HTTP/1.1 200") and b'"ok":true' in second


# ---------------------------------------------------------------------------------------- security headers
def test_security_headers_on_every_response(folder):
    app, _ = build_app(folder)
    with TestClient(app) as c:
        for path in ("/", "/healthz", "/v1/feed?limit=1", "/no/such/page", "/static/app.js", "/test/boom"):
            h = c.get(path).headers if path != "/test/boom" else TestClient(app).get(path).headers
            csp = h["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "script-src 'self';" in csp, path
            assert h["x-content-type-options"] == "nosniff" and h["referrer-policy"] == "no-referrer", path
        assert "cdn.jsdelivr.net" in c.get("/docs").headers["content-security-policy"]


def test_no_inline_script_or_event_handler_in_the_page():
    for f in [*(WEB_DIR / "templates").glob("*.html"), *(WEB_DIR / "static").glob("*")]:
        text = f.read_text()
        assert "<script>" not in text and "<script >" not in text, f.name
        for attr in ("onclick=", "onload=", "onerror=", "onsubmit=", "onchange=", "oninput=", "javascript:"):
            assert attr not in text.lower(), (f.name, attr)


def test_session_cookie_is_secure_over_https_and_origin_null_is_refused(folder):
    app, _ = build_app(folder, demo=True)
    with TestClient(app, base_url="https://localhost", client=("127.0.0.1", 1)) as c:
        r = c.post("/web/session", json={"user": "u1"}, headers={**WEB, "Origin": "https://localhost"})
        assert r.status_code == 200
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(COOKIE) and "secure" in cookie.lower() and "httponly" in cookie.lower()
        refused = c.post("/web/session", json={"user": "u1"}, headers={**WEB, "Origin": "null"})
        assert refused.status_code == 403 and refused.json()["detail"][0]["field"] == "origin"
    with TestClient(app, base_url=LOCAL, client=("127.0.0.1", 1)) as c:
        r = c.post("/web/session", json={"user": "u1"}, headers=WEB)
        assert r.status_code == 200 and "secure" not in r.headers["set-cookie"].lower()  # plain http: no Secure


# ---------------------------------------------------------------------------------- demo: loopback clients only
def test_demo_sign_in_refuses_non_loopback_clients_and_foreign_host_names(folder):
    app, _ = build_app(folder, demo=True)
    cases = [
        (("203.0.113.7", 1), LOCAL, 403),  # a remote client
        (("127.0.0.1", 1), "http://evil.example:8000", 403),  # a DNS-rebound name from a local browser
        (("::1", 1), "http://[::1]:8000", 200),
        (("127.0.0.1", 1), "http://127.0.0.1:8000", 200),
    ]
    for client, base, want in cases:
        with TestClient(app, base_url=base, client=client) as c:
            assert c.post("/web/session", json={"user": "u1"}, headers=WEB).status_code == want, (client, base)
            page = c.get("/?user=u2")
            assert (COOKIE in page.headers.get("set-cookie", "")) == (want == 200), (client, base)
    with TestClient(app, base_url=LOCAL, client=("127.0.0.1", 1)) as local:
        assert local.post("/web/session", json={"user": "u1"}, headers=WEB).status_code == 200
        sid = local.cookies[COOKIE]
    with TestClient(app, base_url=LOCAL, client=("198.51.100.1", 1), cookies={COOKIE: sid}) as remote:
        assert remote.get("/web/api/me/prefs", headers=WEB).status_code == 403  # a demo session stays local


@pytest.mark.parametrize(("host", "demo"), [("0.0.0.0", False), ("192.168.1.5", False), ("127.0.0.1", True)])
def test_demo_command_enables_demo_sign_in_only_on_loopback(monkeypatch, host, demo):
    seen: list[object] = []

    def capture(ctx, db, **sections):
        seen.append(sections["web"]["demo"])
        raise SystemExit(0)

    monkeypatch.setattr(cli_module, "cli_settings", capture)
    CliRunner().invoke(cli_module.app, ["demo", "--host", host, "--no-serve"])
    assert seen == [demo]


# ---------------------------------------------------------------------------------- anonymous feed rate limit
def test_token_buckets_refill_at_the_rate():
    now = [0.0]
    b = TokenBuckets(rate=2.0, burst=3.0, max_keys=2, clock=lambda: now[0])
    assert [b.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take("a") == pytest.approx(0.5)
    now[0] = 0.5
    assert b.take("a") == 0.0 and b.take("b") == 0.0 and b.take("c") == 0.0
    assert len(b._b) == 2  # least recently used "a" dropped


def test_anonymous_feeds_are_rate_limited_per_address(folder):
    app, _ = build_app(folder, anonymous_feed_rate_per_s=0.01, anonymous_feed_burst=2.0)
    with TestClient(app, client=("198.51.100.9", 1)) as c:
        assert [c.get("/v1/feed?limit=1").status_code for _ in range(2)] == [200, 200]
        r = c.get("/v1/feed?limit=1")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["detail"][0]["field"] == "client"
        x = c.get(f"/xrpc/{GET_SKELETON}")
        assert x.status_code == 429 and x.json()["error"] == "RateLimitExceeded"
        bogus = c.get("/v1/feed?limit=1", headers={"Authorization": "Bearer anything"})
        assert bogus.status_code == 429  # /v1/feed takes no credential: a header does not exempt it
        jwt = c.get(f"/xrpc/{GET_SKELETON}", headers={"Authorization": "Bearer not-a-jwt"})
        assert jwt.status_code in (400, 401)  # with a credential the route answers (and verifies it): no 429
        assert c.get("/healthz").status_code == 200  # only the anonymous feeds are limited
        assert c.get("/v1/users/u1/feed?limit=1", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    with TestClient(app, client=("198.51.100.10", 1)) as other:
        assert other.get("/v1/feed?limit=1").status_code == 200  # another address has its own bucket
