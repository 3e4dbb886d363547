"""Retention: drop posts older than a window together with the events on them (``glassfeed prune``, and the
Jetstream consumer every ``[bluesky] prune_interval_s`` when ``[store] retention_days`` is above 0).

One transaction: ``Store.prune_posts`` tombstones the old posts (as an author's erasure does; their change-log
rows make every tailing worker drop them) and deletes their events, and the running totals of what retention
removed are kept in the meta table under ``PRUNED_META_KEY`` (JSON: runs, posts, events by kind, the last run).
Those totals are what audits keep of pruned data (docs/operations.md, "Retention").
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from glassfeed.domain import EventKind
from glassfeed.store.base import Store

#: Meta key of the running totals of what retention removed.
PRUNED_META_KEY = "store.pruned"
DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class PruneReport:
    """One prune: the cutoff (posts created before it went), posts tombstoned now, events deleted by kind."""

    before: float
    posts: int
    events: dict[str, int] = field(default_factory=dict)

    @property
    def events_total(self) -> int:
        return sum(self.events.values())

    def as_dict(self) -> dict[str, Any]:
        return {"before": self.before, "posts": self.posts, "events": self.events_total, "by_kind": self.events}


def prune(store: Store, days: float, *, now: float | None = None) -> PruneReport:
    """Drop the posts created more than ``days`` days before ``now`` (default: the wall clock) with their events,
    in one transaction, and add what went to the totals under ``PRUNED_META_KEY``. ``days`` must be above 0."""
    if not days > 0:
        raise ValueError(f"days must be above 0, not {days!r}")
    at = time.time() if now is None else float(now)
    before = at - days * DAY_S
    with store.transaction() as tx:
        res = store.prune_posts(tx, before)
        events = {_kind_name(k): n for k, n in sorted(res.events.items())}
        report = PruneReport(before=before, posts=len(res.posts), events=events)
        if report.posts or report.events:
            totals = pruned_totals(store)
            by_kind = totals["events"]
            for k, n in events.items():
                by_kind[k] = by_kind.get(k, 0) + n
            totals.update(
                runs=totals["runs"] + 1,
                posts=totals["posts"] + report.posts,
                last={"at": at, **report.as_dict()},
            )
            store.set_meta(tx, PRUNED_META_KEY, json.dumps(totals, sort_keys=True))
    return report


def pruned_totals(store: Store) -> dict[str, Any]:
    """The running totals of what retention removed: ``runs`` (prunes that removed something), ``posts``,
    ``events`` (by kind name) and ``last`` (the newest such run, or ``None``)."""
    raw = store.get_meta(PRUNED_META_KEY)
    base: dict[str, Any] = {"runs": 0, "posts": 0, "events": {}, "last": None}
    return {**base, **json.loads(raw)} if raw else base


def _kind_name(code: int) -> str:
    try:
        return EventKind(code).wire
    except ValueError:
        return str(code)


__all__ = ["DAY_S", "PRUNED_META_KEY", "PruneReport", "prune", "pruned_totals"]
