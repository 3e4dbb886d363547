"""Notification policies as data (``policies/notifications/*.toml``) and a person's settings within their bounds.

A policy says which kinds are pushed at all, each kind's value and prior P(open), how delivery is timed (at once,
or held for digests), quiet hours, a daily cap and the push threshold on P(open) x value. A person may change
the kinds they get pushed, the cap, the digest times, quiet hours and their time zone, within the policy's
``[bounds]`` (``NotificationPolicy.for_person``: a bad value is refused with the field named). ``describe``
writes the policy in plain language.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: Every kind of notification, in a fixed order (the code of a kind is its index).
KINDS: tuple[str, ...] = (
    "reply",
    "mention",
    "quote",
    "follow",
    "like",
    "repost",
    "affinity_post",
    "you_might_like",
    "weekly_digest",
)
KIND_CODE: dict[str, int] = {k: i for i, k in enumerate(KINDS)}
#: Kinds gathered into one notification per post ("A, B and 12 others liked your post").
AGGREGATED: frozenset[str] = frozenset({"like", "repost"})
#: Each kind in words, for explanations and the plain-language statement.
KIND_WORDS: dict[str, str] = {
    "reply": "replies to your posts",
    "mention": "posts that mention you",
    "quote": "quotes of your posts",
    "follow": "new followers",
    "like": "likes of your posts",
    "repost": "reposts of your posts",
    "affinity_post": "new posts from the accounts you interact with most",
    "you_might_like": "posts from outside your network you might like",
    "weekly_digest": "a weekly summary of what you missed from the people you follow",
}
MODES = ("immediate", "digest")


class SettingsRefused(ValueError):
    """A person's notification setting outside the policy's bounds (``field`` names it)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


#: A time of day as settings and policies write it.
TIME_OF_DAY = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


def minutes(hhmm: str, field: str) -> int:
    """Minutes after midnight of an ``"HH:MM"`` time (``TIME_OF_DAY``)."""
    if not TIME_OF_DAY.match(hhmm):
        raise SettingsRefused(field, f"not a time of day HH:MM: {hhmm!r}")
    return int(hhmm[:2]) * 60 + int(hhmm[3:])


def zone(name: str, field: str = "time_zone") -> ZoneInfo:
    """The IANA time zone ``name`` (``SettingsRefused`` for anything else, a folder of the database included)."""
    try:
        if len(name) > 64:  # a file name too long for the zone database, not a zone
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise SettingsRefused(field, f"unknown time zone {name!r} (an IANA name such as Europe/Paris)") from None


@dataclass(frozen=True)
class KindRule:
    push: bool
    value: float
    prior_open: float


@dataclass(frozen=True)
class NotificationPolicy:
    """One policy, or one person's version of it (``for_person``)."""

    name: str
    title: str
    summary: str
    mode: str
    digest_times: tuple[int, ...]  # minutes after midnight, ascending
    quiet_start: int  # minutes after midnight; quiet_start == quiet_end: no quiet hours
    quiet_end: int
    daily_cap: int
    push_threshold: float
    aggregate_window_h: float
    time_zone: str
    kinds: dict[str, KindRule]
    bounds: dict[str, Any]
    adjusted_by_person: bool = False

    def in_quiet_hours(self, minute_of_day: Any) -> Any:
        """Whether each local minute of the day falls in quiet hours (numpy arrays welcome)."""
        s, e = self.quiet_start, self.quiet_end
        if s == e:
            return minute_of_day < 0  # all False, same shape
        if s < e:
            return (minute_of_day >= s) & (minute_of_day < e)
        return (minute_of_day >= s) | (minute_of_day < e)

    def for_person(self, prefs: dict[str, Any] | None) -> NotificationPolicy:
        """This policy with a person's settings applied, each checked against ``[bounds]``; keys: ``kinds_off``,
        ``kinds_on``, ``daily_cap``, ``digest_times``, ``quiet_start``, ``quiet_end``, ``time_zone``,
        ``push_threshold``. Raises ``SettingsRefused`` naming the field."""
        if not prefs:
            return self
        b = self.bounds
        known = {"kinds_off", "kinds_on", "daily_cap", "digest_times", "quiet_start", "quiet_end", "time_zone"}
        if unknown := set(prefs) - known - {"push_threshold"}:
            raise SettingsRefused(sorted(unknown)[0], "unknown setting")
        kinds = dict(self.kinds)
        for k in prefs.get("kinds_off", []):
            if k not in KIND_CODE:
                raise SettingsRefused("kinds_off", f"unknown kind {k!r}; kinds: {', '.join(KINDS)}")
            kinds[k] = replace(kinds[k], push=False)
        for k in prefs.get("kinds_on", []):
            if k not in b["user_may_enable"]:
                raise SettingsRefused("kinds_on", f"{k!r} cannot be turned on under {self.name}")
            kinds[k] = replace(kinds[k], push=True)
        out: dict[str, Any] = {"kinds": kinds, "adjusted_by_person": True}
        if "daily_cap" in prefs:
            lo, hi = b["daily_cap"]
            cap = prefs["daily_cap"]
            if type(cap) is not int or not lo <= cap <= hi:
                raise SettingsRefused("daily_cap", f"must be a whole number in [{lo}, {hi}]")
            out["daily_cap"] = cap
        if "push_threshold" in prefs:
            lo, hi = b["push_threshold"]
            t = prefs["push_threshold"]
            if type(t) not in (int, float) or not lo <= t <= hi:
                raise SettingsRefused("push_threshold", f"must be in [{lo}, {hi}]")
            out["push_threshold"] = float(t)
        if "digest_times" in prefs:
            lo, hi = b["digests_per_day"]
            times = prefs["digest_times"]
            if not isinstance(times, list) or not lo <= len(times) <= hi:
                raise SettingsRefused("digest_times", f"give {lo} to {hi} times of day HH:MM")
            out["digest_times"] = tuple(sorted({minutes(t, "digest_times") for t in times}))
        for key in ("quiet_start", "quiet_end"):
            if key in prefs:
                out[key] = minutes(prefs[key], key)
        if "time_zone" in prefs:
            zone(prefs["time_zone"])
            out["time_zone"] = prefs["time_zone"]
        return replace(self, **out)

    def describe(self) -> str:
        """The policy in plain language (what is pushed, when, and what a person can change)."""

        def hm(m: int) -> str:
            return f"{m // 60:02d}:{m % 60:02d}"

        pushed = [KIND_WORDS[k] for k in KINDS if self.kinds[k].push]
        held = [KIND_WORDS[k] for k in KINDS if not self.kinds[k].push]
        lines = [f"# Notifications: {self.title} ({self.name})", "", self.summary, ""]
        lines.append("Every notification is in your inbox as soon as it exists. What may be pushed to you:")
        lines += [f"- {w}" for w in pushed] or ["- nothing"]
        if held:
            lines.append("Never pushed, only in your inbox: " + "; ".join(held) + ".")
        if self.mode == "digest":
            lines.append(
                "They are gathered and pushed in digests at " + ", ".join(hm(t) for t in self.digest_times) + "."
            )
        else:
            lines.append("They are pushed as soon as they exist.")
        if self.quiet_start != self.quiet_end:
            lines.append(f"Nothing is pushed between {hm(self.quiet_start)} and {hm(self.quiet_end)} (your time).")
        else:
            lines.append("There are no quiet hours.")
        lines.append(f"At most {self.daily_cap} pushes a day.")
        if self.push_threshold > 0:
            lines.append(
                "A notification is pushed only when the chance you open it, times how much it matters to you, is at "
                f"least {self.push_threshold:g}."
            )
        lines.append(
            f"You can change: the kinds pushed, the daily cap ({self.bounds['daily_cap'][0]}-"
            f"{self.bounds['daily_cap'][1]}), digest times, quiet hours and your time zone."
        )
        return "\n".join(lines)


def _check(cond: bool, where: str, why: str) -> None:
    if not cond:
        raise ValueError(f"notification policy {where}: {why}")


def parse_policy(data: dict[str, Any], where: str = "<dict>") -> NotificationPolicy:
    """Check and type one parsed policy file (every key required; ``ValueError`` names the bad one)."""
    try:
        d, kinds, b = data["delivery"], data["kinds"], data["bounds"]
        _check(d["mode"] in MODES, where, f"delivery.mode must be one of {', '.join(MODES)}")
        _check(set(kinds) == set(KINDS), where, f"[kinds] must name exactly: {', '.join(KINDS)}")
        rules = {k: KindRule(bool(v["push"]), float(v["value"]), float(v["prior_open"])) for k, v in kinds.items()}
        _check(all(0 <= r.prior_open <= 1 and r.value >= 0 for r in rules.values()), where, "bad value or prior_open")
        _check(int(d["daily_cap"]) >= 0, where, "daily_cap must be >= 0")
        zone(d["time_zone"], "delivery.time_zone")
        pol = NotificationPolicy(
            name=str(data["name"]),
            title=str(data["title"]),
            summary=str(data["summary"]),
            mode=d["mode"],
            digest_times=tuple(sorted({minutes(t, "delivery.digest_times") for t in d["digest_times"]})),
            quiet_start=minutes(d["quiet_start"], "delivery.quiet_start"),
            quiet_end=minutes(d["quiet_end"], "delivery.quiet_end"),
            daily_cap=int(d["daily_cap"]),
            push_threshold=float(d["push_threshold"]),
            aggregate_window_h=float(d["aggregate_window_h"]),
            time_zone=str(d["time_zone"]),
            kinds=rules,
            bounds={
                "daily_cap": list(b["daily_cap"]),
                "digests_per_day": list(b["digests_per_day"]),
                "push_threshold": list(b["push_threshold"]),
                "user_may_enable": list(b["user_may_enable"]),
            },
        )
    except KeyError as e:
        raise ValueError(f"notification policy {where}: missing key {e}") from None
    except SettingsRefused as e:
        raise ValueError(f"notification policy {where}: {e}") from None
    _check(pol.mode != "digest" or bool(pol.digest_times), where, "a digest policy needs digest_times")
    _check(pol.aggregate_window_h > 0, where, "aggregate_window_h must be > 0")
    return pol


def load_notification_policies(folder: str | Path | None = None) -> dict[str, NotificationPolicy]:
    """Every ``*.toml`` policy in ``folder`` (default: the packaged ``policies/notifications``), by name."""
    if folder is None:
        files = [
            (f.name, f.read_text("utf-8"))
            for f in resources.files("glassfeed").joinpath("policies/notifications").iterdir()
            if f.name.endswith(".toml")
        ]
    else:
        files = [(f.name, f.read_text("utf-8")) for f in sorted(Path(folder).glob("*.toml"))]
    out = {}
    for name, text in sorted(files):
        pol = parse_policy(tomllib.loads(text), name)
        out[pol.name] = pol
    return out
