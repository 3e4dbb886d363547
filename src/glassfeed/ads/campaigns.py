"""Campaigns: what an advertiser buys. ``CampaignSpec`` is the shape an advertiser sends (and the store keeps, as
the campaign's JSON body); ``Campaign`` is the parsed, typed form the ad service serves from, with money in
integer micro-units of the platform's currency so that budgets add up exactly.

A campaign promotes *creatives*: existing posts, which on an ad place are labelled "Ad" with who paid for them
and on whose behalf. Its objective sets the unit of its bid: ``reach`` bids per 1,000 impressions (CPM),
``clicks`` per click (CPC), ``engagement`` per like, repost or reply (CPE); impressions are billed when served,
clicks and engagements when they happen."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from glassfeed.store import AdCampaignRow

MICROS = 1_000_000
#: Objective -> the bid's unit and the ad log kind it is billed on.
OBJECTIVES: dict[str, tuple[str, str]] = {
    "reach": ("cpm", "impression"),
    "clicks": ("cpc", "click"),
    "engagement": ("cpe", "engagement"),
}
#: Age bands a campaign may target (a person's band comes from the birth year in their profile).
AGE_BANDS: tuple[str, ...] = ("13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
_TEXT = r"^[^\x00-\x1f\x7f]*$"
_HASH = r"^[0-9a-f]{64}$"


class TargetingSpec(BaseModel):
    """Who a campaign may reach. Empty lists and ``None`` mean "anyone". Parameters not listed here are refused
    by the ad service with a 422 naming them (targeting on special categories of personal data among them), not
    by this schema, so that the refusal can say which rule it breaks."""

    model_config = ConfigDict(extra="allow", frozen=True)

    countries: list[str] = Field(
        default_factory=list, max_length=250, description="ISO 3166-1 alpha-2 codes (the person's country)"
    )
    languages: list[str] = Field(default_factory=list, max_length=50, description="ISO 639-1 codes")
    topics: list[str] = Field(
        default_factory=list, max_length=50, description="interests: topics the person follows or engages with"
    )
    regions: list[str] = Field(default_factory=list, max_length=500, description="ISO 3166-2 codes, e.g. DE-BE")
    age_bands: list[str] = Field(default_factory=list, max_length=7, description=f"any of {', '.join(AGE_BANDS)}")
    lookalike_of: str | None = Field(
        default=None, max_length=200, description="an account: its followers and the people most like them"
    )
    custom_audience: list[str] = Field(
        default_factory=list, description="the advertiser's list: SHA-256 (hex) of each person's account id"
    )


class CampaignSpec(BaseModel):
    """A campaign as an advertiser creates or replaces it (``PUT /v1/ads/campaigns/{id}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200, pattern=_TEXT)
    on_behalf_of: str = Field(min_length=1, max_length=200, pattern=_TEXT, description="who the ad promotes")
    paid_by: str = Field(min_length=1, max_length=200, pattern=_TEXT, description="who pays for it")
    objective: Literal["reach", "clicks", "engagement"] = Field(
        description="reach: bid per 1,000 impressions; clicks: per click; engagement: per like, repost or reply"
    )
    bid: float = Field(gt=0, le=1000, description="the most the campaign pays per unit of its objective")
    daily_budget: float = Field(gt=0, le=1e9, description="the most it spends in a day (UTC)")
    lifetime_budget: float = Field(gt=0, le=1e12, description="the most it spends in all")
    start: float = Field(ge=0, le=1e11, description="when it starts (epoch seconds)")
    end: float | None = Field(default=None, ge=0, le=1e11, description="when it ends (epoch seconds); none: no end")
    creatives: list[str] = Field(min_length=1, max_length=20, description="ids of the posts it promotes")
    political: bool = Field(default=False, description="a political ad: labelled so and kept in the repository")
    status: Literal["active", "paused"] = "active"
    targeting: TargetingSpec = Field(default_factory=TargetingSpec)

    @field_validator("lifetime_budget")
    @classmethod
    def _at_least_daily(cls, v: float, info: ValidationInfo) -> float:
        daily = info.data.get("daily_budget")
        if daily is not None and v < daily:
            raise ValueError("must be at least the daily budget")
        return v

    @field_validator("end")
    @classmethod
    def _after_start(cls, v: float | None, info: ValidationInfo) -> float | None:
        start = info.data.get("start")
        if v is not None and start is not None and v <= start:
            raise ValueError("must be after start")
        return v


@dataclass(frozen=True, slots=True)
class Campaign:
    """A stored campaign, parsed (``from_row``); money in micro-units."""

    id: str
    advertiser: str
    name: str
    on_behalf_of: str
    paid_by: str
    objective: str
    bid: float  # in the objective's unit (currency per 1,000 impressions, per click or per engagement)
    daily_budget: int
    lifetime_budget: int
    start: float
    end: float | None
    creatives: tuple[str, ...]
    political: bool
    status: str
    targeting: dict[str, Any]
    created_at: float
    updated_at: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def bid_unit(self) -> str:
        return OBJECTIVES[self.objective][0]

    @property
    def billed_on(self) -> str:
        return OBJECTIVES[self.objective][1]

    @property
    def untargeted(self) -> bool:
        return not any(self.targeting.get(k) for k in self.targeting)

    def running(self, now: float) -> bool:
        return self.status == "active" and self.start <= now and (self.end is None or now < self.end)

    @classmethod
    def from_row(cls, row: AdCampaignRow) -> Campaign:
        b = row.body
        return cls(
            id=row.id,
            advertiser=row.advertiser,
            name=b["name"],
            on_behalf_of=b["on_behalf_of"],
            paid_by=b["paid_by"],
            objective=b["objective"],
            bid=float(b["bid"]),
            daily_budget=to_micros(b["daily_budget"]),
            lifetime_budget=to_micros(b["lifetime_budget"]),
            start=float(b["start"]),
            end=None if b.get("end") is None else float(b["end"]),
            creatives=tuple(b["creatives"]),
            political=bool(b.get("political", False)),
            status=b.get("status", "active"),
            targeting={k: v for k, v in (b.get("targeting") or {}).items() if v},
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def public(self) -> dict[str, Any]:
        """The campaign as its advertiser reads it back (money in the currency's units)."""
        return {
            "id": self.id,
            "advertiser": self.advertiser,
            "name": self.name,
            "on_behalf_of": self.on_behalf_of,
            "paid_by": self.paid_by,
            "objective": self.objective,
            "bid": self.bid,
            "bid_unit": self.bid_unit,
            "daily_budget": self.daily_budget / MICROS,
            "lifetime_budget": self.lifetime_budget / MICROS,
            "start": self.start,
            "end": self.end,
            "creatives": list(self.creatives),
            "political": self.political,
            "status": self.status,
            "targeting": self.targeting,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def to_micros(amount: float) -> int:
    return round(float(amount) * MICROS)


def label(c: Campaign) -> str:
    """The label every served ad carries (DSA Art. 26(1)(a)-(c))."""
    kind = "Political ad" if c.political else "Ad"
    return f"{kind} · paid by {c.paid_by} · on behalf of {c.on_behalf_of}"


__all__ = ["AGE_BANDS", "MICROS", "OBJECTIVES", "Campaign", "CampaignSpec", "TargetingSpec", "label", "to_micros"]
