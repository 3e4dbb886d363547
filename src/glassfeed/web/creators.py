"""The creator page (``/creator``), "why did my post travel": the signed-in person's posts, each with how it reached
people (by source and by policy) and why it travelled in words, their follower growth, and one post's detail
(``?post=ID``). Sign-in is the web page's own (the ``gf_session`` cookie); the page is rendered on the server from
``GET /v1/users/<person>/creator`` (and ``.../creator/posts/<id>``) called in-process with the session's credential
(the same validation and answers as over the network); it works without JavaScript. ``install(app)`` adds it
(idempotent; installs the web page first for its static files and sessions)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from glassfeed.creators.attribution import CHANNELS
from glassfeed.creators.service import CHANNEL_WORDS
from glassfeed.web import routes as web
from glassfeed.web.routes import COOKIE, TEMPLATES


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def split_bar(split: dict[str, Any]) -> list[dict[str, Any]]:
    """A post's impressions by channel as the bar's segments (share and start ``x`` in %, channel order)."""
    n = split["impressions"]
    by = split["by_channel"]
    segs = [
        {"channel": c, "impressions": by[c]["impressions"], "share": 100.0 * by[c]["impressions"] / n}
        for c in CHANNELS
        if n and c in by and by[c]["impressions"]
    ]
    x = 0.0
    for s in segs:  # the bar is SVG rects at x (presentation attributes, not the inline styles the CSP refuses)
        s["x"], x = x, x + s["share"]
    return segs


def install(app: FastAPI) -> None:
    """Add ``/creator`` (idempotent)."""
    if getattr(app.state, "creators_web_installed", False):
        return
    web.install(app)
    app.state.creators_web_installed = True

    @app.get("/creator", response_class=HTMLResponse, include_in_schema=False)
    async def creator_page(request: Request, days: str = "", bucket: str = "", post: str = "") -> Response:
        """The signed-in person's creator analytics (``?days=&bucket=``; ``?post=ID`` for one post)."""
        sess = app.state.web_sessions.get(request.cookies.get(COOKIE))
        ctx: dict[str, Any] = {"user": None, "errors": {}, "days": days, "bucket": bucket, "answer": None}
        status = 200
        if sess is not None and sess.mode == "demo":
            on = web.demo_mode(app) if app.state.web_demo is None else bool(app.state.web_demo)
            if not (on and web.is_loopback(request)):
                sess = None
        if sess is not None:
            q = {k: v.strip() for k, v in (("days", days), ("bucket", bucket)) if v.strip()}
            base = f"/v1/users/{quote(sess.user, safe='')}/creator"
            path = base + (f"/posts/{quote(post.strip(), safe='')}" if post.strip() else "")
            r = await web._call(app, "GET", path + ("?" + urlencode(q) if q else ""), sess.auth)
            body = orjson.loads(r.content)
            if r.status_code != 200:  # the API's refusal, by field
                status = r.status_code
                for d in body.get("detail") or [{"field": "request", "reason": body.get("error", r.status_code)}]:
                    ctx["errors"][str(d.get("field", "request")).split(".")[-1]] = str(d.get("reason"))
            else:
                posts = [body] if post.strip() else body["posts"]
                for p in posts:
                    p["bar"] = split_bar(p)
                    p["created_words"] = _when(p["created_at"])
                ctx.update(answer=body, posts=posts, detail=bool(post.strip()))
                if not post.strip():
                    f = body["followers"]
                    ctx["followers"] = {
                        "now": f["now"],
                        "gained": sum(f["gained"]),
                        "lost": sum(f["lost"]),
                        "rows": [
                            {"t": _when(t), "gained": g, "lost": lo, "total": n}
                            for t, g, lo, n in zip(f["t"], f["gained"], f["lost"], f["total"])
                            if g or lo
                        ],
                    }
            ctx["user"] = sess.user
        ctx["channel_words"] = CHANNEL_WORDS
        resp = TEMPLATES.TemplateResponse(request, "creator.html", ctx, status_code=status)
        resp.headers["cache-control"] = "no-store"
        resp.headers["referrer-policy"] = "no-referrer"
        return resp


__all__ = ["install", "split_bar"]
