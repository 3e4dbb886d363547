"""Web routes: the app page, static files, browser sessions, a same-origin proxy onto ``/v1``, and ``/audit``.

Auth model: the browser never sees the service key. ``POST /web/session`` binds an HttpOnly, SameSite=Strict
cookie to one person (``Secure`` when the request came over HTTPS): with that person's own token (always
allowed), or, in demo mode only, by name (the server then acts for that person with the service key), and only
for a loopback client that names a loopback host (``localhost:8000``: a DNS-rebound foreign name is refused).
``/web/api/me/<rest>`` forwards to the real ``/v1/users/<person>/<rest>`` routes in-process with the session's
credential; it requires the custom header ``X-Glassfeed-Web`` (which a cross-origin page cannot send without a
CORS preflight this server never approves) and refuses an ``Origin`` other than this one (``Origin: null`` too).
"""

from __future__ import annotations

import html
import ipaddress
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import httpx
import numpy as np
import orjson
import redis
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from glassfeed.feed.sessions import redis_client

WEB_DIR = Path(__file__).resolve().parent
TEMPLATES = Jinja2Templates(directory=str(WEB_DIR / "templates"))
COOKIE = "gf_session"
CSRF_HEADER = "x-glassfeed-web"
SESSION_TTL_S = 12 * 3600.0
MAX_SESSIONS = 10_000
PICKER_SIZE = 40
#: The per-person routes the page may reach through the proxy (relative to /v1/users/{id}/).
ME_PATHS = re.compile(
    r"^(feed|feed/[^/]+/why|prefs|muted-words|events|data|notifications(/read|/[0-9]+/why)?|notification-settings"
    r"|push-subscriptions|suggestions)$"
)
#: Where a simulation report may be, besides settings/env (relative to the working directory): first the local
#: runs (``sim-out/<time>/`` is where ``glassfeed simulate`` writes by default), then the shipped example.
REPORT_GLOBS = (
    "sim-out/*/report.html",
    "sim-out/report.html",
    "var/simulation/report.html",
    "var/simulation/*/report.html",
    "var/*/report.html",
)
#: The example report shipped with the repository: served only when there is no local one, and said so.
EXAMPLE_REPORT_GLOBS = ("docs/simulation/report.html", "docs/simulation/*/report.html")
_BODY_TAG = re.compile(rb"<body[^>]*>", re.IGNORECASE)


def _experiments(app: FastAPI, user: str) -> list[dict[str, Any]]:
    """The experiments the signed-in person is in, as ``GET /v1/users/{id}/experiments`` lists them."""
    exps = getattr(app.state, "experiments", None)
    idx = app.state.store.user_idx(user)
    return exps.for_user(idx) if exps is not None and idx is not None else []


@dataclass(slots=True)
class WebSession:
    user: str
    auth: str  # the Authorization header value used for this person's calls (kept server-side)
    mode: str  # "demo" (service key, demo mode only) or "token" (the person's own token)
    created: float


class Sessions:
    """In-memory browser sessions (cookie id -> person), least recently used dropped beyond MAX_SESSIONS."""

    def __init__(self) -> None:
        self._d: OrderedDict[str, WebSession] = OrderedDict()

    def new(self, s: WebSession) -> str:
        sid = secrets.token_urlsafe(24)
        self._d[sid] = s
        while len(self._d) > MAX_SESSIONS:
            self._d.popitem(last=False)
        return sid

    def get(self, sid: str | None) -> WebSession | None:
        s = self._d.get(sid) if sid else None
        if s is None:
            return None
        if time.time() - s.created > SESSION_TTL_S:
            self._d.pop(sid, None)  # type: ignore[arg-type]
            return None
        self._d.move_to_end(sid)  # type: ignore[arg-type]
        return s

    def drop(self, sid: str | None) -> None:
        if sid:
            self._d.pop(sid, None)


class RedisSessions:
    """Browser sessions in Redis (``[serving] redis_url``), so that whichever worker answers knows the cookie:
    ``<prefix>web:<sid>`` holds the session as JSON (its credential included, as the in-memory store holds it),
    expiring ``SESSION_TTL_S`` after sign-in."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client, self.prefix = client, f"{prefix}web:"

    def new(self, s: WebSession) -> str:
        sid = secrets.token_urlsafe(24)
        ttl = max(1, int(SESSION_TTL_S - (time.time() - s.created)))
        self.client.set(self.prefix + sid, orjson.dumps(asdict(s)), ex=ttl)
        return sid

    def get(self, sid: str | None) -> WebSession | None:
        raw = cast(bytes | None, self.client.get(self.prefix + sid)) if sid else None
        if raw is None:
            return None
        s = WebSession(**orjson.loads(raw))
        return s if time.time() - s.created <= SESSION_TTL_S else None

    def drop(self, sid: str | None) -> None:
        if sid:
            self.client.delete(self.prefix + sid)


def make_sessions(app: FastAPI) -> Sessions | RedisSessions:
    """``RedisSessions`` when ``[serving] redis_url`` is set, else in-memory ``Sessions`` (one worker)."""
    serving = app.state.settings.serving
    if serving.redis_url:
        return RedisSessions(redis_client(serving), serving.redis_prefix)
    return Sessions()


def demo_mode(app: FastAPI) -> bool:
    """Demo sign-in by name: settings ``[web] demo`` (``$GLASSFEED_WEB_DEMO``; default off)."""
    return bool(app.state.settings.web.demo)


def _error(status: int, msg: str, field: str = "web") -> JSONResponse:
    return JSONResponse({"error": msg, "detail": [{"index": -1, "field": field, "reason": msg}]}, status_code=status)


async def _call(
    app: FastAPI, method: str, path: str, auth: str | None, body: bytes = b"", content_type: str | None = None
) -> httpx.Response:
    """Call one of the app's own routes in-process (same auth, validation and errors as over the network)."""
    headers = {"authorization": auth} if auth else {}
    if content_type:
        headers["content-type"] = content_type
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://glassfeed.internal") as client:
        return await client.request(method, path, content=body, headers=headers)


def _picker(app: FastAPI, current: str | None) -> list[dict[str, str]]:
    """People offered by the demo picker: the most active ones (plus the current person)."""
    svc = getattr(app.state, "feed", None)
    if svc is None:
        return []
    users = svc.state.users
    n = users.n + 1
    act = svc.state.counters.events(np.arange(n)).astype(np.float64)
    act[0] = -1.0
    order = np.argsort(-act, kind="stable")[:PICKER_SIZE]
    out = [{"id": users.id_of(i), "handle": users.handle_of(i)} for i in order.tolist() if users.id_of(i)]
    if current and all(o["id"] != current for o in out):
        idx = svc.store.user_idx(current)
        out.insert(0, {"id": current, "handle": users.handle_of(idx) if idx is not None and idx < n else current})
    return out


def _topics(app: FastAPI) -> list[str]:
    svc = getattr(app.state, "feed", None)
    return sorted(svc.state.topics.names) if svc is not None else []


def _csrf_ok(request: Request) -> bool:
    """The custom header is present and, when the browser says where the call comes from, it is this origin
    (``Origin: null``, sent by sandboxed frames and ``file:`` pages, is refused)."""
    if request.headers.get(CSRF_HEADER) != "1":
        return False
    origin = request.headers.get("origin")
    if origin is not None:
        host = request.headers.get("host", "")
        return origin != "null" and origin.split("://", 1)[-1] == host
    return True


def loopback_name(name: str) -> bool:
    """``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``, IPv4-mapped ``::ffff:127.x``)."""
    name = name.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def is_loopback(request: Request) -> bool:
    """The client is on this machine and asked for a loopback host name (so not a DNS-rebound foreign name)."""
    client = request.client.host if request.client else ""
    host = request.headers.get("host", "")
    host = host[: host.rindex("]") + 1] if host.startswith("[") and "]" in host else host.rsplit(":", 1)[0]
    return loopback_name(client) and loopback_name(host)


@dataclass(frozen=True, slots=True)
class Report:
    """The simulation report ``/audit/`` serves: where it is, when it was written, and whether it is the example
    shipped in ``docs/simulation`` rather than a local run."""

    path: Path
    mtime: float
    example: bool

    def banner(self) -> bytes:
        """A line for the top of the served page saying which report this is (escaped; inline styles only)."""
        when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(self.mtime))
        what = f"Report <code>{html.escape(str(self.path))}</code>, written {html.escape(when)}."
        if self.example:
            what += (
                " <strong>This is the example shipped with glassfeed, not a run of yours</strong>: run"
                " <code>glassfeed simulate</code> in the server's working directory (it writes"
                " <code>sim-out/&lt;time&gt;/report.html</code>), or set <code>GLASSFEED_AUDIT_REPORT</code>."
            )
        style = "margin:0;padding:.5em 1em;background:#fff8d6;border-bottom:1px solid #d9c96a;font:14px sans-serif"
        return f'<p id="glassfeed-report-source" style="{style}">{what}</p>'.encode()


def choose_report(app: FastAPI, root: Path | None = None) -> Report | None:
    """The newest local simulation report, from settings ``[web] audit_report`` (``$GLASSFEED_AUDIT_REPORT``)
    or the usual places under the working directory (``sim-out/*/report.html`` and friends); the example in
    ``docs/simulation`` only when there is no local one."""
    root = root or Path.cwd()
    local: list[Path] = []
    named = app.state.settings.web.audit_report
    if named:
        p = Path(named)
        local.append(p / "report.html" if p.is_dir() else p)
    for g in REPORT_GLOBS:
        local.extend(root.glob(g))
    examples = [p for g in EXAMPLE_REPORT_GLOBS for p in root.glob(g)]
    shipped = {p.resolve() for p in examples}
    for cands in (local, examples):
        found = [(p.stat().st_mtime, p) for p in cands if p.is_file()]
        if found:
            mtime, path = max(found, key=lambda t: t[0])
            return Report(path, mtime, example=path.resolve() in shipped)
    return None


def find_report(app: FastAPI, root: Path | None = None) -> Path | None:
    """The path of :func:`choose_report`'s report, or ``None``."""
    rep = choose_report(app, root)
    return rep.path if rep else None


def install(app: FastAPI, *, demo: bool | None = None) -> None:
    """Add the web page, static files, sessions, the ``/web/api/me`` proxy and ``/audit`` (idempotent)."""
    if getattr(app.state, "web_installed", False):
        if demo is not None:  # a later explicit choice (tests, embedding apps) wins over the default
            app.state.web_demo = demo
        return
    app.state.web_installed = True
    app.state.web_sessions = make_sessions(app)
    app.state.web_demo = demo
    app.mount("/static", StaticFiles(directory=str(WEB_DIR / "static")), name="static")

    def is_demo(request: Request) -> bool:
        """Demo sign-in is on for this request: demo mode, and a loopback client naming a loopback host."""
        on = demo_mode(app) if app.state.web_demo is None else bool(app.state.web_demo)
        return on and is_loopback(request)

    def new_session(request: Request, response: Response, s: WebSession) -> None:
        sid = app.state.web_sessions.new(s)
        secure = request.url.scheme == "https"  # uvicorn sets it from X-Forwarded-Proto of a trusted proxy
        response.set_cookie(
            COOKIE, sid, httponly=True, samesite="strict", secure=secure, max_age=int(SESSION_TTL_S), path="/"
        )

    def demo_session(request: Request, user: str) -> WebSession | None:
        key = app.state.settings.api_key
        if not (is_demo(request) and key and app.state.store.user_idx(user) is not None):
            return None
        return WebSession(user, f"Bearer {key}", "demo", time.time())

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(request: Request, user: str | None = None) -> Response:
        """The app page. In demo mode ``?user=ID`` (or, with no session yet, the most active person) signs in."""
        sessions: Sessions | RedisSessions = app.state.web_sessions
        sess = sessions.get(request.cookies.get(COOKIE))
        fresh = None
        demo = is_demo(request)
        if demo and (user or sess is None):
            picker = _picker(app, None)
            want = user or (picker[0]["id"] if picker else None)
            if want and (sess is None or sess.user != want):
                fresh = demo_session(request, want)
                sess = fresh or sess
        svc = getattr(app.state, "feed", None)
        ctx = {
            "request": request,
            "user": sess.user if sess else None,
            "mode": sess.mode if sess else None,
            "demo": demo,
            "picker": _picker(app, sess.user if sess else None),
            "topics": _topics(app),
            "policies": [
                {"name": p.name, "title": p.title, "profiling": p.profiling}
                for p in (svc.policies.values() if svc else [])
            ],
            "experiments": _experiments(app, sess.user) if sess else [],
        }
        resp = TEMPLATES.TemplateResponse(request, "index.html", ctx)
        resp.headers["cache-control"] = "no-store"
        if fresh is not None:
            sessions.drop(request.cookies.get(COOKIE))
            new_session(request, resp, fresh)
        return resp

    @app.get("/sw.js", include_in_schema=False)
    def service_worker() -> Response:
        """The page's service worker (Web Push: it shows the pushed notifications), served from the root so that
        its scope is the whole page; the browser checks for a new one on each registration (no-cache)."""
        return FileResponse(
            WEB_DIR / "static" / "sw.js", media_type="text/javascript", headers={"cache-control": "no-cache"}
        )

    @app.post("/web/session", include_in_schema=False)
    async def sign_in(request: Request) -> Response:
        """Start a browser session for ``{"user": id, "token": t}`` (or, in demo mode, ``{"user": id}``)."""
        if not _csrf_ok(request):
            return _error(403, "cross-site request refused", "origin")
        raw = await request.body()  # over [api] max_body_bytes: 413 from the middleware, before reading it all
        try:
            body = await run_in_threadpool(orjson.loads, raw)
            user, token = str(body["user"]), body.get("token")
        except (orjson.JSONDecodeError, TypeError, KeyError):
            return _error(400, 'expected JSON {"user": "...", "token": "..."}', "body")
        if token:
            r = await _call(app, "GET", f"/v1/users/{quote(user, safe='')}/prefs", f"Bearer {token}")
            if r.status_code != 200:
                return _error(401, "that token does not belong to this user", "token")
            s = WebSession(user, f"Bearer {token}", "token", time.time())
        else:
            demo = demo_session(request, user)
            if demo is None:
                why = (
                    "unknown user"
                    if is_demo(request) and app.state.store.user_idx(user) is None
                    else "demo sign-in is off on this server (or this client is not local): sign in with your token"
                )
                return _error(403 if "demo" in why else 404, why, "user")
            s = demo
        resp = JSONResponse({"user": s.user, "mode": s.mode})
        app.state.web_sessions.drop(request.cookies.get(COOKIE))
        new_session(request, resp, s)
        return resp

    @app.delete("/web/session", include_in_schema=False)
    def sign_out(request: Request) -> Response:
        if not _csrf_ok(request):
            return _error(403, "cross-site request refused", "origin")
        app.state.web_sessions.drop(request.cookies.get(COOKIE))
        resp = JSONResponse({"signed_out": True})
        resp.delete_cookie(COOKIE, path="/")
        return resp

    @app.api_route("/web/api/me/{rest:path}", methods=["GET", "PUT", "POST", "DELETE"], include_in_schema=False)
    async def proxy(request: Request, rest: str) -> Response:
        """Forward to ``/v1/users/<session person>/<rest>`` with the session's credential."""
        if not _csrf_ok(request):
            return _error(403, "cross-site request refused (needs X-Glassfeed-Web: 1 from this origin)", "origin")
        sess = app.state.web_sessions.get(request.cookies.get(COOKIE))
        if sess is None:
            return _error(401, "no session: choose a person first", "session")
        if sess.mode == "demo" and not is_demo(request):
            return _error(403, "a demo session works only from this machine, with demo mode on", "session")
        segs = rest.split("/")
        if not ME_PATHS.match(rest) or any(s in (".", "..") for s in segs):
            return _error(404, f"not available to the web page: {rest!r}", "path")
        path = f"/v1/users/{quote(sess.user, safe='')}/" + "/".join(quote(s, safe="") for s in segs)
        if request.url.query:
            path += "?" + request.url.query
        r = await _call(app, request.method, path, sess.auth, await request.body(), request.headers.get("content-type"))
        keep = {k: v for k, v in r.headers.items() if k in ("content-type", "content-disposition")}
        keep["cache-control"] = "no-store"
        return Response(r.content, status_code=r.status_code, headers=keep)

    @app.get("/audit", include_in_schema=False)
    def audit_redirect() -> Response:
        return RedirectResponse("/audit/", status_code=307)

    @app.get("/audit/", response_class=HTMLResponse, include_in_schema=False)
    def audit(request: Request) -> Response:
        """The newest simulation report, or a page saying how to make one."""
        rep = choose_report(app)
        if rep is None:
            return TEMPLATES.TemplateResponse(request, "audit_missing.html", {"request": request}, status_code=404)
        csp = app.state.settings.web.report_content_security_policy  # the report's inline <style>
        headers = {"cache-control": "no-store", "content-security-policy": csp}
        doc = rep.path.read_bytes()
        m = _BODY_TAG.search(doc)
        at = m.end() if m else 0  # a fragment without <body>: the banner goes first
        return Response(doc[:at] + rep.banner() + doc[at:], media_type="text/html", headers=headers)

    @app.get("/audit/{name:path}", include_in_schema=False)
    def audit_file(name: str) -> Response:
        """Files beside the report (plots a report links to), never outside its folder."""
        rep = find_report(app)
        if rep is None:
            return _error(404, "no simulation report yet", "path")
        base = rep.parent.resolve()
        f = (base / name).resolve()
        if not f.is_relative_to(base) or not f.is_file():
            return _error(404, f"no such report file: {name!r}", "path")
        return FileResponse(f)


__all__ = ["install", "Report", "choose_report", "find_report", "demo_mode", "is_loopback", "loopback_name", "ME_PATHS"]
