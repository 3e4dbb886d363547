"""What the ad log tells others: an advertiser's reports (their own campaigns, no per-person data) and the public
ad repository (DSA Art. 39: every ad shown, its content, advertiser, payer, period, whether targeted and the main
parameters, and its reach, total and per country, in bands so that no small audience is exposed; listed until
``[library] retention_days`` after its last impression). Both read the store's ad log, not the serving state."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from glassfeed.ads.campaigns import MICROS, Campaign
from glassfeed.store import AdLogRow

if TYPE_CHECKING:
    from glassfeed.ads.service import AdService


def reach_band(n: int, bands: tuple[int, ...]) -> str:
    """``n`` people as a band of the policy's edges: "under 100", "100-1,000", ..., "over 1,000,000"."""
    if n < bands[0]:
        return f"under {bands[0]:,}"
    for lo, hi in itertools.pairwise(bands):
        if n < hi:
            return f"{lo:,}-{hi:,}"
    return f"over {bands[-1]:,}"


def advertiser_report(svc: AdService, advertiser: str, since: float | None, until: float | None) -> dict[str, Any]:
    """Per campaign and UTC day: impressions, reach (distinct people), clicks, engagements, hides, spend, CPM
    (spend per 1,000 impressions) and CPC (spend per click); totals per campaign. Counts only: no person, no
    request id."""
    mine = {c.id: c for c in svc.list_campaign_objects(advertiser)}
    rows = svc.store.ad_log(campaigns=list(mine), t_from=since, t_to=until) if mine else []
    days: dict[tuple[str, int], list[AdLogRow]] = defaultdict(list)
    for r in rows:
        days[(r.campaign, int(r.ts // 86400))].append(r)
    by_campaign: dict[str, dict[str, Any]] = {
        c: {"campaign": c, "name": mine[c].name, "days": [], "total": None} for c in sorted(mine)
    }
    for (camp, day), rs in sorted(days.items()):
        by_campaign[camp]["days"].append({"day": time.strftime("%Y-%m-%d", time.gmtime(day * 86400)), **_counts(rs)})
    for camp in by_campaign:
        by_campaign[camp]["total"] = _counts([r for r in rows if r.campaign == camp])
    return {"advertiser": advertiser, "currency": svc.policy.currency, "campaigns": list(by_campaign.values())}


def _counts(rows: list[AdLogRow]) -> dict[str, Any]:
    imp = [r for r in rows if r.kind == "impression"]
    clicks = sum(r.kind == "click" for r in rows)
    spend = sum(r.price for r in rows) / MICROS
    return {
        "impressions": len(imp),
        "reach": len({r.user for r in imp if r.user is not None}),
        "clicks": clicks,
        "engagements": sum(r.kind == "engagement" for r in rows),
        "hides": sum(r.kind == "hide" for r in rows),
        "spend": round(spend, 6),
        "cpm": round(1000.0 * spend / len(imp), 6) if imp else None,
        "cpc": round(spend / clicks, 6) if clicks else None,
    }


def library(
    svc: AdService,
    *,
    advertiser: str | None = None,
    country: str | None = None,
    since: float | None = None,
    until: float | None = None,
    political: bool | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The public repository's entries that match: ads shown (at least one impression) whose last impression is
    within the retention window, optionally of an advertiser (part of its name, its payer or on-behalf-of),
    shown in ``country``, shown within [since, until), political or not. Newest last impression first."""
    now = time.time() if now is None else now
    keep_from = now - svc.policy.library.retention_days * 86400.0
    bands = svc.policy.library.reach_bands
    imps = svc.store.ad_log(kinds=["impression"], t_from=keep_from)
    by_campaign: dict[str, list[AdLogRow]] = defaultdict(list)
    for r in imps:
        by_campaign[r.campaign].append(r)
    campaigns = {c.id: c for c in svc.all_campaign_objects()}
    out: list[dict[str, Any]] = []
    needle = advertiser.lower() if advertiser else None
    for cid, rows in by_campaign.items():
        c = campaigns.get(cid)
        if c is None:
            continue
        if needle and not any(needle in s.lower() for s in (c.advertiser, c.paid_by, c.on_behalf_of)):
            continue
        if political is not None and c.political != political:
            continue
        first, last = min(r.ts for r in rows), max(r.ts for r in rows)
        if (since is not None and last < since) or (until is not None and first >= until):
            continue
        people: dict[str | None, set[int | None]] = defaultdict(set)
        for r in rows:  # anonymous readers count once per request: no person to tell apart
            people[r.country].add(r.user if r.user is not None else -r.seq)
        if country is not None and country not in people:
            continue
        everyone = set().union(*people.values())
        out.append(
            {
                "campaign": c.id,
                "advertiser": c.advertiser,
                "paid_by": c.paid_by,
                "on_behalf_of": c.on_behalf_of,
                "political": c.political,
                "content": [svc.creative_view(p) for p in c.creatives],
                "first_shown": first,
                "last_shown": last,
                "listed_until": last + svc.policy.library.retention_days * 86400.0,
                "targeted": not c.untargeted,
                "targeting": _public_targeting(c),
                "reach": {
                    "total": reach_band(len(everyone), bands),
                    "by_country": {
                        (k or "unknown"): reach_band(len(v), bands)
                        for k, v in sorted(people.items(), key=lambda kv: kv[0] or "~")
                    },
                },
            }
        )
    out.sort(key=lambda e: (-float(e["last_shown"]), str(e["campaign"])))
    return {"ads": out, "reach_bands": list(bands), "retention_days": svc.policy.library.retention_days}


def _public_targeting(c: Campaign) -> dict[str, Any]:
    """A campaign's main targeting parameters as the repository shows them: a custom audience by its size only."""
    t = dict(c.targeting)
    if "custom_audience" in t:
        n = len(t["custom_audience"])
        t["custom_audience"] = f"the advertiser's own list ({reach_band(n, (100, 1000, 10000, 100000))} ids)"
    return t


__all__ = ["advertiser_report", "library", "reach_band"]
