"""The public trends page (``/trends``), no login: a community chooser and the trends of the whole network or of one
community, each with its explanation and what was discounted, then the terms the rules held back. Rendered on the
server from ``GET /v1/trends`` called in-process (the same validation and answers as over the network); it works
without JavaScript. ``install(app)`` adds it (idempotent; installs the web page first for its static files)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from glassfeed.web import routes as web
from glassfeed.web.routes import TEMPLATES


def trend_view(t: dict[str, Any]) -> dict[str, Any]:
    """One trend as the page shows it: the API's fields, with times in words."""
    return {
        **t,
        "since_words": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t["since"])),
        "since_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t["since"])),
    }


def install(app: FastAPI) -> None:
    """Add ``/trends`` (idempotent)."""
    if getattr(app.state, "trends_web_installed", False):
        return
    web.install(app)
    app.state.trends_web_installed = True

    @app.get("/trends", response_class=HTMLResponse, include_in_schema=False)
    async def trends_page(request: Request, community: str = "") -> Response:
        """Trends for everyone, or for one community (``?community=3``)."""
        q = {"community": community.strip()} if community.strip() else {}
        r = await web._call(app, "GET", "/v1/trends" + ("?" + urlencode(q) if q else ""), None)
        body = orjson.loads(r.content)
        errors: dict[str, str] = {}
        if r.status_code != 200:  # the API's refusal, by field (a community that is not a whole number in range)
            for d in body.get("detail") or [{"field": "community", "reason": body.get("error", r.status_code)}]:
                errors[str(d.get("field", "community")).split(".")[-1]] = str(d.get("reason"))
            body = {"trends": [], "held_back": [], "notice": None}
        ctx = {
            "community": community.strip(),
            "errors": errors,
            "answer": body,
            "trends": [trend_view(t) for t in body["trends"]],
            "held_back": [trend_view(t) for t in body["held_back"]],
            "json_url": "/v1/trends" + ("?" + urlencode(q) if q else ""),
        }
        resp = TEMPLATES.TemplateResponse(request, "trends.html", ctx, status_code=422 if errors else 200)
        resp.headers["cache-control"] = "no-store"
        return resp


__all__ = ["install", "trend_view"]
