"""The moderation policy as data (``policies/moderation/moderation.toml``), typed and checked once at load.

Everything a moderator, an auditor or a notifier needs to read is here: the categories a notice or report can
name, the automated rules per surface, how the review queue is ordered, strikes and the appeal window. Nothing
in the lever's code holds a threshold, factor or window of its own. ``describe`` writes it in plain language.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from glassfeed.state.visibility import ACTIONS, SURFACES

#: What a rule can do: a visibility action (``state.visibility.ACTIONS`` but ``none``) or queue it for review.
RULE_ACTIONS: tuple[str, ...] = (*ACTIONS[1:], "review")
#: Each action in words, for statements of reasons and the plain-language policy.
ACTION_WORDS: dict[str, str] = {
    "none": "left as it was",
    "label": "labelled",
    "downrank": "ranked lower",
    "followers_only": "shown only to its author's followers",
    "interstitial": "shown behind a warning",
    "drop": "removed",
    "review": "queued for a moderator",
}
#: Comparison operators a rule condition can use (``label`` takes ``has``).
OPS: tuple[str, ...] = (">=", ">", "<=", "<", "==", "has")
#: Facts a rule can read besides ``score.<classifier>``.
FACTS: tuple[str, ...] = ("reports", "report_rate", "account_age_days", "strikes", "label")


class PolicyError(ValueError):
    """The moderation policy file is invalid (the message names the key)."""


@dataclass(frozen=True)
class Category:
    key: str
    label: str
    severity: float
    illegal: bool


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: float | str

    def words(self) -> str:
        name = self.field.replace("score.", "the ") + (" score" if self.field.startswith("score.") else "")
        return f"{name} {self.op} {self.value}"


@dataclass(frozen=True)
class Rule:
    name: str
    surfaces: tuple[str, ...]
    when: tuple[Condition, ...]
    action: str
    factor: float
    category: str
    reason: str


@dataclass(frozen=True)
class ModerationPolicy:
    name: str
    description: str
    appeal_window_days: float
    trusted_flaggers: frozenset[str]
    max_text_chars: int
    max_name_chars: int
    categories: dict[str, Category]
    reach_per_follower: float
    trusted_first: bool
    strike_window_days: float
    rules: tuple[Rule, ...]

    def describe(self) -> str:
        """The policy in plain language (DSA Art. 14: terms in clear, plain language, including content
        moderation, algorithmic decision-making and human review, and the internal complaint-handling system)."""
        lines = [f"# Moderation policy: {self.name}", "", self.description, ""]
        lines.append("What you can report or notify us about:")
        for c in self.categories.values():
            kind = "illegal content (a notice under DSA Art. 16)" if c.illegal else "against our terms"
            lines.append(f"- {c.label} — {kind}")
        lines += ["", "Automated rules (each action taken is logged, with a statement of reasons to the author):"]
        for r in self.rules:
            what = f"ranked at {r.factor:g}x its score" if r.action == "downrank" else ACTION_WORDS[r.action]
            cond = " and ".join(c.words() for c in r.when)
            lines.append(f"- {r.name}: when {cond}, the post is {what} on {', '.join(r.surfaces)} ({r.reason}).")
        lines += [
            "",
            "Moderators review notices and reports ordered by severity x expected reach"
            + (", trusted flaggers' notices first." if self.trusted_first else "."),
            f"A removal counts as a strike against its author for {self.strike_window_days:g} days.",
            f"Authors and notifiers can appeal a decision within {self.appeal_window_days:g} days; "
            "another moderator decides the appeal.",
        ]
        return "\n".join(lines)


def _check(cond: bool, key: str, why: str) -> None:
    if not cond:
        raise PolicyError(f"moderation policy: {key}: {why}")


def _condition(raw: Any, key: str) -> Condition:
    _check(isinstance(raw, dict) and {"field", "op", "value"} <= raw.keys(), key, "needs field, op and value")
    field, op, value = raw["field"], raw["op"], raw["value"]
    _check(field in FACTS or (isinstance(field, str) and field.startswith("score.")), key, f"unknown field {field!r}")
    _check(op in OPS, key, f"op must be one of {', '.join(OPS)}")
    if field == "label":
        _check(op == "has" and isinstance(value, str), key, "label conditions are `has` a label name")
    else:
        _check(op != "has" and isinstance(value, int | float), key, "needs a numeric value")
        value = float(value)
    return Condition(field, op, value)


def _get(data: dict[str, Any], dotted: str) -> Any:
    """The value at ``a.b`` (every key is required: the policy file is where each number is written)."""
    v: Any = data
    for part in dotted.split("."):
        _check(isinstance(v, dict) and part in v, dotted, "missing")
        v = v[part]
    return v


def parse_policy(data: dict[str, Any]) -> ModerationPolicy:
    """Check and type a parsed moderation policy (``PolicyError`` names the first bad or missing key)."""
    cats = {}
    for i, c in enumerate(data.get("categories") or []):
        key = f"categories[{i}]"
        _check({"key", "label", "severity", "illegal"} <= c.keys(), key, "needs key, label, severity, illegal")
        _check(0.0 <= float(c["severity"]) <= 1.0, key, "severity must be in [0, 1]")
        cats[c["key"]] = Category(c["key"], c["label"], float(c["severity"]), bool(c["illegal"]))
    _check(bool(cats), "categories", "at least one category")
    rules = []
    for i, r in enumerate(data.get("rules") or []):
        key = f"rules[{i}]"
        _check(r.get("action") in RULE_ACTIONS, key, f"action must be one of {', '.join(RULE_ACTIONS)}")
        _check(
            {"name", "surfaces", "when", "action", "category", "reason"} <= r.keys(),
            key,
            "needs name, surfaces, when, action, category and reason",
        )
        surfaces = tuple(r["surfaces"])
        _check(all(s in SURFACES for s in surfaces), key, f"surfaces must be among {', '.join(SURFACES)}")
        factor = float(r.get("factor", 1.0))
        _check(r["action"] != "downrank" or 0.0 < factor < 1.0, key, "a downrank needs a factor in (0, 1)")
        _check(r["category"] in cats, key, "category must be one of the policy's categories")
        when = tuple(_condition(c, f"{key}.when[{j}]") for j, c in enumerate(r["when"]))
        _check(bool(when), key, "at least one condition")
        rules.append(Rule(str(r["name"]), surfaces, when, r["action"], factor, r["category"], str(r["reason"])))
    window = float(_get(data, "notices.appeal_window_days"))
    _check(window >= 183, "notices.appeal_window_days", "DSA Art. 20 asks for at least six months (183 days)")
    return ModerationPolicy(
        name=str(_get(data, "name")),
        description=str(_get(data, "description")),
        appeal_window_days=window,
        trusted_flaggers=frozenset(e.lower() for e in _get(data, "notices.trusted_flaggers")),
        max_text_chars=int(_get(data, "notices.max_text_chars")),
        max_name_chars=int(_get(data, "notices.max_name_chars")),
        categories=cats,
        reach_per_follower=float(_get(data, "queue.reach_per_follower")),
        trusted_first=bool(_get(data, "queue.trusted_first")),
        strike_window_days=float(_get(data, "strikes.window_days")),
        rules=tuple(rules),
    )


def load_moderation_policy(path: str | Path | None = None) -> ModerationPolicy:
    """The policy at ``path`` (a TOML file), or the packaged ``policies/moderation/moderation.toml``."""
    if path is None:
        text = resources.files("glassfeed").joinpath("policies/moderation/moderation.toml").read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    return parse_policy(tomllib.loads(text))
