"""The trend rules written as data (``policies/trends/default.toml``): the windows a term's rise is measured over,
the score's thresholds and the anti-manipulation rules (account age, one post per account and window, accounts
created together, accounts posting in lockstep). Every key is required and an unknown key is refused naming the
file, the section and the key, as for feed policies (``feed.policy.PolicySection``, ``PolicyError``)."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from glassfeed.feed.policy import PolicyError, PolicySection

#: The packaged rules: ``policies/trends/<name>.toml``.
TRENDS_DIR = ("policies", "trends")
DEFAULT = "default"


class Windows(PolicySection):
    """What "recent" and "usual" mean."""

    recent_hours: float = Field(gt=0, le=24 * 7, description="a trend is measured over the last this many hours")
    baseline_days: float = Field(gt=0, le=90, description="the term's usual rate is read from these days before")
    min_expected: float = Field(gt=0, description="the usual rate's floor, in posts per recent window")


class Score(PolicySection):
    """The thresholds a counted rise must pass."""

    min_z: float = Field(ge=0, description="(counted - expected) / sqrt(expected) at least this")
    min_ratio: float = Field(ge=1, description="counted / expected at least this")
    min_authors: int = Field(ge=1, description="distinct counted accounts at least this")


class Authors(PolicySection):
    """Who counts, and how much."""

    min_account_age_days: float = Field(ge=0, description="younger accounts' posts are not counted")
    max_posts_per_window: int = Field(ge=1, description="an account counts at most this many posts of one term")


class Cohorts(PolicySection):
    """Accounts created together count as one when they are far more of a term's authors than chance predicts."""

    bin_hours: float = Field(gt=0, le=24 * 30, description="accounts created in the same span of this many hours")
    min_accounts: int = Field(ge=2, description="a cohort needs at least this many of a term's authors")
    excess: float = Field(ge=1, description="... and this many times its share of all accounts")


class Lockstep(PolicySection):
    """Accounts posting the same text in a tight run count as one."""

    max_gap_s: float = Field(gt=0, le=86400, description="each post within this of the previous one of the run")
    min_accounts: int = Field(ge=2, description="a run needs at least this many accounts")


class Publish(PolicySection):
    """What an answer lists."""

    default_limit: int = Field(ge=1, description="trends listed when a request names no limit")
    max_limit: int = Field(ge=1, le=1000, description="the most a request may ask for")
    held_back: bool = Field(description="also list terms the rules held back, and why")

    @model_validator(mode="after")
    def _default_within(self) -> Publish:
        if self.default_limit > self.max_limit:
            raise ValueError(f"default_limit {self.default_limit} is above max_limit {self.max_limit}")
        return self


class TrendPolicy(PolicySection):
    """One trend rules file."""

    name: str = Field(min_length=1, max_length=64)
    description: str
    windows: Windows
    score: Score
    authors: Authors
    cohorts: Cohorts
    lockstep: Lockstep
    publish: Publish

    @property
    def recent_s(self) -> float:
        return self.windows.recent_hours * 3600.0

    @property
    def baseline_s(self) -> float:
        return self.windows.baseline_days * 86400.0


#: The policy's tables (the keys whose values are sections).
_SECTIONS = frozenset(
    k
    for k, f in TrendPolicy.model_fields.items()
    if isinstance(f.annotation, type) and issubclass(f.annotation, PolicySection)
)


def parse_trend_policy(body: Any, origin: str = "trends") -> TrendPolicy:
    """``body`` (the TOML file's dict) as a ``TrendPolicy``; a ``PolicyError`` naming ``origin``, the section and
    the key of the first problem (and how many more there are)."""
    try:
        return TrendPolicy.model_validate(body)
    except ValidationError as e:
        err = e.errors()[0]
        loc = [str(p) for p in err["loc"]]
        section = bool(loc) and loc[0] in _SECTIONS
        where = f"[{loc[0]}] {'.'.join(loc[1:])}".rstrip() if section else ".".join(loc) or "file"
        if err["type"] == "extra_forbidden":
            model = TrendPolicy
            for part in loc[:-1]:
                model = model.model_fields[part].annotation  # type: ignore[assignment]
            reason = f"unknown key; expected one of {', '.join(model.model_fields)}"
        else:
            reason = str(err["msg"]).removeprefix("Value error, ")
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise PolicyError(f"{origin}: {where}: {reason}{more}") from None


def load_trend_policy(path: str | Path | None = None) -> TrendPolicy:
    """The rules at ``path`` (a TOML file; empty or None: the packaged ``policies/trends/default.toml``)."""
    if path:
        p = Path(path)
        origin = str(p)
        try:
            text = p.read_text("utf-8")
        except FileNotFoundError:
            raise PolicyError(f"{origin}: no such trend rules file") from None
    else:
        origin = f"{DEFAULT}.toml"
        text = resources.files("glassfeed").joinpath(*TRENDS_DIR, origin).read_text("utf-8")
    try:
        body = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(f"{origin}: not valid TOML: {e}") from None
    return parse_trend_policy(body, origin)


def describe(policy: TrendPolicy) -> str:
    """The plain-language statement of how trends are chosen, generated from the rules."""
    w, s, a, c, lk = policy.windows, policy.score, policy.authors, policy.cohorts, policy.lockstep
    span = "on the same day (UTC)" if c.bin_hours == 24 else f"within the same {c.bin_hours:g} hours"
    lines = [
        f"# Trends: {policy.description}",
        "",
        "## What a trend is",
        f"- A topic or hashtag whose posts in the last {w.recent_hours:g} hours are far above its own usual rate: the "
        f"posts it had per {w.recent_hours:g} hours over the {w.baseline_days:g} days before (never taken as fewer "
        f"than {w.min_expected:g}).",
        f"- It trends when, after the rules below, it has posts from at least {s.min_authors} accounts, at least "
        f"{s.min_ratio:g} times its usual rate, and a Poisson z-score (counted - usual) / sqrt(usual) of at least "
        f"{s.min_z:g}. Trends are ordered by that z-score.",
        "- Trends are computed for everyone and for each community (from its accounts' posts). They are the same for "
        "everyone who asks: nothing about the reader is used.",
        "",
        "## What is not counted, or counted once",
        f"- Posts from accounts younger than {a.min_account_age_days:g} days when they posted, or of unknown age.",
        f"- More than {a.max_posts_per_window} post(s) of one term by one account in {w.recent_hours:g} hours.",
        f"- Accounts created {span}: when at least {c.min_accounts} of a term's accounts were, and that is at least "
        f"{c.excess:g} times what that day's share of all accounts predicts, they count as one account with one post.",
        f"- Posts with the same text (ignoring case, links, mentions and punctuation), each within {lk.max_gap_s:g} "
        f"seconds of the previous one, from at least {lk.min_accounts} accounts: counted as one.",
        "- Posts removed by moderation.",
        "",
        "## What every trend shows",
        "- How many posts and accounts, how many were counted after the rules, its usual rate and how far above it "
        "it is, since when it is mentioned, and each discount with its reason.",
    ]
    if policy.publish.held_back:
        lines.append("- Terms that would have trended without the rules are listed as held back, with the reasons.")
    return "\n".join(lines)
