"""Audit a store from its logs alone: what a deployment's impression log says about each policy's feed.

Reads impressions and engagements (with request ids) and the posts' divisiveness/topic/author from one or more
stores, splits impressions by the policy named in the request id (``<policy>:<session>.<page>``, as the
simulator logs them; untagged requests count as ``untagged``), and computes with ``audit.metrics``: served
divisive share, topic entropy, creator Gini, engagement per impression and, when a ``chronological`` group
exists, Huszar amplification of author communities against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from glassfeed.audit import metrics as M
from glassfeed.domain import EventKind
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


@dataclass
class AuditReport:
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # policy -> metric -> value
    amplification: dict[str, dict[str, float | None]] = field(default_factory=dict)  # policy -> community -> A


def _f(x: Any) -> float | None:
    """A finite metric as a plain float; NaN, infinities and ``None`` (undefined) as ``None``."""
    return float(x) if x is not None and np.isfinite(x) else None


def audit(d: LogData, threshold: float = 0.5) -> AuditReport:
    """Per policy tag: impressions, viewers, engagement per impression, divisive share, topic entropy, Gini."""
    rep = AuditReport()
    n_topics = int(d.post_topic.max()) + 1 if len(d.post_topic) and d.post_topic.max() >= 0 else 0
    for k, name in enumerate(d.policies):
        m = d.imp_policy == k
        u, p = d.imp_user[m], d.imp_post[m]
        engaged = np.isin(u * d.n_posts + p, d.engaged_keys)
        uu, inv = np.unique(u, return_inverse=True)
        t = d.post_topic[p]
        row: dict[str, Any] = {
            "impressions": int(m.sum()),
            "viewers": len(uu),
            "engagement_rate": _f(M.engagement_rate(engaged)),
            "divisive_share": _f(M.divisive_share(d.post_div[p], threshold)),
        }
        if n_topics and len(uu):
            counts = np.zeros((len(uu), n_topics))
            ok = t >= 0
            np.add.at(counts, (inv[ok], t[ok]), 1)
            row["topic_entropy"] = _f(np.nanmean(M.topic_entropy(counts, normalise=True)))
        else:
            row["topic_entropy"] = None
        authors = d.post_author[p]
        creators = np.unique(d.post_author[d.post_author >= 0])  # every user who has posted counts
        row["creator_gini"] = _f(M.gini(np.bincount(authors, minlength=d.n_users)[creators]))
        rep.rows[name] = row
    if CONTROL in d.policies:
        c = d.policies.index(CONTROL)
        n_comm = int(d.user_community.max()) + 1 if len(d.user_community) else 0
        for k, name in enumerate(d.policies):
            if k == c or name == UNTAGGED or n_comm <= 0:
                continue
            m = (d.imp_policy == k) | (d.imp_policy == c)
            u, p = d.imp_user[m], d.imp_post[m]
            treated_users = np.unique(d.imp_user[d.imp_policy == k])
            control_users = np.unique(d.imp_user[d.imp_policy == c])
            both = np.intersect1d(treated_users, control_users)
            # a user in both arms would count twice; give each arm its own id space
            users = np.where(d.imp_policy[m] == k, u, u + d.n_users)
            treated = np.zeros(2 * d.n_users, bool)
            treated[treated_users] = True
            audience = np.zeros(2 * d.n_users, bool)
            audience[treated_users] = True
            audience[control_users + d.n_users] = True
            g = d.user_community[d.post_author[p]]
            amp = M.amplification_ratio(users, g, treated, n_groups=n_comm, audience=audience)
            rep.amplification[name] = {f"community {i}": _f(a) for i, a in enumerate(amp)}
            rep.rows[name]["users_in_both_arms"] = len(both)
    return rep


def audit_stores(dbs: list[str | Path], threshold: float = 0.5, since_ts: float | None = None) -> AuditReport:
    """Audit one or more stores pooled (the simulator writes one store per policy; their users are kept apart)."""
    parts = [load_logs(db, since_ts=since_ts) for db in dbs]
    return audit(merge(parts), threshold)
