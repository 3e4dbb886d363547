"""Policy evaluation: for each notification, whether it is pushed and when, or kept in the inbox only, and the
rule that decided (the "why did I get this?").

In order, per person (each with their version of the policy, ``NotificationPolicy.for_person``):

1. a kind the policy (or the person) does not push stays in the inbox only (``kind_off``);
2. P(open) x the kind's value below the push threshold: inbox only (``below_threshold``);
3. ``immediate`` delivery pushes at once, or at the end of quiet hours (``quiet_hours``); ``digest`` delivery holds
   it for the next digest time outside quiet hours (``digest``);
4. the daily cap, in the person's day: pushes in time order, a digest counting once; past the cap, inbox only
   (``daily_cap``).

Local times come from the person's time zone, with the UTC offset in force at each notification's time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np

from glassfeed.notifications.candidates import Notifications
from glassfeed.notifications.policy import KINDS, NotificationPolicy

DECISIONS: tuple[str, ...] = ("push", "inbox_only")
PUSH, INBOX_ONLY = 0, 1
#: The rule behind each decision (``Schedule.rule`` codes index it).
RULES: tuple[str, ...] = ("immediate", "quiet_hours", "digest", "kind_off", "below_threshold", "daily_cap")
R = {name: i for i, name in enumerate(RULES)}
DAY_MIN = 1440


@dataclass(slots=True)
class Schedule:
    """Per notification: decision (``DECISIONS``), when it is pushed (NaN when not), the rule (``RULES``), and the
    P(open) x value that was compared with the threshold."""

    decision: np.ndarray
    deliver_at: np.ndarray
    rule: np.ndarray
    worth: np.ndarray


def _offset_s(hour: int, z: ZoneInfo) -> float:
    off = datetime.fromtimestamp(hour * 3600, UTC).astimezone(z).utcoffset()
    return off.total_seconds() if off is not None else 0.0


def _offsets(ts: np.ndarray, tz: str) -> np.ndarray:
    """UTC offset in seconds at each time in ``tz`` (computed per distinct hour, so a DST change is honoured)."""
    z = ZoneInfo(tz)
    hours = np.floor(ts / 3600.0).astype(np.int64)
    uniq, inv = np.unique(hours, return_inverse=True)
    return np.array([_offset_s(h, z) for h in uniq.tolist()], np.float64)[inv]


def _next_allowed(local_min: np.ndarray, pol: NotificationPolicy) -> np.ndarray:
    """Minutes to wait from each local minute of the day until delivery is allowed: 0 for immediate delivery
    outside quiet hours, else until quiet hours end; for digests, until the next digest time outside them."""
    if pol.mode == "immediate":
        quiet = pol.in_quiet_hours(local_min)
        return np.where(quiet, (pol.quiet_end - local_min) % DAY_MIN, 0)
    times = np.array([t for t in pol.digest_times if not pol.in_quiet_hours(np.array([t]))[0]], np.int64)
    if not len(times):  # every digest falls in quiet hours: the first one after they end
        times = np.array([pol.quiet_end], np.int64)
    # the next digest at or after each minute, wrapping to tomorrow's first
    at = np.searchsorted(times, local_min, side="left")
    nxt = np.where(at < len(times), times[np.minimum(at, len(times) - 1)], times[0] + DAY_MIN)
    return nxt - local_min


def schedule(
    n: Notifications,
    policies: Mapping[int, NotificationPolicy],
    p_open: np.ndarray,
    pushed_before: Mapping[tuple[int, int], int] | None = None,
) -> Schedule:
    """Decide every notification (``policies``: each recipient's policy, already ``for_person``; ``p_open``: the
    open model's or the prior's P(open) per notification; ``pushed_before``: pushes already made per (person,
    local day number), counted against the cap)."""
    m = len(n)
    decision = np.full(m, INBOX_ONLY, np.int8)
    deliver_at = np.full(m, np.nan)
    rule = np.zeros(m, np.int8)
    value = np.zeros(m)
    push_ok = np.zeros(m, bool)
    users = n.user
    by_policy: dict[int, list[int]] = {}
    for i, u in enumerate(users.tolist()):
        by_policy.setdefault(id(policies[u]), []).append(i)
    pol_of = {id(p): p for p in policies.values()}
    local_day = np.zeros(m, np.int64)
    for pid, rows_list in by_policy.items():
        pol = pol_of[pid]
        rows = np.asarray(rows_list, np.int64)
        kinds = [KINDS[int(k)] for k in n.kind[rows].tolist()]
        value[rows] = [pol.kinds[k].value for k in kinds]
        on = np.array([pol.kinds[k].push for k in kinds], bool)
        worth = p_open[rows] * value[rows]
        above = worth >= pol.push_threshold
        rule[rows] = np.where(~on, R["kind_off"], np.where(~above, R["below_threshold"], 0))
        ok = on & above
        ts = n.ts[rows]
        off = _offsets(ts, pol.time_zone)
        local_min = np.floor(((ts + off) % 86400.0) / 60.0).astype(np.int64)
        wait = _next_allowed(local_min, pol)
        when = ts + wait * 60.0
        if pol.mode == "digest":  # deliver on the digest minute itself
            when = np.floor(when / 60.0) * 60.0
        deliver_at[rows[ok]] = when[ok]
        rule[rows[ok]] = np.where(
            pol.mode == "digest", R["digest"], np.where(wait[ok] > 0, R["quiet_hours"], R["immediate"])
        )
        local_day[rows] = np.floor((when + _offsets(when, pol.time_zone)) / 86400.0).astype(np.int64)
        push_ok[rows] = ok
    # the daily cap: in time order per person and local day; a digest (one delivery time) counts once
    counts: dict[tuple[int, int], int] = dict(pushed_before or {})
    slots: set[tuple[int, float]] = set()
    for i in sorted(np.flatnonzero(push_ok).tolist(), key=lambda i: (deliver_at[i], i)):
        u = int(users[i])
        day = (u, int(local_day[i]))
        cap = policies[u].daily_cap
        digest = policies[u].mode == "digest"
        slot = (u, float(deliver_at[i]))
        if digest and slot in slots:
            decision[i] = PUSH  # joins a digest already counted
            continue
        if counts.get(day, 0) >= cap:
            rule[i], deliver_at[i] = R["daily_cap"], np.nan
            continue
        counts[day] = counts.get(day, 0) + 1
        slots.add(slot)
        decision[i] = PUSH
    return Schedule(decision, deliver_at, rule, p_open * value)
