"""Web pages of the ad lever: the public ad repository (``/ad-library``) and the feed page's ad calls.

- ``/ad-library``: the public repository (DSA Art. 39), no login. A GET form (advertiser, country, period as
  dates, political or not) and the ads that match, rendered on the server from the JSON API
  ``GET /v1/ad-library`` called in-process (the same validation and answers as over the network): each ad's
  content, advertiser, payer, on whose behalf, the period it was shown, whether it was targeted and on what, and
  its reach (total and per country, in bands). Dates are UTC days: "from" is that day's start, "to" includes the
  whole day. It works without JavaScript.
- ``/web/api/ads/settings`` (GET, PUT) and ``/web/api/ads/actions`` (POST): the feed page's "Hide ads from X",
  "Turn off interest-based ads" and ad clicks, forwarded to ``/v1/users/<session person>/ads/...`` with the
  session's credential under the same guards as ``/web/api/me/...`` (the custom header, this origin only, a demo
  session only from this machine).

``install(app)`` adds them (idempotent); it installs the web page first (``glassfeed.web.routes``) for its static
files and sessions.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from glassfeed.web import routes as web
from glassfeed.web.routes import COOKIE, TEMPLATES

#: The political filter's choices on the page and what the API is asked for each.
POLITICAL: dict[str, str | None] = {"": None, "yes": "true", "no": "false"}
_DAY_S = 86400.0


def _day_start(text: str) -> float:
    """Epoch seconds of the start (UTC) of a ``YYYY-MM-DD`` day; ``ValueError`` when it is not one."""
    return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC).timestamp()


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _values(v: Any) -> str:
    return ", ".join(map(str, v)) if isinstance(v, list | tuple) else str(v)


def search_query(
    advertiser: str, country: str, since: str, until: str, political: str
) -> tuple[dict[str, str], dict[str, str]]:
    """The API's query for the form's fields, and the form's own errors by field (bad dates, an unknown choice).
    ``until`` is inclusive: the API gets the start of the next day."""
    q: dict[str, str] = {}
    errors: dict[str, str] = {}
    if advertiser.strip():
        q["advertiser"] = advertiser.strip()
    if country.strip():
        q["country"] = country.strip().upper()
    for name, text, shift in (("since", since, 0.0), ("until", until, _DAY_S)):
        if text.strip():
            try:
                q[name] = f"{_day_start(text.strip()) + shift:.0f}"
            except ValueError:
                errors[name] = "a date as YYYY-MM-DD"
    if political not in POLITICAL:
        errors["political"] = "any, political or not political"
    elif POLITICAL[political] is not None:
        q["political"] = str(POLITICAL[political])
    if "since" in q and "until" in q and float(q["until"]) <= float(q["since"]):
        errors["until"] = "on or after the first day"
    return q, errors


def ad_view(ad: dict[str, Any]) -> dict[str, Any]:
    """One repository entry as the page shows it: the API's fields, with times and targeting in words."""
    kind = "Political ad" if ad["political"] else "Ad"
    targeting = [{"parameter": k.replace("_", " "), "wanted": _values(v)} for k, v in ad["targeting"].items()]
    return {
        **ad,
        "label": f"{kind} · paid by {ad['paid_by']} · on behalf of {ad['on_behalf_of']}",
        "first": _when(ad["first_shown"]),
        "last": _when(ad["last_shown"]),
        "first_iso": _iso(ad["first_shown"]),
        "last_iso": _iso(ad["last_shown"]),
        "until": time.strftime("%Y-%m-%d", time.gmtime(ad["listed_until"])),
        "targeting_rows": targeting,
        "countries": sorted(ad["reach"]["by_country"].items()),
    }


def install(app: FastAPI) -> None:
    """Add ``/ad-library`` and ``/web/api/ads/...`` (idempotent; installs the web page first)."""
    if getattr(app.state, "ads_web_installed", False):
        return
    web.install(app)
    app.state.ads_web_installed = True

    @app.get("/ad-library", response_class=HTMLResponse, include_in_schema=False)
    async def ad_library_page(
        request: Request,
        advertiser: str = "",
        country: str = "",
        since: str = "",
        until: str = "",
        political: str = "",
    ) -> Response:
        """The public ad repository: search by advertiser, country, period and political, no login."""
        form = {"advertiser": advertiser, "country": country, "since": since, "until": until, "political": political}
        q, errors = search_query(advertiser, country, since, until, political)
        ads: list[dict[str, Any]] = []
        bands: list[int] = []
        retention: float | None = None
        if not errors:
            r = await web._call(app, "GET", "/v1/ad-library?" + urlencode(q), None)
            body = orjson.loads(r.content)
            if r.status_code == 200:
                ads = [ad_view(a) for a in body["ads"]]
                bands, retention = body["reach_bands"], body["retention_days"]
            else:  # the API's refusal, by field (e.g. a country that is not two letters)
                for d in body.get("detail") or [{"field": "search", "reason": body.get("error", r.status_code)}]:
                    errors[str(d.get("field", "search")).split(".")[-1]] = str(d.get("reason"))
        ctx = {
            "form": form,
            "errors": errors,
            "ads": ads,
            "searched": any(form.values()),
            "bands": [f"{b:,}" for b in bands],
            "retention_days": f"{retention:g}" if retention is not None else None,
            "json_url": "/v1/ad-library" + ("?" + urlencode(q) if q else ""),
        }
        resp = TEMPLATES.TemplateResponse(request, "ad_library.html", ctx, status_code=422 if errors else 200)
        resp.headers["cache-control"] = "no-store"
        return resp

    async def forward(request: Request, rest: str) -> Response:
        """Forward to ``/v1/users/<session person>/ads/<rest>`` with the session's credential."""
        if not web._csrf_ok(request):
            return web._error(403, "cross-site request refused (needs X-Glassfeed-Web: 1 from this origin)", "origin")
        sess = app.state.web_sessions.get(request.cookies.get(COOKIE))
        if sess is None:
            return web._error(401, "no session: choose a person first", "session")
        on = web.demo_mode(app) if app.state.web_demo is None else bool(app.state.web_demo)
        if sess.mode == "demo" and not (on and web.is_loopback(request)):
            return web._error(403, "a demo session works only from this machine, with demo mode on", "session")
        path = f"/v1/users/{quote(sess.user, safe='')}/ads/{rest}"
        body = await request.body()
        r = await web._call(app, request.method, path, sess.auth, body, request.headers.get("content-type"))
        keep = {k: v for k, v in r.headers.items() if k == "content-type"}
        keep["cache-control"] = "no-store"
        return Response(r.content, status_code=r.status_code, headers=keep)

    @app.get("/web/api/ads/settings", include_in_schema=False)
    async def my_ad_settings(request: Request) -> Response:
        return await forward(request, "settings")

    @app.put("/web/api/ads/settings", include_in_schema=False)
    async def save_my_ad_settings(request: Request) -> Response:
        return await forward(request, "settings")

    @app.post("/web/api/ads/actions", include_in_schema=False)
    async def my_ad_action(request: Request) -> Response:
        return await forward(request, "actions")


__all__ = ["POLITICAL", "ad_view", "install", "search_query"]
