"""Targeting: what a campaign may ask for (``refusals``), and whom it matches (``Audience``).

Refused, each with the field and the rule: a targeting parameter that is a special category of personal data
(a field the ad policy lists, e.g. ``religion``), a topic the platform marks sensitive (health, politics, ... as
interests), any parameter the policy does not know, and the minors' age band. A person's side: their profile
(``prefs["profile"]``: country, region, languages, birth year, all declared by them), their interests (picked at
sign-up and "more of" topics) and their ad settings (``prefs["ads"]``: ``personalised`` false turns off every
profiling-based parameter for them; ``hidden_advertisers``). People known to be minors, and people who turned
personalisation off, match only campaigns whose targeting uses no profiling parameter; their ads say so."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from glassfeed.ads.campaigns import AGE_BANDS, Campaign, TargetingSpec
from glassfeed.ads.policy import TARGETING_FIELDS, AdPolicy
from glassfeed.state import ServingState

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_REGION = re.compile(r"^[A-Z]{2}-[A-Z0-9]{1,3}$")
_LANG = re.compile(r"^[a-z]{2}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")
_TOPIC = re.compile(r"^[a-z0-9_]{1,64}$")


def refusals(spec: TargetingSpec, policy: AdPolicy) -> list[tuple[str, str]]:
    """Every reason this targeting is refused, as ``(field, reason)`` (empty: accepted)."""
    out: list[tuple[str, str]] = []
    for key in sorted((spec.model_extra or {}).keys()):
        cat = policy.sensitive_field(key)
        if cat is not None:
            out.append(
                (
                    f"targeting.{key}",
                    f"targeting by {policy.special_categories[cat].words} is not allowed: it is a special category of "
                    "personal data (DSA Art. 26(3))",
                )
            )
        else:
            out.append(
                (f"targeting.{key}", f"unknown targeting parameter; expected one of {', '.join(TARGETING_FIELDS)}")
            )
    for i, c in enumerate(spec.countries):
        if not _COUNTRY.match(c):
            out.append((f"targeting.countries.{i}", "an ISO 3166-1 alpha-2 code in capitals, e.g. DE"))
    for i, r in enumerate(spec.regions):
        if not _REGION.match(r):
            out.append((f"targeting.regions.{i}", "an ISO 3166-2 code, e.g. DE-BE"))
    for i, lang in enumerate(spec.languages):
        if not _LANG.match(lang):
            out.append((f"targeting.languages.{i}", "an ISO 639-1 code in lower case, e.g. de"))
    for i, t in enumerate(spec.topics):
        if not _TOPIC.match(t):
            out.append((f"targeting.topics.{i}", "a topic name: lower-case letters, digits and _ (1-64)"))
            continue
        cat = policy.sensitive_topic(t)
        if cat is not None:
            out.append(
                (
                    f"targeting.topics.{i}",
                    f"the topic {t!r} reveals {policy.special_categories[cat].words}, a special category of personal "
                    "data: it may not be used for targeting (DSA Art. 26(3))",
                )
            )
    for i, band in enumerate(spec.age_bands):
        if band not in AGE_BANDS:
            out.append((f"targeting.age_bands.{i}", f"expected one of {', '.join(AGE_BANDS)}"))
        elif _band_low(band) < policy.targeting.adult_age:
            out.append(
                (
                    f"targeting.age_bands.{i}",
                    f"ads based on profiling may not be shown to minors (under {policy.targeting.adult_age}; DSA Art. "
                    "28(2))",
                )
            )
    if len(spec.custom_audience) > policy.targeting.max_custom_audience:
        out.append(("targeting.custom_audience", f"at most {policy.targeting.max_custom_audience} hashed ids"))
    for i, h in enumerate(spec.custom_audience[:1000]):
        if not _HASH.match(h):
            out.append((f"targeting.custom_audience.{i}", "SHA-256 of an account id, 64 lower-case hex digits"))
            break
    return out


def _band_low(band: str) -> int:
    return int(band.rstrip("+").split("-")[0])


def age_band(birth_year: int | None, now: float) -> str | None:
    """A person's age band from their declared birth year (None: unknown). Age is counted in whole years by
    calendar year, which may be one year high before the birthday: bands are coarse, and a person under the adult
    age by this count is never older than it."""
    if birth_year is None:
        return None
    age = time.gmtime(now).tm_year - int(birth_year)
    for band in reversed(AGE_BANDS):
        if age >= _band_low(band):
            return band
    return "minor"


def hashed_id(user_id: str) -> str:
    """How an advertiser's custom audience names a person: SHA-256 of the account id (hex)."""
    return hashlib.sha256(user_id.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Person:
    """What targeting may know of one person when an ad is chosen for them."""

    user: int
    user_id: str | None
    country: str | None
    region: str | None
    languages: frozenset[str]
    band: str | None
    topics: frozenset[str]
    personalised: bool  # False: their choice, or a minor: only campaigns without profiling parameters
    minor: bool
    hidden_advertisers: frozenset[str]


def person(state: ServingState, user: int, policy: AdPolicy, now: float) -> Person:
    """The person's targeting facts from the serving state (their declared profile, interests and ad settings);
    ``user`` 0 is an anonymous reader: nothing is known."""
    if not user:
        return Person(0, None, None, None, frozenset(), None, frozenset(), False, False, frozenset())
    prefs: Mapping[str, Any] = state.feedback.prefs(user)
    profile = prefs.get("profile") or {}
    ads = prefs.get("ads") or {}
    band = age_band(profile.get("birth_year"), now)
    minor = band is not None and (band == "minor" or _band_low(band) < policy.targeting.adult_age)
    topics = {state.topics.name(t) for t in state.users.interests_of(user)}
    topics |= set(prefs.get("topics_more") or [])
    topics = {t for t in topics if policy.sensitive_topic(t) is None}  # never matched, whatever a campaign says
    return Person(
        user=user,
        user_id=state.users.id_of(user),
        country=profile.get("country"),
        region=profile.get("region"),
        languages=frozenset(profile.get("languages") or []),
        band=band,
        topics=frozenset(topics),
        personalised=bool(ads.get("personalised", True)) and not minor,
        minor=minor,
        hidden_advertisers=frozenset(ads.get("hidden_advertisers") or []),
    )


def matches(
    c: Campaign, p: Person, policy: AdPolicy, lookalike: Mapping[str, frozenset[int]]
) -> list[dict[str, Any]] | None:
    """How ``p`` matches ``c``'s targeting: one entry per parameter (its name, the campaign's values, the person's
    attribute that matched, and whether it is based on profiling), or None when they do not match."""
    if c.advertiser in p.hidden_advertisers:
        return None
    return match_targeting(c.targeting, c.id, p, policy, lookalike)


def match_targeting(
    t: Mapping[str, Any], campaign_id: str, p: Person, policy: AdPolicy, lookalike: Mapping[str, frozenset[int]]
) -> list[dict[str, Any]] | None:
    """``matches`` without the hidden-advertiser check: how ``p`` matches the targeting ``t`` (of campaign
    ``campaign_id``, whose lookalike audience ``lookalike`` holds), or None. Campaigns with the same targeting
    match alike, so placement calls this once per distinct targeting (``ads.book``)."""
    if not t:  # untargeted: everyone matches, on nothing
        return []
    profiling = policy.targeting.profiling
    if not p.personalised and any(k in profiling for k in t):
        return None
    out: list[dict[str, Any]] = []
    if t.get("countries"):
        if p.country not in t["countries"]:
            return None
        out.append(_why("countries", t["countries"], p.country, profiling))
    if t.get("languages"):
        common = sorted(p.languages & set(t["languages"]))
        if not common:
            return None
        out.append(_why("languages", t["languages"], common, profiling))
    if t.get("regions"):
        if p.region not in t["regions"]:
            return None
        out.append(_why("regions", t["regions"], p.region, profiling))
    if t.get("age_bands"):
        if p.band not in t["age_bands"]:
            return None
        out.append(_why("age_bands", t["age_bands"], p.band, profiling))
    if t.get("topics"):
        common = sorted(p.topics & set(t["topics"]))
        if not common:
            return None
        out.append(_why("topics", t["topics"], common, profiling))
    if t.get("lookalike_of"):
        if p.user not in lookalike.get(campaign_id, frozenset()):
            return None
        out.append(_why("lookalike_of", t["lookalike_of"], "you follow this account or people like you do", profiling))
    if t.get("custom_audience"):
        if p.user_id is None or hashed_id(p.user_id) not in set(t["custom_audience"]):
            return None
        out.append(_why("custom_audience", "the advertiser's list", "your account is on it", profiling))
    return out


def _why(name: str, wanted: Any, yours: Any, profiling: tuple[str, ...]) -> dict[str, Any]:
    return {"parameter": name, "campaign": wanted, "you": yours, "profiling": name in profiling}


def lookalike_audience(state: ServingState, account: int, share: float) -> frozenset[int]:
    """The followers of ``account`` and the ``share`` of everyone else whose followees overlap most with theirs:
    each account's weight is the share of the followers following it, and a person's score is the mean weight of
    the accounts they follow (co-follow similarity, computed once per campaign load, not per request)."""
    n = state.users.n + 1
    rows, dst = state.graph.follow_pairs(np.arange(1, n, dtype=np.int64))
    src = rows + 1  # follow_pairs numbers the rows of its batch: user idx 1..n-1
    if not len(src):
        return frozenset()
    m = sp.csr_matrix((np.ones(len(src), np.float32), (src, dst)), shape=(n, n))
    followers = np.flatnonzero(np.asarray(m[:, account].todense()).ravel())
    if not len(followers):
        return frozenset()
    weight = np.asarray(m[followers].sum(axis=0)).ravel() / len(followers)
    weight[account] = 0.0
    deg = np.asarray(m.sum(axis=1)).ravel()
    score = np.asarray(m @ weight).ravel() / np.maximum(deg, 1.0)
    score[followers] = -1.0
    score[account] = -1.0
    others = np.flatnonzero(score > 0)
    k = round(share * (n - 1 - len(followers)))
    best = others[np.lexsort((others, -score[others]))][:k] if k > 0 else others[:0]
    return frozenset(int(u) for u in np.concatenate([followers, best]))


__all__ = [
    "Person",
    "age_band",
    "hashed_id",
    "lookalike_audience",
    "match_targeting",
    "matches",
    "person",
    "refusals",
]
