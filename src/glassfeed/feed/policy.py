"""Ranking policies written as data (TOML): head weights, sources, adjustments, filters, mixing, bounds.

A policy's score for a candidate is ``sum(weight[h] * P(h))`` over the engagement heads, then named
multiplicative adjustments. People may move each weight within the platform's ``bounds``. ``describe`` turns
a policy file into the plain-language "main parameters" statement of EU DSA Art. 27.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

#: The engagement heads every policy weights, in model output order.
HEADS: tuple[str, ...] = ("like", "repost", "reply", "click", "dwell", "see_less", "report", "worth_it")
SOURCES: tuple[str, ...] = ("following", "collaborative", "social_proof", "trending", "cold_start", "content")
RANKERS = ("heads", "lambdarank", "recency")

HEAD_WORDS = {
    "like": "you like it",
    "repost": "you repost it",
    "reply": "you reply to it",
    "click": "you open it",
    "dwell": "you spend time reading it",
    "see_less": "you ask to see less of it",
    "report": "you report it",
    "worth_it": "you say a page with it was worth your time",
}
SOURCE_WORDS = {
    "following": "posts and reposts from accounts you follow",
    "collaborative": "posts engaged with by people whose likes resemble yours",
    "social_proof": "posts liked or reposted by accounts you follow",
    "trending": "posts gaining engagement quickly right now",
    "cold_start": "popular posts in topics you picked, while we know little about you",
    "content": "posts whose text is about what you engage with, even before anyone has engaged with them",
}


S = TypeVar("S", bound="PolicySection")


class PolicyError(ValueError):
    """A policy file or a user's adjustment is invalid; the message names the file, section and key."""


class PolicySection(BaseModel):
    """One ``[section]`` of a policy file: every key required, unknown keys refused, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def replace(self, **changes: Any) -> Self:
        """A validated copy with some keys changed (``policy.mixing.replace(in_network_share=1.0)``)."""
        return self.model_validate({**self.model_dump(), **changes})


class Adjustments(PolicySection):
    """Multipliers applied after scoring (``feed/mixing.py``, ``pipeline.topic_preference``)."""

    out_of_network_factor: float = Field(ge=0, description="x this for posts from accounts you do not follow")
    reply_factor: float = Field(ge=0, description="x this for replies")
    author_diversity_decay: float = Field(
        ge=0, le=1, description="k-th repeat of an author: x ((1 - floor) * decay^k + floor); 1 disables it"
    )
    author_diversity_floor: float = Field(ge=0, le=1)
    divisiveness_penalty: float = Field(ge=0, le=1, description="x (1 - penalty * divisiveness)")
    topic_more_factor: float = Field(ge=0, description="x this for topics the person asked to see more of")
    topic_less_factor: float = Field(ge=0, description="x this for topics the person asked to see less of")
    bridging_boost: float = Field(ge=0, description="x (1 + boost * bridging score)")


class Filters(PolicySection):
    """What is never shown under this policy (besides the blocks, mutes and removals every policy applies)."""

    max_age_hours: float = Field(gt=0, description="posts older than this are not candidates")
    filter_seen: bool = Field(description="drop posts already shown to the person")


class Mixing(PolicySection):
    """How a page is assembled from the ranked candidates."""

    in_network_share: float = Field(ge=0, le=1, description="at most this share of a page from followed accounts")
    out_network_share: float = Field(ge=0, le=1, description="at most this share from other accounts")
    light_ranker_keep: int = Field(ge=1, description="candidates kept by the first-stage ranker per request")
    explore_share: float = Field(
        ge=0, le=0.5, description="this share of a page's places (rounded down) goes to new or uncertain posts; 0 = off"
    )
    explore_max_impressions: float = Field(
        gt=0, description="a post is new or uncertain while its decayed impression count is below this"
    )
    explore_prior_rate: float = Field(
        gt=0, lt=1, description="Thompson sampling's prior engagement rate (likes, reposts, replies per impression)"
    )
    explore_prior_impressions: float = Field(gt=0, description="the prior's strength, in impressions")


class Fatigue(PolicySection):
    """After "see less" on an author: hidden for ``filter_days``, then discounted in steps for ``discount_days``."""

    filter_days: float = Field(ge=0)
    discount_days: float = Field(ge=0)
    discount_start: float = Field(ge=0, le=1, description="the multiplier when the discount starts (rises to 1)")
    discount_steps: int = Field(ge=1)


class AdLoad(PolicySection):
    """Where ads may go on a page of this feed (``glassfeed.ads.placement``); the auction, pacing and targeting
    rules are the ad policy's (``policies/ads/ads.toml``)."""

    first_position: int = Field(ge=1, le=1000, description="no ad above this place of a page (1 = the top)")
    min_gap: int = Field(ge=1, le=1000, description="at least this many posts between two ads")
    max_share: float = Field(ge=0, le=0.5, description="at most this share of a page's places are ads; 0 = no ads")


class Breadth(PolicySection):
    """Each page chosen to match the mix of topics the person engages with (calibrated recommendations, Steck 2018;
    ``feed/breadth.py``): place by place, the candidate that maximises ``(1 - calibration) x the page's mean score
    relative to the best + calibration x (-KL(person's topic mix || page's))``."""

    calibration: float = Field(
        ge=0, lt=1, description="λ: how much matching the person's topic mix counts against the score; 0 = off"
    )
    smoothing: float = Field(
        gt=0, lt=1, description="α: the page's topic mix is blended with this share of the person's, so KL is finite"
    )
    pool: int = Field(ge=1, description="only the person's this many best-scoring candidates can be placed for breadth")
    prior_strength: float = Field(
        ge=0,
        description="the person's mix leans on what they chose (picked topics, followed accounts' posts) as if it were "
        "this many engagements; 0 = on what they engaged with alone",
    )
    max_divisiveness: float = Field(
        gt=0,
        le=1,
        description="posts more divisive than this are never placed for breadth (they keep their place by score); "
        "1 = any post may be",
    )
    order: Literal["greedy", "score"] = Field(
        description="the page's order: 'greedy', the order the calibrated greedy chose the posts in; 'score', the "
        "chosen posts by score, so a post placed for breadth sits below the posts that outscored it"
    )


#: Policy file keys: scalars, then the tables (typed sections parsed by their model).
_SCALARS = ("name", "title", "summary", "profiling", "ranker")
_SECTIONS: dict[str, type[PolicySection]] = {
    "adjustments": Adjustments,
    "filters": Filters,
    "mixing": Mixing,
    "fatigue": Fatigue,
    "ads": AdLoad,
    "breadth": Breadth,
}
_TABLES = ("weights", "bounds", "sources", *_SECTIONS)


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    title: str
    summary: str
    profiling: bool
    ranker: str
    weights: dict[str, float]
    bounds: dict[str, tuple[float, float]]
    sources: dict[str, int]
    adjustments: Adjustments
    filters: Filters
    mixing: Mixing
    fatigue: Fatigue
    ads: AdLoad
    breadth: Breadth
    adjusted_by_user: dict[str, float] = field(default_factory=dict)

    def weight_vector(self) -> list[float]:
        return [float(self.weights.get(h, 0.0)) for h in HEADS]

    def with_user_weights(self, user_weights: Mapping[str, Any] | None) -> Policy:
        """Apply a person's weight choices, each checked: outside the bounds is an error, not a clamp."""
        if not user_weights:
            return self
        w = dict(self.weights)
        for head, value in user_weights.items():
            if head not in HEADS:
                raise PolicyError(f"weights.{head}: unknown head; expected one of {', '.join(HEADS)}")
            if head not in self.bounds:
                raise PolicyError(f"weights.{head}: the {self.name} policy does not let people change this weight")
            lo, hi = self.bounds[head]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= float(value) <= hi:
                raise PolicyError(f"weights.{head}: {value!r} is outside the allowed range [{lo}, {hi}]")
            w[head] = float(value)
        return replace(self, weights=w, adjusted_by_user={k: float(v) for k, v in user_weights.items()})


@dataclass(frozen=True, slots=True)
class TypicalContributions:
    """What ``describe`` orders a policy's heads by: each head's typical |weight x P(head)| in served scores
    (``per_head``), and one sentence saying how and on what it was measured (``how``); made by
    ``feed/contributions.py``."""

    per_head: dict[str, float]
    how: str


def _section(origin: str, name: str, model: type[S], body: Any) -> S:
    if not isinstance(body, dict):
        raise PolicyError(f"{origin}: [{name}]: must be a table of keys")
    try:
        return model.model_validate(body)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or name
        reason = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        if err["type"] == "extra_forbidden":
            reason += f"; expected one of {', '.join(model.model_fields)}"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise PolicyError(f"{origin}: [{name}] {key}: {reason}{more}") from None


def _policy_from_dict(d: dict[str, Any], origin: str) -> Policy:
    for k, v in d.items():
        if k not in _SCALARS + _TABLES:
            raise PolicyError(f"{origin}: {k}: unknown key; expected one of {', '.join(_SCALARS + _TABLES)}")
        if k in _TABLES and not isinstance(v, dict):
            raise PolicyError(f"{origin}: [{k}]: must be a table of keys")
    ranker = str(d.get("ranker", "heads"))
    if ranker not in RANKERS:
        raise PolicyError(f"{origin}: ranker: {ranker!r} is not one of {RANKERS}")
    weights = {k: float(v) for k, v in d.get("weights", {}).items()}
    for k in weights:
        if k not in HEADS:
            raise PolicyError(f"{origin}: weights.{k}: unknown head")
    bounds = {}
    for k, v in d.get("bounds", {}).items():
        if k not in HEADS or len(v) != 2 or float(v[0]) > float(v[1]):
            raise PolicyError(f"{origin}: bounds.{k}: must be [low, high] for a known head")
        bounds[k] = (float(v[0]), float(v[1]))
        if k in weights and not bounds[k][0] <= weights[k] <= bounds[k][1]:
            raise PolicyError(f"{origin}: weights.{k}: default {weights[k]} is outside its own bounds")
    sources = {k: int(v) for k, v in d.get("sources", {}).items()}
    for k in sources:
        if k not in SOURCES:
            raise PolicyError(f"{origin}: sources.{k}: unknown candidate source")
    missing = [k for k in ("name", *_SECTIONS) if k not in d]
    if missing:
        raise PolicyError(f"{origin}: missing section or key {missing[0]!r}")
    name = str(d["name"])
    mixing = _section(origin, "mixing", Mixing, d["mixing"])
    if ranker == "recency" and mixing.explore_share > 0:
        raise PolicyError(f'{origin}: [mixing] explore_share: must be 0 when ranker = "recency" (newest first)')
    breadth = _section(origin, "breadth", Breadth, d["breadth"])
    if ranker == "recency" and breadth.calibration > 0:
        raise PolicyError(f'{origin}: [breadth] calibration: must be 0 when ranker = "recency" (newest first)')
    return Policy(
        name=name,
        title=str(d.get("title", name)),
        summary=str(d.get("summary", "")).strip(),
        profiling=bool(d.get("profiling", True)),
        ranker=ranker,
        weights=weights,
        bounds=bounds,
        sources=sources,
        adjustments=_section(origin, "adjustments", Adjustments, d["adjustments"]),
        filters=_section(origin, "filters", Filters, d["filters"]),
        mixing=mixing,
        fatigue=_section(origin, "fatigue", Fatigue, d["fatigue"]),
        ads=_section(origin, "ads", AdLoad, d["ads"]),
        breadth=breadth,
    )


def load_policy_file(path: str | Path) -> Policy:
    p = Path(path)
    try:
        return _policy_from_dict(tomllib.loads(p.read_text("utf-8")), p.name)
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(f"{p.name}: not valid TOML: {e}") from None


def builtin_policies() -> dict[str, Policy]:
    """The presets shipped in ``glassfeed/policies/*.toml``."""
    out = {}
    for f in sorted(resources.files("glassfeed").joinpath("policies").iterdir(), key=lambda f: f.name):
        if f.name.endswith(".toml"):
            pol = _policy_from_dict(tomllib.loads(f.read_text("utf-8")), f.name)
            out[pol.name] = pol
    return out


def load_policies(extra_dir: str | Path | None = None) -> dict[str, Policy]:
    """Built-in presets plus any ``*.toml`` in ``extra_dir`` (a platform's custom policies)."""
    pols = builtin_policies()
    if extra_dir:
        for f in sorted(Path(extra_dir).glob("*.toml")):
            pol = load_policy_file(f)
            pols[pol.name] = pol
    return pols


def describe(policy: Policy, typical: TypicalContributions | None = None) -> str:
    """The plain-language main-parameters statement (EU DSA Art. 27) generated from the policy data. The heads are
    listed by their ``typical`` contribution to served scores when it was measured, else by weight size, and the
    statement says which (a large weight on an unlikely event can matter less than a small one on a likely one)."""
    lines = [f"# {policy.title}", "", policy.summary, ""]
    lines.append("## Where the posts come from")
    for s, n in sorted(policy.sources.items(), key=lambda kv: -kv[1]):
        lines.append(f"- {SOURCE_WORDS[s].capitalize()} (up to {n} considered per request).")
    lines.append("")
    order = (
        ""
        if policy.ranker == "recency"
        else ", largest weight first"
        if typical is None
        else ", most significant first"
    )
    lines.append(f"## The main parameters{order}")
    if policy.ranker == "recency":
        lines.append("- Time: the newest post comes first. No prediction about you is used.")
    elif policy.ranker == "lambdarank":
        lines.append(
            "- A learned ranking model orders the posts by how likely you are to engage with each at all (like, "
            "repost, reply or read it for a while; less if you asked to see less or reported it). It was trained to "
            "put first, on each page, what people went on to engage with. The weights below are not used by it."
        )
    else:
        lines.append(
            "For each post we predict how likely it is that you will engage in each way below; the "
            "post's score adds up those chances times a weight. A positive weight pushes a post up, a "
            "negative one pushes it down. Why these weights: they state what the platform wants this "
            "feed to serve, and they are published so that you can judge them."
        )
        lines.append("")
        heads = [(h, w) for h, w in policy.weights.items() if w != 0]
        if typical is not None:
            lines.append(f"Order: by typical contribution to a post's score, {typical.how}")
            heads.sort(key=lambda hw: (-typical.per_head.get(hw[0], 0.0), -abs(hw[1]), HEADS.index(hw[0])))
        else:
            lines.append(
                "Order: by the size of the weight, because no measurement of how much each one typically "
                "contributes to the scores of served posts was available when this statement was made. A weight's "
                "size is not its influence: a large weight on an unlikely event can move scores less than a small "
                "weight on a likely one."
            )
            heads.sort(key=lambda hw: (-abs(hw[1]), HEADS.index(hw[0])))
        for h, w in heads:
            direction = "raises" if w > 0 else "lowers"
            seen = "" if typical is None else f"; typically {math.copysign(typical.per_head.get(h, 0.0), w):+.2g}"
            lines.append(f"- The chance that {HEAD_WORDS[h]} {direction} the score (weight {w:+g}{seen}).")
    lines.append("")
    lines.append("## Adjustments after scoring")
    adjusted = _adjustment_lines(policy)
    lines.extend(adjusted or ["- None: nothing moves a post up or down after it is ordered."])
    lines.append("")
    lines.append("## Always applied")
    lines.append("- Accounts you block or mute, and posts containing your muted words, are never shown.")
    lines.append("- Posts removed by moderation are never shown; labelled posts show behind a warning.")
    lines.append(f"- Posts older than {policy.filters.max_age_hours:g} hours are not shown.")
    if policy.filters.filter_seen:
        lines.append("- Posts you have already been shown are not shown again.")
    mix = policy.mixing
    if mix.out_network_share > 0 and mix.in_network_share < 1:
        lines.append(
            f"- At most {100 * mix.in_network_share:.0f}% of a page comes from accounts you follow and "
            f"at most {100 * mix.out_network_share:.0f}% from others; when the posts within these shares cannot "
            "fill a page (too few from one side), the best-scoring remaining posts fill it."
        )
    if policy.ranker == "heads" and mix.explore_share > 0:
        lines.append(
            f"- About {100 * mix.explore_share:.0f}% of the places on a page (rounded down) go to posts that few "
            "people have seen yet and that would not have made the page on their score, so that new posts gather "
            "the evidence they need; which ones is drawn at random, favouring posts whose engagement so far could "
            "still turn out high (Thompson sampling), and each says so in its explanation."
        )
    lines.append("")
    lines.append("## Your options")
    lines.append(
        "- You can switch to another feed at any time, including one that is not based on profiling "
        '("Following, newest first").'
    )
    if policy.bounds:
        rng = ", ".join(f"{h} {lo:g}..{hi:g}" for h, (lo, hi) in policy.bounds.items())
        lines.append(f"- You can change these weights within the platform's limits: {rng}.")
    lines.append("- You can mute words and accounts, and ask to see less of any post.")
    lines.extend(_ad_load_lines(policy.ads))
    lines.append("")
    lines.append(f"Uses your activity to personalise: {'yes' if policy.profiling else 'no'}.")
    return "\n".join(lines)


def _ad_load_lines(load: AdLoad) -> list[str]:
    """The statement's lines on ads in this feed (the ad load)."""
    if load.max_share <= 0:
        return ["", "## Ads", "- This feed shows no ads."]
    return [
        "",
        "## Ads",
        f"- Ads are labelled, with who paid for them. At most {100 * load.max_share:.0f}% of a page's places are ads, "
        f"none above place {load.first_position}, with at least {load.min_gap} posts between two ads and at most one "
        "ad per advertiser on a page.",
        '- Each ad says why you see it ("why this ad"). You can hide an advertiser, and turn off ads based on your '
        "interests and activity: you then see only ads that use no profiling.",
    ]


def _adjustment_lines(policy: Policy) -> list[str]:
    """The statement's adjustments, one line each; the multipliers apply only to predicted scores
    (``ranker = "heads"``), author diversity and the see-less fatigue to every policy."""
    adj, lines = policy.adjustments, []
    if policy.ranker == "heads":
        if adj.out_of_network_factor != 1.0:
            lines.append(f"- Posts from accounts you do not follow are multiplied by {adj.out_of_network_factor:g}.")
        if adj.reply_factor != 1.0:
            lines.append(f"- Replies are multiplied by {adj.reply_factor:g}.")
    if adj.author_diversity_decay < 1.0:
        lines.append(
            f"- Each further post by the same author on a page is multiplied down (by "
            f"{adj.author_diversity_decay:g} per repeat, never below {adj.author_diversity_floor:g}) "
            "so that no single account dominates."
        )
    if policy.ranker == "heads" and adj.divisiveness_penalty > 0:
        lines.append(
            f"- Posts that stoke hostility between groups lose up to {100 * adj.divisiveness_penalty:.0f}% of their "
            "score."
        )
    if policy.ranker == "heads" and adj.bridging_boost > 0:
        lines.append(
            f"- Posts liked by people on different sides gain up to {100 * adj.bridging_boost * 0.5:.0f}% (bridging)."
        )
    if policy.ranker != "recency" and policy.breadth.calibration > 0:
        b = policy.breadth
        lines.append(
            "- Breadth: each page is put together to match the mix of topics you engage with, so that your top topic "
            "does not crowd out the others you also care about. Your mix is the share of your recent likes, reposts "
            "and replies that went to each topic; while you have few of those, it leans on the topics you picked and "
            f"those the accounts you follow post about (as much as {b.prior_strength:g} likes would weigh). A post "
            "whose topic would otherwise have too small a share of the page can be put on it instead of posts that "
            f"scored higher, if it is among your {b.pool} best-scoring posts. How much the mix counts against the "
            f"score is set to {b.calibration:g}, on a scale from 0 (the score alone) to 1 (the mix alone). "
            + (
                "The page is then shown in the order of the scores: a post put on it for breadth sits below the "
                "posts that outscored it. "
                if b.order == "score"
                else ""
            )
            + (
                f"Posts that may stoke hostility between groups (divisiveness above {b.max_divisiveness:g} on a 0-1 "
                "scale) are never put on a page for breadth and count as outside your mix: such a post is shown "
                "only when its score outweighs how far it would take the page from your mix. "
                if b.max_divisiveness < 1.0
                else ""
            )
            + "Each post placed this way says so in its explanation (the method: calibrated recommendations, "
            "Steck 2018)."
        )
    fat = policy.fatigue
    if fat.filter_days > 0:
        lines.append(
            f"- After you ask to see less of an author, their posts are hidden for {fat.filter_days:g} "
            f"days, then shown less for {fat.discount_days:g} days."
        )
    return lines
