"""Audit a store from its logs alone: what a deployment's impression log says about each policy's feed.

Reads impressions and engagements (with request ids) and the posts' divisiveness/topic/author from one or more
stores, splits impressions by the policy named in the request id (``<policy>:<session>.<page>``, as the
simulator logs them; untagged requests count as ``untagged``), and computes with ``audit.metrics``: served
divisive share, topic entropy, creator Gini, engagement per impression and, when a ``chronological`` group
exists, each policy's difference from it and the Huszar amplification of author communities against it.

Every number carries an interval from a cluster bootstrap over viewers (``audit.bootstrap``), and a number from
fewer viewers or impressions than ``[audit] min_viewers`` / ``min_impressions``, or a comparison whose interval
includes no effect, is flagged and left out of the findings.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from glassfeed.audit import bootstrap as B
from glassfeed.audit import metrics as M
from glassfeed.domain import EventKind
from glassfeed.settings import AuditSettings, packaged_settings
from glassfeed.store import open_store

UNTAGGED = "untagged"
CONTROL = "chronological"
ENGAGED = (EventKind.LIKE, EventKind.REPOST, EventKind.REPLY, EventKind.QUOTE)


@dataclass
class LogData:
    """Impressions (one row each) and engaged (user, post) keys from a store, with post attributes."""

    imp_user: np.ndarray
    imp_post: np.ndarray
    imp_policy: np.ndarray  # index into ``policies``
    policies: list[str]
    engaged_keys: np.ndarray  # sorted user * n_posts + post
    post_author: np.ndarray  # indexed by post idx, -1 = no such post
    post_div: np.ndarray  # NaN = unknown
    post_topic: np.ndarray  # -1 = none
    user_community: np.ndarray  # indexed by user idx, -1 = unknown
    n_users: int
    n_posts: int


def policy_of(request_id: str | None) -> str:
    """The policy tag of a request id ``<policy>:<session>.<page>``; ``untagged`` without one."""
    if not request_id or ":" not in request_id:
        return UNTAGGED
    return request_id.split(":", 1)[0] or UNTAGGED


def load_logs(db: str | Path, since_ts: float | None = None) -> LogData:
    """Read a store's impressions (from ``since_ts`` on, if given) and engagements."""
    store = open_store(db)
    try:
        posts = store.load_posts()
        users = store.load_users()
        n_posts = int(posts["idx"].max()) + 1 if len(posts["idx"]) else 1
        n_users = int(users["idx"].max()) + 1 if len(users["idx"]) else 1
        author = np.full(n_posts, -1, np.int64)  # -1 = no such post
        author[posts["idx"]] = posts["author"]
        div = np.full(n_posts, np.nan)
        div[posts["idx"]] = posts["divisiveness"]
        names: dict[str, int] = {}
        topic = np.full(n_posts, -1, np.int64)
        for i, tps in zip(posts["idx"].tolist(), posts["topics"]):
            if tps:
                topic[i] = names.setdefault(tps[0], len(names))
        comm = np.full(n_users, -1, np.int64)
        comm[users["idx"]] = users["community"]  # -1 = none
        imp = store.events_in_window(since_ts, kinds=[EventKind.IMPRESSION], object_columns=True)
        eng = store.events_in_window(since_ts, kinds=ENGAGED)
    finally:
        store.close()
    keep = np.flatnonzero(imp.post >= 0)
    imp = imp.take(keep[np.argsort(imp.seq[keep], kind="stable")])  # log order: policies are named as first seen
    eng = eng.take(eng.post >= 0)
    request_ids = imp.request_id.tolist() if imp.request_id is not None else [None] * len(imp)
    tags: dict[str, int] = {}
    pol = np.fromiter((tags.setdefault(policy_of(r), len(tags)) for r in request_ids), np.int64, len(imp))
    ek = np.unique(eng.user * n_posts + eng.post)
    return LogData(imp.user, imp.post, pol, list(tags), ek, author, div, topic, comm, n_users, n_posts)


def merge(parts: list[LogData]) -> LogData:
    """Pool logs of several stores (users/posts of different stores are kept apart by offsetting ids)."""
    if len(parts) == 1:
        return parts[0]
    names: dict[str, int] = {}  # policy -> pooled index, in order of first appearance
    iu: list[np.ndarray] = []
    ip: list[np.ndarray] = []
    pol: list[np.ndarray] = []
    ek: list[np.ndarray] = []
    au: list[np.ndarray] = []
    dv: list[np.ndarray] = []
    tp: list[np.ndarray] = []
    cm: list[np.ndarray] = []
    uo = po = 0
    n_posts_total = sum(p.n_posts for p in parts)
    for d in parts:
        remap = np.array([names.setdefault(n, len(names)) for n in d.policies], np.int64)
        iu.append(d.imp_user + uo)
        ip.append(d.imp_post + po)
        pol.append(remap[d.imp_policy] if len(d.imp_policy) else d.imp_policy)
        ek.append((d.engaged_keys // d.n_posts + uo) * n_posts_total + d.engaged_keys % d.n_posts + po)
        au.append(np.where(d.post_author >= 0, d.post_author + uo, -1))
        dv.append(d.post_div)
        tp.append(d.post_topic)
        cm.append(d.user_community)
        uo += d.n_users
        po += d.n_posts
    return LogData(
        np.concatenate(iu),
        np.concatenate(ip),
        np.concatenate(pol),
        list(names),
        np.sort(np.concatenate(ek)),
        np.concatenate(au),
        np.concatenate(dv),
        np.concatenate(tp),
        np.concatenate(cm),
        uo,
        po,
    )


#: The per-policy metrics with an interval, and how a finding names each.
METRICS: dict[str, str] = {
    "engagement_rate": "engagement per impression",
    "divisive_share": "divisive share",
    "topic_entropy": "topic entropy per viewer",
    "creator_gini": "creator Gini",
}
TOO_FEW = "too few {what} to tell ({arm}{n:,} {what}; at least {need:,} needed)"
NO_EFFECT = "not distinguishable from no effect (the interval includes {zero})"
UNDEFINED = "undefined for this log (a zero denominator)"


@dataclass
class AuditReport:
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # policy -> metric -> value
    amplification: dict[str, dict[str, float | None]] = field(default_factory=dict)  # policy -> community -> A
    intervals: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)  # policy -> metric -> [lo, hi]
    flags: dict[str, str | None] = field(default_factory=dict)  # policy -> why its numbers are no finding (or None)
    comparisons: list[dict[str, Any]] = field(default_factory=list)  # each policy against the control, flagged
    findings: list[str] = field(default_factory=list)  # the unflagged comparisons, each with its interval
    method: dict[str, Any] = field(default_factory=dict)  # how the intervals and flags were made

    def to_json(self) -> dict[str, Any]:
        """The report as strict JSON values: an infinite interval bound (a reach ratio over replicates with no
        control reach) is written as ``null``, as an undefined number is; ``undefined_replicates`` and the flag
        tell them apart."""
        return _json_safe(asdict(self))


def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _f(x: Any) -> float | None:
    """A finite metric as a plain float; NaN, infinities and ``None`` (undefined) as ``None``."""
    return float(x) if x is not None and np.isfinite(x) else None


def _bound(x: Any) -> float | None:
    """An interval bound as a plain float: an infinite bound stays (``to_json`` writes it as null), NaN is ``None``."""
    return None if x is None or np.isnan(x) else float(x)


@dataclass
class _Arm:
    """One policy's log summed per viewer (every viewer of the log is a unit; 0 where they did not see the arm)."""

    impressions: np.ndarray  # (units,)
    engaged: np.ndarray
    divisive: np.ndarray  # impressions of known divisiveness at or above the threshold
    known: np.ndarray  # impressions of known divisiveness
    entropy: np.ndarray  # normalised topic entropy of the viewer's impressions, 0 where none has a topic
    has_topic: np.ndarray  # 1 where the viewer saw a post with a topic
    by_creator: sparse.csr_array  # (units, creators) impressions
    seen: np.ndarray  # (units, communities) bool: saw any post by an author of the community


def _arms(d: LogData, threshold: float) -> tuple[np.ndarray, list[_Arm], int]:
    """Per viewer and policy sums: the viewers (user ids), one ``_Arm`` per policy, and the communities."""
    units, inv = np.unique(d.imp_user, return_inverse=True)
    n = len(units)
    n_topics = int(d.post_topic.max()) + 1 if len(d.post_topic) and d.post_topic.max() >= 0 else 0
    n_comm = int(d.user_community.max()) + 1 if len(d.user_community) else 0
    creators = np.unique(d.post_author[d.post_author >= 0])  # every user who has posted counts
    col = np.full(d.n_users, -1, np.int64)
    col[creators] = np.arange(len(creators))
    engaged = np.isin(d.imp_user * d.n_posts + d.imp_post, d.engaged_keys)
    div = d.post_div[d.imp_post]
    arms: list[_Arm] = []
    for k in range(len(d.policies)):
        m = d.imp_policy == k
        v, p = inv[m], d.imp_post[m]
        known = M.group_sum(~np.isnan(div[m]), v, n)
        share = np.asarray(M.divisive_share(div[m], threshold, groups=v, n_groups=n))
        counts = np.zeros((n, max(n_topics, 1)))
        t = d.post_topic[p]
        ok = t >= 0
        np.add.at(counts, (v[ok], t[ok]), 1)
        has = counts.sum(axis=1) > 0
        ent = M.topic_entropy(counts, normalise=True) if n_topics else np.full(n, np.nan)
        a = d.post_author[p]
        c = col[np.where(a >= 0, a, 0)]
        keep = (a >= 0) & (c >= 0)
        by_creator = sparse.csr_array((np.ones(int(keep.sum())), (v[keep], c[keep])), shape=(n, max(len(creators), 1)))
        g = np.where(a >= 0, d.user_community[np.where(a >= 0, a, 0)], -1)
        arms.append(
            _Arm(
                impressions=M.group_sum(np.ones(len(v)), v, n),
                engaged=M.group_sum(engaged[m], v, n),
                divisive=np.nan_to_num(share) * known,
                known=known,
                entropy=np.where(has, np.nan_to_num(ent), 0.0),
                has_topic=has.astype(np.float64),
                by_creator=by_creator,
                seen=M.exposure_matrix(v, g, n, max(n_comm, 0)),
            )
        )
    return units, arms, n_comm


def _levels(arm: _Arm, w: np.ndarray, n_creators: int) -> dict[str, np.ndarray]:
    """Each metric of one arm under each row of weights ``w`` ``(b, units)``: ``(b,)`` arrays."""
    per_creator = np.asarray((arm.by_creator.T @ w.T).T)  # (b, creators): impressions each creator got
    return {
        "engagement_rate": B.weighted_ratio(w, arm.engaged, arm.impressions),
        "divisive_share": B.weighted_ratio(w, arm.divisive, arm.known),
        "topic_entropy": B.weighted_ratio(w, arm.entropy, arm.has_topic),
        "creator_gini": np.asarray(M.gini(per_creator[:, :n_creators]), np.float64).reshape(len(w)),
    }


def _statistics(
    arms: list[_Arm], w: np.ndarray, n_creators: int, pairs: list[tuple[int, int]]
) -> dict[tuple[str, int, str], np.ndarray]:
    """Every statistic the audit reports under each row of weights ``w``: ("level", policy, metric),
    ("diff", policy, metric) against the control and ("amp", policy, community), each a ``(b,)`` array."""
    out: dict[tuple[str, int, str], np.ndarray] = {}
    levels = [_levels(a, w, n_creators) for a in arms]
    for k, lv in enumerate(levels):
        for name, x in lv.items():
            out[("level", k, name)] = x
    for k, c in pairs:
        for name in METRICS:
            with np.errstate(invalid="ignore"):
                out[("diff", k, name)] = levels[k][name] - levels[c][name]
        tr, co = arms[k].impressions > 0, arms[c].impressions > 0
        amp = M.reach_amplification(arms[k].seen[tr], arms[c].seen[co], w[:, tr], w[:, co])
        for g in range(amp.shape[-1]):
            out[("amp", k, str(g))] = amp[:, g]
    return out


def _too_few(viewers: int, impressions: int, cfg: AuditSettings, arm: str = "") -> str | None:
    """The small-sample flag of a cell (``arm``: its name, for a comparison's flag), or None when it is big enough."""
    if viewers < cfg.min_viewers:
        return TOO_FEW.format(what="viewers", arm=arm, n=viewers, need=cfg.min_viewers)
    if impressions < cfg.min_impressions:
        return TOO_FEW.format(what="impressions", arm=arm, n=impressions, need=cfg.min_impressions)
    return None


def _statement(c: dict[str, Any], confidence: float) -> str:
    """A finding in words, with its interval and the viewers behind it."""
    lo, hi, v = c["low"], c["high"], c["estimate"]
    tail = f"({lo:+.3f} to {hi:+.3f}, {confidence:.0%} interval; {c['viewers']:,} vs {c['control_viewers']:,} viewers)"
    if c["kind"] == "amplification":
        more = "more" if v > 0 else "fewer"
        return (
            f"{c['policy']}: posts by {c['metric']} reach {abs(v):.0%} {more} viewers than under {c['control']} "
            f"(amplification {v:+.3f}; {tail[1:]}"
        )
    return f"{c['policy']}: {METRICS[c['metric']]} {v:+.3f} against {c['control']} {tail}"


def audit(d: LogData, settings: AuditSettings | None = None, threshold: float | None = None) -> AuditReport:
    """Per policy tag: impressions, viewers, engagement per impression, divisive share, topic entropy, Gini, each
    with a cluster-bootstrap interval over viewers; against ``chronological`` (when logged): the difference of each
    and the amplification of each author community. ``threshold`` overrides ``[audit] divisive_threshold``."""
    cfg = settings if settings is not None else packaged_settings().audit
    thr = cfg.divisive_threshold if threshold is None else threshold
    rep = AuditReport()
    rep.method = {
        "interval": "cluster bootstrap percentile interval centred on the estimate; viewers resampled within strata",
        "unit": "viewer",
        "confidence": cfg.confidence,
        "bootstrap_reps": cfg.bootstrap_reps,
        "seed": cfg.seed,
        "min_viewers": cfg.min_viewers,
        "min_impressions": cfg.min_impressions,
        "divisive_threshold": thr,
    }
    units, arms, n_comm = _arms(d, thr)
    n_creators = len(np.unique(d.post_author[d.post_author >= 0]))
    c = d.policies.index(CONTROL) if CONTROL in d.policies else -1
    pairs = [(k, c) for k, name in enumerate(d.policies) if c >= 0 and k != c and name != UNTAGGED and n_comm > 0]
    point = _statistics(arms, np.ones((1, len(units))), n_creators, pairs)
    member = np.stack([a.impressions > 0 for a in arms], axis=1) if arms else np.zeros((len(units), 0), bool)
    strata = B.strata_of(member)
    width = max(n_creators, len(units), n_comm)
    batches = [
        _statistics(arms, w, n_creators, pairs)
        for w in B.weight_batches(strata, cfg.bootstrap_reps, cfg.seed, cfg.batch_values, width)
    ]
    reps = {key: np.concatenate([b[key] for b in batches]) for key in point}
    bounds = {key: B.percentile_interval(r, cfg.confidence, point[key][0]) for key, r in reps.items()}
    size = [(int((a.impressions > 0).sum()), int(a.impressions.sum())) for a in arms]
    for k, name in enumerate(d.policies):
        viewers, impressions = size[k]
        row: dict[str, Any] = {"impressions": impressions, "viewers": viewers}
        row.update({m: _f(point[("level", k, m)][0]) for m in METRICS})
        rep.rows[name] = row
        rep.intervals[name] = {
            m: [_bound(bounds[("level", k, m)][0]), _bound(bounds[("level", k, m)][1])] for m in METRICS
        }
        rep.flags[name] = _too_few(viewers, impressions, cfg)
    for k, _ in pairs:
        name = d.policies[k]
        both = np.intersect1d(d.imp_user[d.imp_policy == k], d.imp_user[d.imp_policy == c])
        rep.rows[name]["users_in_both_arms"] = len(both)
        small = _too_few(*size[k], cfg, f"{name}: ") or _too_few(*size[c], cfg, f"{CONTROL}: ")
        keys = [("diff", k, m) for m in METRICS] + [("amp", k, str(g)) for g in range(n_comm)]
        for key in keys:
            kind, _, metric = key
            value = point[key][0]
            lo, hi, undefined = bounds[key]
            label = metric if kind == "diff" else f"community {metric}"
            if kind == "amp":
                rep.amplification.setdefault(name, {})[label] = _f(value)
            flag = small
            if flag is None and (not np.isfinite(value) or np.isnan(lo) or np.isnan(hi)):
                flag = UNDEFINED
            if flag is None and lo <= 0.0 <= hi:
                flag = NO_EFFECT.format(zero="0" if kind == "diff" else "0, a reach ratio of 1")
            comp: dict[str, Any] = {
                "policy": name,
                "control": CONTROL,
                "kind": "difference" if kind == "diff" else "amplification",
                "metric": label,
                "estimate": _f(value),
                "low": _bound(lo),
                "high": _bound(hi),
                "undefined_replicates": int(undefined),
                "viewers": size[k][0],
                "control_viewers": size[c][0],
                "flag": flag,
            }
            if flag is None:
                comp["statement"] = _statement(comp, cfg.confidence)
                rep.findings.append(comp["statement"])
            rep.comparisons.append(comp)
    return rep


def audit_stores(
    dbs: list[str | Path],
    settings: AuditSettings | None = None,
    threshold: float | None = None,
    since_ts: float | None = None,
) -> AuditReport:
    """Audit one or more stores pooled (the simulator writes one store per policy; their users are kept apart)."""
    parts = [load_logs(db, since_ts=since_ts) for db in dbs]
    return audit(merge(parts), settings, threshold)
