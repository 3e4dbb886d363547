"""Suggestion policies and the head's settings, written as data.

``policies/suggestions/*.toml``: which generators propose how many candidates, what orders them (the learned head,
or one generator's score) and the fallback while no head is trained, the share of places kept for people outside
the person's community, and the request limits. ``suggest/model.toml``: the head's LightGBM parameters, its
training data (logged suggestions, or the graph holdout while too few are logged) and the link-prediction
evaluation's split. Every key is required and an unknown key is refused
with the file, section and key named, as for feed policies (``feed.policy.PolicyError``).
"""

from __future__ import annotations

import math
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from glassfeed.feed.policy import PolicyError
from glassfeed.suggest.generators import GENERATORS

M = TypeVar("M", bound=BaseModel)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Candidates(_Section):
    """Candidates per person from each generator (0 = off); every generator must be named."""

    common_neighbours: int = Field(ge=0, le=10_000)
    adamic_adar: int = Field(ge=0, le=10_000)
    resource_allocation: int = Field(ge=0, le=10_000)
    follows_you: int = Field(ge=0, le=10_000)
    co_followed: int = Field(ge=0, le=10_000)
    co_engagement: int = Field(ge=0, le=10_000)
    community: int = Field(ge=0, le=10_000)
    contacts: int = Field(ge=0, le=10_000)

    def depth(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in GENERATORS}


class Ranking(_Section):
    by: str = Field(description='"learned" (the P(follow | suggested) head) or a generator name')
    fallback: str = Field(description="the generator whose score orders suggestions while no head is trained")

    @field_validator("by")
    @classmethod
    def _by(cls, v: str) -> str:
        if v != "learned" and v not in GENERATORS:
            raise ValueError(f"{v!r} is not 'learned' or a generator ({', '.join(GENERATORS)})")
        return v

    @field_validator("fallback")
    @classmethod
    def _fallback(cls, v: str) -> str:
        if v not in GENERATORS:
            raise ValueError(f"{v!r} is not a generator ({', '.join(GENERATORS)})")
        return v


class Mix(_Section):
    cross_community_share: float = Field(ge=0, le=1, description="share of places kept for other communities")

    def reserved(self, limit: int) -> int:
        """Places of a list of ``limit`` kept for people outside the person's community (rounded up)."""
        return min(limit, math.ceil(self.cross_community_share * limit - 1e-9))


class Limits(_Section):
    default_limit: int = Field(ge=1)
    max_limit: int = Field(ge=1, le=1000)

    @model_validator(mode="after")
    def _order(self) -> Limits:
        if self.default_limit > self.max_limit:
            raise ValueError("default_limit must not exceed max_limit")
        return self


class SuggestionPolicy(_Section):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    summary: str
    candidates: Candidates
    ranking: Ranking
    mix: Mix
    limits: Limits


class Lightgbm(_Section):
    objective: str = Field(pattern="^binary$")
    learning_rate: float = Field(gt=0, le=1)
    num_leaves: int = Field(ge=2)
    min_data_in_leaf: int = Field(ge=1)
    feature_fraction: float = Field(gt=0, le=1)
    bagging_fraction: float = Field(gt=0, le=1)
    bagging_freq: int = Field(ge=0)
    lambda_l2: float = Field(ge=0)
    num_threads: int = Field(ge=1)
    seed: int
    rounds: int = Field(ge=1)

    def params(self) -> dict[str, Any]:
        """LightGBM's parameter dict (without ``rounds``)."""
        return {**self.model_dump(exclude={"rounds"}), "verbose": -1, "deterministic": True}


class Training(_Section):
    min_logged_impressions: int = Field(ge=1)
    label_window_hours: float = Field(gt=0)
    snapshot_hours: float = Field(gt=0)
    holdout_share: float = Field(gt=0, lt=1)
    max_sources: int = Field(ge=1)
    depth: int = Field(ge=1)
    seed: int


class Evaluation(_Section):
    test_share: float = Field(gt=0, lt=1)
    valid_share: float = Field(gt=0, lt=1)
    sources: int = Field(ge=1)
    depth: int = Field(ge=1)
    ks: tuple[int, ...] = Field(min_length=1)
    chunk: int = Field(ge=1)
    seed: int


class ModelSettings(_Section):
    lightgbm: Lightgbm
    training: Training
    evaluation: Evaluation


def _validated(model: type[M], raw: dict[str, Any], origin: str) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        errs = e.errors()
        err = next((x for x in errs if x["type"] == "extra_forbidden"), errs[0])  # a misspelt key, before "missing"
        loc = [str(p) for p in err["loc"]]
        where = f"[{loc[0]}] {'.'.join(loc[1:])}" if len(loc) > 1 else (loc[0] if loc else "")
        reason = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise PolicyError(f"{origin}: {where}: {reason}") from None


def _parse(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(f"{origin}: not valid TOML: {e}") from None


def parse_policy(text: str, origin: str) -> SuggestionPolicy:
    """A suggestion policy from TOML text; ``PolicyError`` names ``origin``, the section and the key."""
    return _validated(SuggestionPolicy, _parse(text, origin), origin)


def load_policy_file(path: str | Path) -> SuggestionPolicy:
    p = Path(path)
    return parse_policy(p.read_text("utf-8"), p.name)


def builtin_policies() -> dict[str, SuggestionPolicy]:
    """The presets shipped in ``glassfeed/policies/suggestions/*.toml``, by name."""
    folder = resources.files("glassfeed").joinpath("policies", "suggestions")
    out = {}
    for f in sorted(folder.iterdir(), key=lambda f: f.name):
        if f.name.endswith(".toml"):
            pol = parse_policy(f.read_text("utf-8"), f.name)
            out[pol.name] = pol
    return out


def load_model_settings(path: str | Path | None = None) -> ModelSettings:
    """``suggest/model.toml`` (or the file at ``path``)."""
    if path:
        p = Path(path)
        return _validated(ModelSettings, _parse(p.read_text("utf-8"), p.name), p.name)
    text = resources.files("glassfeed").joinpath("suggest", "model.toml").read_text("utf-8")
    return _validated(ModelSettings, _parse(text, "model.toml"), "model.toml")


def describe(policy: SuggestionPolicy) -> str:
    """The policy in plain words, generated from its data."""
    on = [f"{k} ({v})" for k, v in policy.candidates.depth().items() if v > 0]
    lines = [f"# {policy.title}", "", " ".join(policy.summary.split()), ""]
    lines.append(f"- Candidates per person from: {', '.join(on)}.")
    how = "the learned P(follow | suggested) head" if policy.ranking.by == "learned" else policy.ranking.by
    lines.append(f"- Ordered by {how}; by {policy.ranking.fallback} while no head is trained.")
    share = policy.mix.cross_community_share
    if share > 0:
        lines.append(f"- {100 * share:.0f}% of places (rounded up) are kept for people outside your community.")
    lines.append(
        "- Never suggested: you, people you follow, people you blocked or muted and people who blocked you; "
        "contacts only when both of you opted in."
    )
    return "\n".join(lines)
