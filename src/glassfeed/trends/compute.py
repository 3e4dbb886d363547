"""Trends: the terms (topics and hashtags) mentioned far above their own usual rate, after the anti-manipulation
rules of a ``TrendPolicy``, each with its explanation. Batch-first: one pass of array operations over every (post,
term) row of the windows, whatever the number of terms.

For one scope (every account, or the accounts of one community) and a time ``now``:

1. Rows: the (post, term) rows of posts created in the baseline and recent windows, less posts removed by
   moderation; for a community, only posts by its accounts.
2. Rules, on the recent window ``(now - recent, now]``, in this order:
   - account age: posts whose account was younger than ``min_account_age_days`` when it posted (or of unknown
     age) are not counted;
   - one post per account: an account counts at most ``max_posts_per_window`` posts of a term;
   - cohorts: the term's accounts created in the same ``bin_hours`` span (a UTC day), when there are at least
     ``min_accounts`` of them and ``excess`` times what that span's share of all the scope's accounts predicts,
     count as one account with one post;
   - lockstep: among the rest, runs of posts of the term with the same normalised text (``index.normalise_text``),
     each within ``max_gap_s`` of the previous one, from at least ``min_accounts`` accounts, count as one.
3. Usual rate: the term's posts in the baseline window before the recent one, by accounts old enough, each account
   counted at most ``max_posts_per_window`` times per window-long slot, divided by the number of windows the
   history covers; never below ``min_expected``.
4. Score: the Poisson z-score ``(counted - expected) / sqrt(expected)``; a trend has ``z >= min_z``,
   ``counted / expected >= min_ratio`` and at least ``min_authors`` accounts counted. Trends are ranked by z.

A term that would have passed on its raw counts (every post, no rule) but does not after the rules is "held back",
listed with what was discounted and which threshold it missed (``[publish] held_back``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from glassfeed.state import ServingState
from glassfeed.state.counters import C
from glassfeed.trends.index import TermIndex
from glassfeed.trends.policy import TrendPolicy

#: Engagement counters summed into a trend's "engagements" (``state.counters.totals``: all-time counts per post).
_ENGAGEMENT = np.array([C["like"], C["repost"], C["reply"]])


@dataclass(frozen=True, slots=True)
class TrendList:
    """The answer for one scope at one time: ``trends`` and ``held_back`` as JSON-ready dicts, best first."""

    scope: str
    community: int | None
    now: float
    recent_hours: float
    baseline_hours: float
    policy: str
    trends: list[dict[str, Any]]
    held_back: list[dict[str, Any]]
    notice: str | None

    def as_dict(self, limit: int) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "community": self.community,
            "now": self.now,
            "recent_hours": self.recent_hours,
            "baseline_hours": round(self.baseline_hours, 2),
            "policy": self.policy,
            "trends": self.trends[:limit],
            "held_back": self.held_back[:limit],
            "notice": self.notice,
        }


# --------------------------------------------------------------------------- grouping helpers
def _groups(*cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows grouped by equal values of ``cols``: (order that sorts them, group id of each sorted row, groups)."""
    n = len(cols[0])
    if not n:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0
    order = np.lexsort(cols[::-1])
    new = np.zeros(n, np.bool_)
    new[0] = True
    for c in cols:
        s = c[order]
        new[1:] |= s[1:] != s[:-1]
    gid = np.cumsum(new) - 1
    return order, gid, int(gid[-1]) + 1


def _distinct_per(term: np.ndarray, who: np.ndarray, n_terms: int) -> np.ndarray:
    """Distinct values of ``who`` per term."""
    if not len(term):
        return np.zeros(n_terms, np.int64)
    order, gid, ng = _groups(term, who)
    first = np.zeros(ng, np.int64)
    first[gid] = term[order]
    return np.bincount(first, minlength=n_terms)


def _count(term: np.ndarray, n_terms: int, weights: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(term, weights=weights, minlength=n_terms)


def _utc(ts: float, fmt: str = "%Y-%m-%d %H:%M UTC") -> str:
    return time.strftime(fmt, time.gmtime(ts))


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} seconds"
    if seconds < 7200:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds / 3600:.1f} hours"


def _hours(h: float) -> str:
    return f"{h:g} hour{'' if h == 1 else 's'}"


# --------------------------------------------------------------------------- the computation
@dataclass(slots=True)
class _Groups:
    """Collapsed groups (cohorts or lockstep runs) of one rule: per group its term, posts, accounts, first and last
    post time and a key (the cohort's span start; the run's text hash)."""

    term: np.ndarray
    posts: np.ndarray
    accounts: np.ndarray
    first: np.ndarray
    last: np.ndarray
    key: np.ndarray


def _collapse(
    term: np.ndarray, key: np.ndarray, created: np.ndarray, author: np.ndarray, by: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, np.ndarray, _Groups]:
    """Rows grouped by equal values of ``by`` (each group within one term): (group id per row, distinct accounts
    per group, the groups' facts)."""
    order, gid, ng = _groups(*by)
    row_gid = np.empty(len(term), np.int64)
    row_gid[order] = gid
    accounts = _distinct_per(row_gid, author, ng)
    g_term = np.zeros(ng, np.int64)
    g_term[row_gid] = term
    g_key = np.zeros(ng, np.int64)
    g_key[row_gid] = key
    first = np.full(ng, np.inf)
    np.minimum.at(first, row_gid, created)
    last = np.full(ng, -np.inf)
    np.maximum.at(last, row_gid, created)
    return row_gid, accounts, _Groups(g_term, np.bincount(row_gid, minlength=ng), accounts, first, last, g_key)


def compute_trends(
    state: ServingState,
    index: TermIndex,
    policy: TrendPolicy,
    now: float,
    community: int | None = None,
) -> TrendList:
    """The trends of one scope at ``now`` (see the module docstring); ``index`` is brought up to date first."""
    index.update(state)
    R, B = policy.recent_s, policy.baseline_s
    start = now - R - B
    rows = index.rows(start, now)
    posts = state.posts
    author = posts.author(rows.post)
    keep = ~posts.removed(rows.post)
    scope_users = np.arange(1, state.users.n + 1, dtype=np.int64)
    if community is not None:
        keep &= state.users.community(author) == community
        scope_users = scope_users[state.users.community(scope_users) == community]
    rows, author = rows.take(keep), author[keep]
    covered = (now - R) - max(start, index.oldest)
    windows = max(covered / R, 1.0)
    name = "global" if community is None else "community"
    base = TrendList(
        name, community, now, policy.windows.recent_hours, max(covered, 0.0) / 3600, policy.name, [], [], None
    )
    if not len(scope_users):
        return _with_notice(base, f"no accounts in community {community}")
    if not len(rows):
        return _with_notice(base, "no posts with topics or hashtags in the windows")

    terms, t = np.unique(rows.term, return_inverse=True)
    T = len(terms)
    c, a = rows.created, author
    acreated = state.users.created(a)
    aged = (c - acreated) >= policy.authors.min_account_age_days * 86400.0  # NaN (unknown) -> False
    recent = c > now - R
    cap = policy.authors.max_posts_per_window

    # ---- recent window: raw, account age, one post per account per window
    r = np.flatnonzero(recent)
    rt, ra, rc = t[r], a[r], c[r]
    raw_posts = _count(rt, T)
    raw_authors = _distinct_per(rt, ra, T)
    young = ~aged[r]
    young_posts = _count(rt[young], T)
    young_authors = _distinct_per(rt[young], ra[young], T)
    e = np.flatnonzero(~young)
    order = np.lexsort((rc[e], ra[e], rt[e]))  # by term, account, time: each account's first posts first
    st, sa = rt[e][order], ra[e][order]
    new = np.r_[True, (st[1:] != st[:-1]) | (sa[1:] != sa[:-1])] if len(order) else np.zeros(0, np.bool_)
    starts = np.flatnonzero(new)
    kept_sorted = (np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))) < cap
    kept = e[order[kept_sorted]]  # positions in r
    capped_posts = _count(rt[e[order[~kept_sorted]]], T)

    kt, ka, kc = rt[kept], ra[kept], rc[kept]
    kac, kh = acreated[r][kept], rows.text[r][kept]
    kposts = rows.post[r][kept]

    # ---- cohorts: accounts created in the same span, far beyond their share of the scope's accounts
    bin_s = policy.cohorts.bin_hours * 3600.0
    span = np.floor(kac / bin_s).astype(np.int64)
    pop = state.users.created(scope_users)
    pop_span, pop_n = np.unique(np.floor(pop[np.isfinite(pop)] / bin_s).astype(np.int64), return_counts=True)
    pop_total = max(int(pop_n.sum()), 1)
    cohort_row = np.zeros(len(kt), np.bool_)
    cohorts = _no_groups()
    if len(kt):
        row_gid, accounts, facts = _collapse(kt, span, kc, ka, (kt, span))
        authors_t = _distinct_per(kt, ka, T)
        at = np.minimum(np.searchsorted(pop_span, facts.key), max(len(pop_span) - 1, 0))
        share = np.where(pop_span[at] == facts.key, pop_n[at] / pop_total, 0.0) if len(pop_span) else 0.0
        expected = authors_t[facts.term] * share
        flag = (accounts >= policy.cohorts.min_accounts) & (accounts >= policy.cohorts.excess * expected)
        cohort_row = flag[row_gid]
        cohorts = _take(facts, flag)

    # ---- lockstep: the same text in a tight run, from many accounts
    lock_row = np.zeros(len(kt), np.bool_)
    runs = _no_groups()
    rest = np.flatnonzero(~cohort_row)
    if len(rest):
        lt, lh, lc, la = kt[rest], kh[rest], kc[rest], ka[rest]
        o = np.lexsort((lc, lh, lt))
        st, sh, sc = lt[o], lh[o], lc[o]
        new = np.r_[True, (st[1:] != st[:-1]) | (sh[1:] != sh[:-1]) | (np.diff(sc) > policy.lockstep.max_gap_s)]
        run_sorted = np.cumsum(new) - 1
        run = np.empty(len(rest), np.int64)
        run[o] = run_sorted
        row_gid, accounts, facts = _collapse(lt, lh, lc, la, (run,))
        flag = accounts >= policy.lockstep.min_accounts
        lock_row[rest] = flag[row_gid]
        runs = _take(facts, flag)

    # ---- counted: individual posts, plus one per collapsed group
    indiv = ~cohort_row & ~lock_row
    group_t = np.r_[cohorts.term, runs.term].astype(np.int64)
    counted = _count(kt[indiv], T) + _count(group_t, T)
    counted_authors = _distinct_per(kt[indiv], ka[indiv], T) + _count(group_t, T)
    since = np.full(T, np.inf)
    np.minimum.at(since, rt, rc)  # the first mention in the window, counted or not
    engagement = state.counters.totals(kposts)[:, _ENGAGEMENT].sum(axis=1) if len(kposts) else np.zeros(0)
    engagements = _count(kt, T, engagement.astype(np.float64))
    tag_share = _count(rt, T, rows.tag[r].astype(np.float64)) / np.maximum(raw_posts, 1)

    # ---- usual rate: the baseline window, same account rules, per window-long slot
    b = np.flatnonzero(~recent)
    slot = np.floor((now - R - c[b]) / R).astype(np.int64)
    ob = b[aged[b]]
    bslot = slot[aged[b]]
    base_counted = np.zeros(T)
    if len(ob):
        order, gid, ng = _groups(t[ob], a[ob], bslot)
        per = np.minimum(np.bincount(gid, minlength=ng), cap)
        g_term = np.zeros(ng, np.int64)
        g_term[gid] = t[ob][order]
        base_counted = _count(g_term, T, per.astype(np.float64))
    raw_base = _count(t[b], T)
    first_seen = np.full(T, np.inf)
    np.minimum.at(first_seen, t, c)

    floor = policy.windows.min_expected
    expected = np.maximum(base_counted / windows, floor)
    z = (counted - expected) / np.sqrt(expected)
    ratio = counted / expected
    s = policy.score
    ok_authors = counted_authors >= s.min_authors
    ok_z, ok_ratio = z >= s.min_z, ratio >= s.min_ratio
    trending = ok_authors & ok_z & ok_ratio
    raw_expected = np.maximum(raw_base / windows, floor)
    raw_z = (raw_posts - raw_expected) / np.sqrt(raw_expected)
    raw_pass = (raw_authors >= s.min_authors) & (raw_z >= s.min_z) & (raw_posts / raw_expected >= s.min_ratio)
    held = raw_pass & ~trending

    limit = policy.publish.max_limit
    top = np.flatnonzero(trending)
    top = top[np.lexsort((-counted[top], -z[top]))][:limit]
    out_held: np.ndarray = np.zeros(0, np.int64)
    if policy.publish.held_back:
        out_held = np.flatnonzero(held)
        out_held = out_held[np.argsort(-raw_z[out_held], kind="stable")][:limit]

    explain = _Facts(
        policy=policy,
        names=index.names(terms),
        windows=windows,
        covered_s=max(covered, 0.0),
        raw_posts=raw_posts,
        raw_authors=raw_authors,
        young_posts=young_posts,
        young_authors=young_authors,
        capped_posts=capped_posts,
        counted=counted,
        counted_authors=counted_authors,
        expected=expected,
        base_counted=base_counted,
        z=z,
        ratio=ratio,
        since=since,
        first_seen=first_seen,
        now=now,
        engagements=engagements,
        tag_share=tag_share,
        cohorts=cohorts,
        runs=runs,
        ok=(ok_authors, ok_z, ok_ratio),
        community=community,
    )
    trends = [explain.entry(int(i), rank) for rank, i in enumerate(top.tolist(), 1)]
    held_back = [explain.entry(int(i), None) for i in out_held.tolist()]
    notice = None if trends else "nothing is rising fast enough above its usual rate right now"
    return TrendList(
        name,
        community,
        now,
        policy.windows.recent_hours,
        max(covered, 0.0) / 3600,
        policy.name,
        trends,
        held_back,
        notice,
    )


def _with_notice(base: TrendList, notice: str) -> TrendList:
    return TrendList(
        base.scope,
        base.community,
        base.now,
        base.recent_hours,
        base.baseline_hours,
        base.policy,
        [],
        [],
        notice,
    )


def _no_groups() -> _Groups:
    z = np.zeros(0, np.int64)
    return _Groups(z, z, z, np.zeros(0), np.zeros(0), z)


def _take(g: _Groups, m: np.ndarray) -> _Groups:
    return _Groups(g.term[m], g.posts[m], g.accounts[m], g.first[m], g.last[m], g.key[m])


# --------------------------------------------------------------------------- explanations
@dataclass(slots=True)
class _Facts:
    """Every per-term array of one computation, and what turns one term's values into its explanation."""

    policy: TrendPolicy
    names: list[str]
    windows: float
    covered_s: float
    raw_posts: np.ndarray
    raw_authors: np.ndarray
    young_posts: np.ndarray
    young_authors: np.ndarray
    capped_posts: np.ndarray
    counted: np.ndarray
    counted_authors: np.ndarray
    expected: np.ndarray
    base_counted: np.ndarray
    z: np.ndarray
    ratio: np.ndarray
    since: np.ndarray
    first_seen: np.ndarray
    now: float
    engagements: np.ndarray
    tag_share: np.ndarray
    cohorts: _Groups
    runs: _Groups
    ok: tuple[np.ndarray, np.ndarray, np.ndarray]
    community: int | None

    def _discounted(self, i: int) -> list[dict[str, Any]]:
        p = self.policy
        out: list[dict[str, Any]] = []
        yp, ya = int(self.young_posts[i]), int(self.young_authors[i])
        if yp:
            out.append(
                {
                    "rule": "account_age",
                    "posts": yp,
                    "accounts": ya,
                    "counted_as": 0,
                    "reason": f"{yp} post{'s' * (yp != 1)} from {ya} account{'s' * (ya != 1)} younger than "
                    f"{p.authors.min_account_age_days:g} days (or of unknown age) not counted",
                }
            )
        cp = int(self.capped_posts[i])
        if cp:
            most = p.authors.max_posts_per_window
            out.append(
                {
                    "rule": "posts_per_account",
                    "posts": cp,
                    "accounts": None,
                    "counted_as": 0,
                    "reason": f"{cp} further post{'s' * (cp != 1)} by accounts that had already posted it not counted "
                    f"(each account counts at most {most} per {_hours(p.windows.recent_hours)})",
                }
            )
        bin_s = p.cohorts.bin_hours * 3600.0
        day = p.cohorts.bin_hours == 24
        for g in np.flatnonzero(self.cohorts.term == i).tolist():
            n, k = int(self.cohorts.posts[g]), int(self.cohorts.accounts[g])
            t0 = float(self.cohorts.key[g]) * bin_s
            when = f"on {_utc(t0, '%Y-%m-%d')}" if day else f"within {_hours(p.cohorts.bin_hours)} from {_utc(t0)}"
            out.append(
                {
                    "rule": "cohort",
                    "posts": n,
                    "accounts": k,
                    "counted_as": 1,
                    "created_from": t0,
                    "created_until": t0 + bin_s,
                    "reason": f"{n} posts from {k} accounts created {when} counted as 1",
                }
            )
        for g in np.flatnonzero(self.runs.term == i).tolist():
            n, k = int(self.runs.posts[g]), int(self.runs.accounts[g])
            first, last = float(self.runs.first[g]), float(self.runs.last[g])
            out.append(
                {
                    "rule": "lockstep",
                    "posts": n,
                    "accounts": k,
                    "counted_as": 1,
                    "first": first,
                    "last": last,
                    "reason": f"{n} posts with the same text from {k} accounts within {_span(last - first)} "
                    f"(from {_utc(first)}) counted as 1",
                }
            )
        return out

    def _missed(self, i: int) -> list[str]:
        s = self.policy.score
        ok_authors, ok_z, ok_ratio = (bool(x[i]) for x in self.ok)
        out = []
        if not ok_authors:
            out.append(
                f"{int(self.counted_authors[i])} accounts counted after the rules; at least {s.min_authors} needed"
            )
        if not ok_ratio:
            out.append(f"{self.ratio[i]:.1f}x its usual rate after the rules; at least {s.min_ratio:g}x needed")
        if not ok_z:
            out.append(f"z-score {self.z[i]:.1f} after the rules; at least {s.min_z:g} needed")
        return out

    def entry(self, i: int, rank: int | None) -> dict[str, Any]:
        p = self.policy
        name = self.names[i]
        hashtag = bool(self.tag_share[i] >= 0.5)
        display = f"#{name}" if hashtag else name
        counted, authors = int(self.counted[i]), int(self.counted_authors[i])
        posts, expected = int(self.raw_posts[i]), float(self.expected[i])
        since, first_seen = float(self.since[i]), float(self.first_seen[i])
        is_new = first_seen > self.now - p.recent_s
        discounted = self._discounted(i)
        recent = _hours(p.windows.recent_hours)
        baseline_days = self.covered_s / 86400.0
        usual = (
            f"{expected:.1f} expected from the previous {baseline_days:.1f} days"
            if self.base_counted[i] > 0
            else f"not mentioned in the previous {baseline_days:.1f} days"
        )
        where = "" if self.community is None else f" in community {self.community}"
        accounts = int(self.raw_authors[i])
        head = f"{display}: {posts} post{'s' * (posts != 1)} from {accounts} account{'s' * (accounts != 1)}{where}"
        head += f" in the last {recent}"
        if counted != posts or authors != accounts:
            head += f", counted as {counted} post{'s' * (counted != 1)} from {authors} account{'s' * (authors != 1)}"
        head += f"; {self.ratio[i]:.1f}x its usual rate ({usual}); mentioned since {_utc(since)}."
        words = [head]
        if discounted:
            words.append(" ".join(d["reason"][0].upper() + d["reason"][1:] + "." for d in discounted))
        missed = self._missed(i)
        if rank is None and missed:
            words.append("Held back: " + "; ".join(missed) + ".")
        out: dict[str, Any] = {
            "rank": rank,
            "term": name,
            "display": display,
            "kind": "hashtag" if hashtag else "topic",
            "score": round(float(self.z[i]), 3),
            "ratio": round(float(self.ratio[i]), 3),
            "posts": posts,
            "accounts": int(self.raw_authors[i]),
            "counted_posts": counted,
            "counted_accounts": authors,
            "expected": round(expected, 3),
            "baseline_posts": round(float(self.base_counted[i]), 3),
            "baseline_windows": round(self.windows, 3),
            "since": since,
            "first_seen": first_seen,
            "new": bool(is_new),
            "engagements": int(self.engagements[i]),
            "discounted": discounted,
            "explanation": " ".join(words),
        }
        if rank is None:
            out["held_back_because"] = missed
        return out


__all__ = ["TrendList", "compute_trends"]
