"""The campaigns as placement reads them: one struct of arrays, built once per version of the campaigns.

A page's eligibility runs over every campaign (schedule, frequency cap, hidden advertisers, targeting, budget and
pacing, creatives), and does so on every feed request, so its per-request part must be a few array operations, not
a Python loop over campaigns. ``CampaignBook`` holds what does not change between campaign edits: bids and units,
schedules, budgets, each campaign's advertiser as a code, its creatives as post idx in one flat array, and its
*targeting group*.

The one trick: campaigns with the same targeting (every untargeted campaign, say, or all the campaigns asking for
``countries = ["DE", "FR"]``) match a person alike, so ``targeting.match_targeting`` runs once per distinct
targeting among the page's candidates, not once per campaign. Group 0 is "untargeted" (everyone matches, on
nothing). A lookalike audience is computed per campaign (``AdService.lookalike``), so a campaign that targets one
is its own group.

Rows are in campaign id order (ties in placement go to the earlier id), and advertiser codes are in name order,
so ``placement``'s "one campaign per advertiser" keeps the order the auction's tie-break expects."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from glassfeed.ads.campaigns import Campaign

#: Bid units as codes (``Campaign.bid_unit``): per 1,000 impressions, per click, per engagement.
UNITS: tuple[str, ...] = ("cpm", "cpc", "cpe")
CPM, CPC, CPE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class CampaignBook:
    """Every campaign's serving facts as arrays indexed by row (campaign id order); see the module docstring."""

    camps: list[Campaign]
    ids: list[str]
    bid: np.ndarray  # float64, in the campaign's unit
    unit: np.ndarray  # int8: CPM, CPC or CPE
    active: np.ndarray  # bool: status "active"
    start: np.ndarray  # float64
    end: np.ndarray  # float64, inf when the campaign has no end
    daily: np.ndarray  # int64 micro-units
    lifetime: np.ndarray  # int64 micro-units
    advertiser: np.ndarray  # int32 code: the advertiser's rank among the names (``advertisers``)
    advertisers: dict[str, int]  # name -> code
    group: list[int]  # targeting group of each row (0: untargeted); a list, read one row at a time
    creatives: np.ndarray  # int64: every campaign's creatives as post idx, flat (0: unknown post)
    starts: np.ndarray  # int64: each row's slice of ``creatives``
    ends: np.ndarray

    @classmethod
    def build(cls, campaigns: Iterable[Campaign], post_idx: Callable[[str], int | None]) -> CampaignBook:
        camps = sorted(campaigns, key=lambda c: c.id)
        names = sorted({c.advertiser for c in camps})
        advertisers = {a: k for k, a in enumerate(names)}
        keys: dict[str, int] = {}
        group = []
        for c in camps:
            if not c.targeting:
                group.append(0)
                continue
            key = json.dumps(c.targeting, sort_keys=True)
            if "lookalike_of" in c.targeting:
                key = f"{c.id}\0{key}"  # its audience is the campaign's own (computed per campaign)
            group.append(keys.setdefault(key, len(keys) + 1))
        idx = [np.array([post_idx(p) or 0 for p in c.creatives], np.int64) for c in camps]
        sizes = np.array([len(i) for i in idx], np.int64)
        ends = np.cumsum(sizes)
        return cls(
            camps=camps,
            ids=[c.id for c in camps],
            bid=np.array([c.bid for c in camps], np.float64),
            unit=np.array([UNITS.index(c.bid_unit) for c in camps], np.int8),
            active=np.array([c.status == "active" for c in camps], bool),
            start=np.array([c.start for c in camps], np.float64),
            end=np.array([np.inf if c.end is None else c.end for c in camps], np.float64),
            daily=np.array([c.daily_budget for c in camps], np.int64),
            lifetime=np.array([c.lifetime_budget for c in camps], np.int64),
            advertiser=np.array([advertisers[c.advertiser] for c in camps], np.int32),
            advertisers=advertisers,
            group=group,
            creatives=np.concatenate(idx) if idx else np.zeros(0, np.int64),
            starts=ends - sizes,
            ends=ends,
        )

    def __len__(self) -> int:
        return len(self.camps)

    def running(self, now: float) -> np.ndarray:
        """Rows of the campaigns running at ``now`` (active and within their schedule), in id order."""
        return np.flatnonzero(self.active & (self.start <= now) & (now < self.end))

    def action_rate(self, p_click: np.ndarray, p_engagement: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """What turns each row's bid into money per impression: 1/1000 for CPM, P(click) for CPC, P(engagement)
        for CPE (``p_click``/``p_engagement`` given for ``rows``, or for every row when ``rows`` is None)."""
        unit = self.unit if rows is None else self.unit[rows]
        return np.where(unit == CPM, 1.0 / 1000.0, np.where(unit == CPC, p_click, p_engagement))

    def best_per_advertiser(self, rows: np.ndarray, value: np.ndarray) -> np.ndarray:
        """Of ``rows`` (with their ``value``), each advertiser's row of highest value (ties: the earlier campaign
        id), ordered by advertiser name."""
        if not len(rows):
            return rows
        adv = self.advertiser[rows]
        order = np.lexsort((rows, -value, adv))
        first = np.ones(len(order), bool)
        first[1:] = adv[order][1:] != adv[order][:-1]
        return rows[order[first]]


__all__ = ["CPC", "CPE", "CPM", "UNITS", "CampaignBook"]
