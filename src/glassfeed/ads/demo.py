"""Demo campaigns: a few advertisers' campaigns written into a freshly built demo network (``glassfeed demo``) so
that its feeds show ads, their labels and their "why". Each is checked by the same refusals as the advertiser API."""

from __future__ import annotations

import numpy as np

from glassfeed.ads.campaigns import CampaignSpec, TargetingSpec
from glassfeed.ads.policy import AdPolicy
from glassfeed.ads.targeting import refusals
from glassfeed.ingest import Ingestor
from glassfeed.store import AdCampaignRow


def add_demo_campaigns(ingestor: Ingestor, policy: AdPolicy, now: float, seed: int = 0) -> list[str]:
    """Write the demo campaigns (creatives: random existing posts; one targeted by a topic people picked) and
    return their ids; none when the store has fewer than 10 posts or already has campaigns."""
    store = ingestor.store
    if store.ad_campaigns() or store.count("posts") < 10:
        return []
    rng = np.random.default_rng(seed)
    posts = store.load_posts()
    ids = [str(p) for p in posts["id"]]
    topics = sorted({t for ts in posts["topics"] for t in ts if policy.sensitive_topic(t) is None})
    picks = [ids[i] for i in rng.choice(len(ids), 6, replace=False)]
    common = {"daily_budget": 50.0, "lifetime_budget": 1000.0, "start": now - 86400.0}
    specs = {
        ("demo-outdoor", "trail-shoes"): CampaignSpec(
            name="Trail shoes",
            on_behalf_of="Northwind Outdoor",
            paid_by="Northwind Outdoor GmbH",
            objective="reach",
            bid=4.0,
            creatives=picks[:2],
            **common,
        ),
        ("demo-books", "reading-club"): CampaignSpec(
            name="Reading club",
            on_behalf_of="Paperleaf Books",
            paid_by="Paperleaf Books Ltd",
            objective="clicks",
            bid=0.4,
            creatives=picks[2:4],
            targeting=TargetingSpec(topics=topics[:3]),
            **common,
        ),
        ("demo-civic", "register-to-vote"): CampaignSpec(
            name="Register to vote",
            on_behalf_of="Civic Turnout Initiative",
            paid_by="Civic Turnout Foundation",
            objective="reach",
            bid=2.0,
            political=True,
            creatives=picks[4:6],
            **common,
        ),
    }
    made = []
    for (advertiser, cid), spec in specs.items():
        problems = refusals(spec.targeting, policy)
        if problems:  # the demo's own campaigns obey the same rules; a topic list that breaks them is a bug
            raise ValueError(f"demo campaign {cid}: {problems}")
        body = spec.model_dump(mode="json")
        body["targeting"] = {k: v for k, v in spec.targeting.model_dump(mode="json").items() if v}
        ingestor.put_ad_campaign(AdCampaignRow(cid, advertiser, body, now, now))
        made.append(cid)
    return made


__all__ = ["add_demo_campaigns"]
