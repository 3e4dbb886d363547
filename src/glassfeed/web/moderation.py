"""Web pages of the moderation lever: the moderator console (``/moderation``) and a person's statements of reasons
(``/statements``), plus the small JSON they need besides the ``/v1`` moderation API.

- ``/moderation``: the console. A moderator pastes their key; the page keeps it in ``sessionStorage`` only and
  calls ``/v1/moderation/*`` with ``Authorization: Bearer <key>`` (never a URL, never a cookie).
- ``/statements``: the statements of reasons about the signed-in person's posts and account, and their appeals.
  Sign-in is the web page's own (``POST /web/session`` with the person's token: an HttpOnly cookie); the page
  reaches the person's ``/v1/users/<id>/statements`` routes through ``/web/api/statements...``, which forward
  in-process with the session's credential under the same guards as ``/web/api/me/...`` (the custom header,
  this origin only).
- ``GET /v1/moderation/categories``: the policy's categories, actions, surfaces, grounds and appeal window as JSON
  (public, like ``/v1/moderation/policy``), for the console's decision form.

``install(app)`` adds them (idempotent); it installs the web page first (``glassfeed.web.routes``) for its static
files and sessions.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from glassfeed.moderation.policy import ACTION_WORDS
from glassfeed.moderation.service import APPEAL_OUTCOMES, GROUNDS
from glassfeed.state.visibility import ACTIONS, SURFACES
from glassfeed.web import routes as web
from glassfeed.web.routes import COOKIE, TEMPLATES, WebSession

#: Words for the decision grounds, as the console offers them.
GROUND_WORDS: dict[str, str] = {
    "illegal": "Illegal content (name the law)",
    "incompatible": "Incompatible with the terms (name the clause)",
}


def categories(app: FastAPI) -> dict[str, Any]:
    """The moderation policy's vocabulary for the console: categories, actions, surfaces, grounds, outcomes."""
    pol = app.state.moderation.policy
    return {
        "policy": pol.name,
        "categories": [
            {"key": c.key, "label": c.label, "severity": c.severity, "illegal": c.illegal}
            for c in pol.categories.values()
        ],
        "actions": [{"key": a, "words": ACTION_WORDS[a]} for a in ACTIONS],
        "surfaces": list(SURFACES),
        "grounds": [{"key": g, "label": GROUND_WORDS.get(g, g), "code": code} for g, code in GROUNDS.items()],
        "appeal_outcomes": list(APPEAL_OUTCOMES),
        "appeal_window_days": pol.appeal_window_days,
    }


def _page(request: Request, template: str, ctx: dict[str, Any]) -> Response:
    resp = TEMPLATES.TemplateResponse(request, template, {"request": request, **ctx})
    resp.headers["cache-control"] = "no-store"
    resp.headers["referrer-policy"] = "no-referrer"
    return resp


def _demo_on(app: FastAPI, request: Request) -> bool:
    """Demo sign-in is on for this request (as ``glassfeed.web.routes`` decides it)."""
    on = web.demo_mode(app) if app.state.web_demo is None else bool(app.state.web_demo)
    return on and web.is_loopback(request)


def _session(app: FastAPI, request: Request) -> WebSession | None:
    return app.state.web_sessions.get(request.cookies.get(COOKIE))


def install(app: FastAPI) -> None:
    """Add ``/moderation``, ``/statements``, ``/web/api/statements...`` and ``/v1/moderation/categories``
    (idempotent; installs the web page first)."""
    if getattr(app.state, "moderation_web_installed", False):
        return
    web.install(app)
    app.state.moderation_web_installed = True

    @app.get("/v1/moderation/categories", tags=["moderation"])
    def moderation_categories(request: Request) -> dict[str, Any]:
        """The moderation policy's categories, actions, surfaces and decision grounds (what a decision may name)."""
        return categories(request.app)

    @app.get("/moderation", response_class=HTMLResponse, include_in_schema=False)
    def console(request: Request) -> Response:
        """The moderator console (the key is entered in the page and kept in sessionStorage)."""
        return _page(request, "moderation.html", {})

    @app.get("/statements", response_class=HTMLResponse, include_in_schema=False)
    def statements_page(request: Request) -> Response:
        """The signed-in person's statements of reasons (sign in with your token on the page)."""
        sess = _session(app, request)
        return _page(
            request, "statements.html", {"user": sess.user if sess else None, "mode": sess.mode if sess else None}
        )

    async def forward(request: Request, rest: str) -> Response:
        """Forward to ``/v1/users/<session person>/statements<rest>`` with the session's credential."""
        if not web._csrf_ok(request):
            return web._error(403, "cross-site request refused (needs X-Glassfeed-Web: 1 from this origin)", "origin")
        sess = _session(app, request)
        if sess is None:
            return web._error(401, "no session: sign in with your user id and token first", "session")
        if sess.mode == "demo" and not _demo_on(app, request):
            return web._error(403, "a demo session works only from this machine, with demo mode on", "session")
        path = f"/v1/users/{quote(sess.user, safe='')}/statements{rest}"
        body = await request.body()
        r = await web._call(app, request.method, path, sess.auth, body, request.headers.get("content-type"))
        keep = {k: v for k, v in r.headers.items() if k == "content-type"}
        keep["cache-control"] = "no-store"
        return Response(r.content, status_code=r.status_code, headers=keep)

    @app.get("/web/api/statements", include_in_schema=False)
    async def my_statements(request: Request) -> Response:
        return await forward(request, "")

    @app.get("/web/api/statements/{statement}", include_in_schema=False)
    async def my_statement(request: Request, statement: int) -> Response:
        return await forward(request, f"/{statement}")

    @app.post("/web/api/statements/{statement}/appeals", include_in_schema=False)
    async def my_appeal(request: Request, statement: int) -> Response:
        return await forward(request, f"/{statement}/appeals")


__all__ = ["install", "categories", "GROUND_WORDS"]
