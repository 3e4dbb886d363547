"""The ad policy written as data (``policies/ads/ads.toml``): the auction's reserve and frequency cap, pacing, the
ranker's priors, what targeting is based on profiling, the special categories it refuses, and the ad repository's
reach bands. Every key is required and unknown keys are refused, as for feed policies; ``describe`` turns the file
into its plain-language statement (DSA Art. 26 and 39). Where ads go on a page is the feed policy's ``[ads]``
section (``feed.policy.AdLoad``)."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from glassfeed.feed.policy import AdLoad, PolicyError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Auction(_Section):
    reserve_cpm: float = Field(ge=0, description="no impression is sold for less than this per 1,000 impressions")
    frequency_cap: int = Field(ge=1, le=1000, description="impressions of one campaign per person per day (UTC)")
    hide_weight: float = Field(ge=0, description="quality = 1 / (1 + hide_weight x smoothed share hidden)")
    hide_prior_impressions: float = Field(gt=0, description="the hidden share's smoothing, in impressions")


class Pacing(_Section):
    slack: float = Field(ge=0, le=1, description="share of the daily budget a campaign may run ahead of even")


class Ranker(_Section):
    prior_click: float = Field(gt=0, lt=1)
    prior_engagement: float = Field(gt=0, lt=1)
    prior_strength: float = Field(gt=0, description="impressions after which a campaign's own rates dominate")


#: Every targeting parameter a campaign may use (``ads.campaigns.TargetingSpec``'s fields).
TARGETING_FIELDS: tuple[str, ...] = (
    "countries",
    "languages",
    "topics",
    "regions",
    "age_bands",
    "lookalike_of",
    "custom_audience",
)


class Targeting(_Section):
    profiling: tuple[str, ...] = Field(description="targeting parameters based on profiling")
    adult_age: int = Field(ge=13, le=25)
    lookalike_share: float = Field(gt=0, le=1)
    max_custom_audience: int = Field(ge=1, le=10_000_000)

    @field_validator("profiling")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for f in v:
            if f not in TARGETING_FIELDS:
                raise ValueError(f"{f!r} is not a targeting parameter; expected one of {', '.join(TARGETING_FIELDS)}")
        return v


class Library(_Section):
    reach_bands: tuple[int, ...] = Field(min_length=1)
    retention_days: float = Field(gt=0)

    @field_validator("reach_bands")
    @classmethod
    def _increasing(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(b <= 0 for b in v) or list(v) != sorted(set(v)):
            raise ValueError("must be positive and increasing")
        return v


class SpecialCategory(_Section):
    words: str = Field(min_length=1, description="the category in plain words")
    fields: tuple[str, ...] = Field(description="targeting field names that would target this category")
    topics: tuple[str, ...] = Field(description="topics (as interests) that would reveal this category")


class AdPolicy(_Section):
    name: str
    title: str
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    auction: Auction
    pacing: Pacing
    ranker: Ranker
    targeting: Targeting
    library: Library
    special_categories: dict[str, SpecialCategory] = Field(min_length=1)

    def sensitive_topic(self, topic: str) -> str | None:
        """The special category a topic (as an interest) belongs to, or None."""
        t = topic.strip().lstrip("#").lower()
        for name, cat in self.special_categories.items():
            if t in cat.topics:
                return name
        return None

    def sensitive_field(self, field: str) -> str | None:
        """The special category a targeting field name would target, or None."""
        f = field.strip().lower()
        for name, cat in self.special_categories.items():
            if f in cat.fields:
                return name
        return None


def load_ad_policy(path: str | Path | None = None) -> AdPolicy:
    """The ad policy in ``path`` (empty: the packaged ``policies/ads/ads.toml``); a bad file raises
    ``PolicyError`` naming the file, section and key."""
    if path:
        p = Path(path)
        origin, text = p.name, p.read_text("utf-8")
    else:
        origin = "ads.toml"
        text = resources.files("glassfeed").joinpath("policies", "ads", "ads.toml").read_text("utf-8")
    try:
        raw: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(f"{origin}: not valid TOML: {e}") from None
    try:
        return AdPolicy.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        reason = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise PolicyError(f"{origin}: {key}: {reason}") from None


def _money(x: float, currency: str) -> str:
    return f"{x:,.2f} {currency}"


def describe(policy: AdPolicy, load: AdLoad | None = None) -> str:
    """The plain-language statement of how ads are chosen, priced, limited and published, generated from the
    policy (and a feed policy's ad load, when given)."""
    a, t = policy.auction, policy.targeting
    cats = "; ".join(c.words for c in policy.special_categories.values())
    lines = [f"# {policy.title}", ""]
    lines.append("## How an ad is chosen")
    lines.append(
        "- Every ad comes from a campaign whose targeting you match, whose schedule is running and whose budget is "
        "not spent. Campaigns bid per 1,000 impressions, per click or per engagement."
    )
    lines.append(
        "- A campaign's bid is multiplied by the predicted chance that you click or engage (for bids per click or "
        "engagement) and by its quality (fewer people hiding it is better): the highest product wins the place."
    )
    lines.append(
        "- The winner pays the least it could have bid and still won (a generalised second-price auction), never "
        f"less than {_money(a.reserve_cpm, policy.currency)} per 1,000 impressions."
    )
    lines.append(f"- You see one campaign at most {a.frequency_cap} times a day.")
    lines.append(
        f"- Budgets are paced: a campaign may spend only {100 * policy.pacing.slack:.0f}% ahead of an even spend of "
        "its daily budget over the day."
    )
    if load is not None:
        if load.max_share <= 0:
            lines.append("- This feed shows no ads.")
        else:
            lines.append(
                f"- In this feed at most {100 * load.max_share:.0f}% of a page's places are ads, none above place "
                f"{load.first_position}, at least {load.min_gap} posts apart, one per advertiser."
            )
    lines.append("")
    lines.append("## Targeting")
    lines.append(
        "- Advertisers may target by country, language, topics of interest, region, age band, people like the "
        "followers of an account (lookalike) and their own customer lists uploaded as hashed ids."
    )
    lines.append(
        f"- Never by special categories of personal data ({cats}): a campaign that targets them, or topics that "
        "reveal them, is refused (DSA Art. 26(3))."
    )
    lines.append(
        f"- Targeting by {', '.join(t.profiling)} is based on profiling. People younger than {t.adult_age}, when "
        "we know their age, and people who turn off interest-based ads see only ads that use none of it (DSA Art. "
        "28(2))."
    )
    lines.append("")
    lines.append("## What every ad shows")
    lines.append('- "Ad", who paid for it and on whose behalf; "Political ad" when declared political.')
    lines.append(
        '- "Why this ad": which of your attributes matched which targeting parameter, the auction\'s main inputs, '
        "and how to hide the advertiser or turn off interest-based ads."
    )
    lines.append("")
    lines.append("## The public ad repository")
    lines.append(
        "- Every ad shown is listed at /ad-library with its content, advertiser, payer, period, targeting and "
        f"reach, for {policy.library.retention_days:g} days after its last impression. Reach is given in bands "
        f"({', '.join(f'{b:,}' for b in policy.library.reach_bands)}) so that no small audience is exposed."
    )
    return "\n".join(lines)


__all__ = ["TARGETING_FIELDS", "AdPolicy", "describe", "load_ad_policy"]
