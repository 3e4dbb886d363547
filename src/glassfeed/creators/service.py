"""Creator analytics, "why did my post travel": ``CreatorService`` answers an author's own numbers.

For the author's newest posts in a window (``[creators]`` settings): impressions and engagements split by how the
post reached each viewer (the candidate source that placed it on the page, a notification, or unrecorded) and by
the feed policy that ranked the page, over time; the people reached under each policy; follower growth; and a
summary in words built from those numbers. Reads the store (``Store.events_about``: one scan of the event log for
the author's posts and followers; ``Store.page_sources`` for the pages' sources; the notifications opened in the
window) and the feed's serving state (the author's posts, follower count, the clock). docs/creators.md.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from glassfeed.creators.attribution import (
    BUCKET_S,
    CHANNELS,
    DIRECT,
    ENGAGEMENT_KINDS,
    NO_POLICY,
    NOTIFICATION,
    UNRECORDED,
    Touches,
    bucket_index,
    counts,
    distinct,
    last_touch,
    make_touches,
)
from glassfeed.domain import EventKind
from glassfeed.feed.service import FeedService
from glassfeed.notifications.service import notification_id
from glassfeed.settings import CreatorSettings

#: How each channel reached people, in words (the page's legend and the summary).
CHANNEL_WORDS: dict[str, str] = {
    "following": "people who follow you (or follow someone who reposted it)",
    "social_proof": "people whose friends engaged with it",
    "collaborative": "people with tastes like those who engaged with it",
    "trending": "the trending source",
    "cold_start": "the new-post exploration source",
    "content": "people who read posts like it",
    NOTIFICATION: "notifications",
    UNRECORDED: "feed pages whose sources were not recorded",
    DIRECT: "no feed page or notification before it (a profile, a link, search)",
}
#: Engagement kinds by wire name, in report order.
_ENG_NAMES: tuple[str, ...] = tuple(k.wire for k in ENGAGEMENT_KINDS)
_ENG_CODE = np.full(max(int(k) for k in EventKind) + 1, -1, np.int64)
_ENG_CODE[[int(k) for k in ENGAGEMENT_KINDS]] = np.arange(len(ENGAGEMENT_KINDS))
_DIRECT_CODE = len(CHANNELS)  # the engagement channels: CHANNELS, then DIRECT
_ENG_CHANNELS: tuple[str, ...] = (*CHANNELS, DIRECT)


class CreatorError(ValueError):
    """A bad creator analytics request: ``field`` and ``status`` for the 4xx answer."""

    def __init__(self, field: str, reason: str, status: int = 422) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason, self.status = field, reason, status


@dataclass(frozen=True, slots=True)
class Window:
    start: float
    end: float
    days: int
    bucket: str
    bucket_s: float
    n_buckets: int

    def starts(self) -> list[float]:
        return (self.start + self.bucket_s * np.arange(self.n_buckets)).tolist()


@dataclass(frozen=True, slots=True)
class Analysis:
    """One author's numbers over one window: the posts, every touch and every engagement (arrays, attributed)."""

    author: int
    window: Window
    posts: np.ndarray  # the author's posts in the window, newest first
    touches: Touches
    eng_viewer: np.ndarray
    eng_post: np.ndarray
    eng_ts: np.ndarray
    eng_kind: np.ndarray  # code into ENGAGEMENT_KINDS
    eng_channel: np.ndarray  # code into _ENG_CHANNELS
    eng_policy: np.ndarray  # code into touches.policies, -1 for DIRECT
    follows_ts: np.ndarray
    unfollows_ts: np.ndarray
    followers_now: int


class CreatorService:
    """An author's analytics, beside the ``FeedService`` whose store, state and clock it reads."""

    def __init__(self, feed: FeedService, settings: CreatorSettings | None = None) -> None:
        self.feed = feed
        self.settings = settings or feed.settings.creators
        self._lock = threading.Lock()
        self._kept: OrderedDict[tuple[int, int, str], tuple[float, Analysis]] = OrderedDict()

    # ------------------------------------------------------------------ requests
    def window(self, days: int | None, bucket: str | None) -> Window:
        """The window a request asks for, refused naming ``days`` or ``bucket`` when out of bounds."""
        s = self.settings
        days = s.default_days if days is None else days
        if not 1 <= days <= s.max_days:
            raise CreatorError("days", f"must be between 1 and {s.max_days} (got {days})")
        bucket = bucket or s.default_bucket
        if bucket not in BUCKET_S:
            raise CreatorError("bucket", f"must be one of {', '.join(BUCKET_S)} (got {bucket!r})")
        size = BUCKET_S[bucket]
        n = int(np.ceil(days * 86400.0 / size))
        if n > s.max_buckets:
            raise CreatorError("bucket", f"{days} days of {bucket}s is {n} buckets; at most {s.max_buckets}")
        end = self.feed.now()
        return Window(end - n * size, end, days, bucket, size, n)

    def overview(self, author: int, days: int | None = None, bucket: str | None = None) -> dict[str, Any]:
        """Every post of the author's in the window with its split and summary, the author's series and followers."""
        a = self.analysis(author, self.window(days, bucket))
        users = self.feed.state.users
        everything = np.ones(len(a.touches), bool), np.ones(len(a.eng_post), bool)
        return {
            "user": users.id_of(author),
            "window": _window_json(a.window),
            "totals": _split(a, *everything),
            "series": _series(a, *everything),
            "followers": _followers(a),
            "posts": [self._post_json(a, p, detail=False) for p in a.posts.tolist()],
            "channels": {c: CHANNEL_WORDS[c] for c in _ENG_CHANNELS},
            "notes": NOTES,
        }

    def post(self, author: int, post_id: str, days: int | None = None, bucket: str | None = None) -> dict[str, Any]:
        """One post's numbers: its split, series, engagements by kind, and source x policy (403 for another's)."""
        win = self.window(days, bucket)
        st = self.feed.state
        with self.feed.lock:
            idx = self.feed.store.post_idx(post_id)
            if idx is None or idx >= st.posts.capacity or st.posts.id_of(idx) is None:
                raise CreatorError("post_id", f"unknown post {post_id!r}", 404)
            if st.posts.author_of(idx) != author:
                raise CreatorError("post_id", f"post {post_id!r} is not this person's", 403)
        a = self.analysis(author, win)
        if idx not in set(a.posts.tolist()):
            raise CreatorError("post_id", f"post {post_id!r} was not created in the last {win.days} days", 404)
        return {
            "user": st.users.id_of(author),
            "window": _window_json(win),
            **self._post_json(a, idx, detail=True),
            "channels": {c: CHANNEL_WORDS[c] for c in _ENG_CHANNELS},
            "notes": NOTES,
        }

    def _post_json(self, a: Analysis, post: int, *, detail: bool) -> dict[str, Any]:
        st = self.feed.state
        t_mask, e_mask = a.touches.post == post, a.eng_post == post
        split = _split(a, t_mask, e_mask)
        out: dict[str, Any] = {
            "post": st.posts.id_of(post),
            "text": st.posts.text_of(post),
            "created_at": st.posts.created_at(post),
            "topics": st.posts.topics_of(post),
            **split,
            "summary": summary(split),
        }
        if detail:
            out["series"] = _series(a, t_mask, e_mask)
            out["engagements_by_kind"] = dict(zip(_ENG_NAMES, counts(a.eng_kind[e_mask], len(_ENG_NAMES)).tolist()))
            out["by_channel_policy"] = _cross(a, t_mask, e_mask)
        return out

    # ------------------------------------------------------------------ the numbers
    def analysis(self, author: int, win: Window) -> Analysis:
        """The author's numbers over ``win``, kept ``refresh_s`` (wall seconds) per (author, days, bucket)."""
        key = (author, win.days, win.bucket)
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and time.monotonic() - kept[0] < self.settings.refresh_s:
                self._kept.move_to_end(key)
                return kept[1]
        a = self._analyse(author, win)
        with self._lock:
            self._kept[key] = (time.monotonic(), a)
            self._kept.move_to_end(key)
            while len(self._kept) > self.settings.max_posts:  # a bound on memory: as many answers as posts listed
                self._kept.popitem(last=False)
        return a

    def _analyse(self, author: int, win: Window) -> Analysis:
        st, store = self.feed.state, self.feed.store
        with self.feed.lock:
            posts, _ = st.posts.by_authors(np.array([author], np.int64), win.start, win.end)
            posts = posts[::-1][: self.settings.max_posts]  # newest first
            followers_now = int(st.graph.follower_count(np.array([author], np.int64))[0])
        kinds = [EventKind.IMPRESSION, *ENGAGEMENT_KINDS, EventKind.FOLLOW, EventKind.UNFOLLOW]
        ev = store.events_about(posts.tolist(), [author], t_from=win.start, kinds=kinds)
        ev = ev.take(ev.ts < win.end)
        on_posts = np.isin(ev.post, posts)
        imp = ev.take(on_posts & (ev.kind == int(EventKind.IMPRESSION)))
        rids = {str(r) for r in imp.request_id.tolist() if r} if imp.request_id is not None else set()
        touches = make_touches(imp, store.page_sources(rids), self._opens(posts, win))
        eng = ev.take(on_posts & (_ENG_CODE[ev.kind.astype(np.int64)] >= 0))
        at = last_touch(touches, eng.user, eng.post, eng.ts)
        found = at >= 0
        safe = np.maximum(at, 0)
        towards = (ev.target_user == author) & (ev.post < 0)
        return Analysis(
            author=author,
            window=win,
            posts=posts,
            touches=touches,
            eng_viewer=eng.user.astype(np.int64),
            eng_post=eng.post.astype(np.int64),
            eng_ts=eng.ts,
            eng_kind=_ENG_CODE[eng.kind.astype(np.int64)],
            eng_channel=np.where(found, touches.channel[safe], _DIRECT_CODE) if len(at) else np.zeros(0, np.int64),
            eng_policy=np.where(found, touches.policy[safe], -1) if len(at) else np.zeros(0, np.int64),
            follows_ts=ev.ts[towards & (ev.kind == int(EventKind.FOLLOW))],
            unfollows_ts=ev.ts[towards & (ev.kind == int(EventKind.UNFOLLOW))],
            followers_now=followers_now,
        )

    def _opens(self, posts: np.ndarray, win: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The notifications about these posts opened in the window: (viewer, post, ts). Reads the window's
        ``notification_open`` events, then each opening person's named notifications (one read per person)."""
        store = self.feed.store
        ev = store.events_in_window(win.start, win.end, kinds=[EventKind.NOTIFICATION_OPEN], object_columns=True)
        if not len(ev) or ev.request_id is None:
            return None
        nid = np.array([notification_id(r) or -1 for r in ev.request_id.tolist()], np.int64)
        by_user: dict[int, set[int]] = {}
        for u, n in zip(ev.user.tolist(), nid.tolist()):
            if n >= 0:
                by_user.setdefault(u, set()).add(n)
        about: dict[int, int] = {}  # notification id -> its post, for those about these posts
        mine = set(posts.tolist())
        for u, ids in by_user.items():
            for r in store.notifications(u, limit=len(ids), ids=sorted(ids)):
                if r.post is not None and r.post in mine:
                    about[r.id] = r.post
        post = np.array([about.get(n, -1) for n in nid.tolist()], np.int64)
        keep = post >= 0
        return ev.user[keep], post[keep], ev.ts[keep]


# ---------------------------------------------------------------------- shaping the answers
NOTES: list[str] = [
    "An impression's source is the candidate source that placed the post on that page, recorded with the page when "
    "it was served; pages without that record (history imported or generated, impressions a client reported) count "
    "as 'unrecorded'.",
    "An engagement is credited to the same person's latest impression or opened notification of the post before "
    "it; with none it counts as 'direct'.",
    "Reach under a policy is what happened under it for the people who used it, not what the policy would have done "
    "for everyone: people choose their policies, so the groups differ.",
]


def _window_json(w: Window) -> dict[str, Any]:
    return {"from": w.start, "to": w.end, "days": w.days, "bucket": w.bucket, "bucket_s": w.bucket_s}


def _split(a: Analysis, t_mask: np.ndarray, e_mask: np.ndarray) -> dict[str, Any]:
    """Impressions, people reached and engagements: in all, by channel and by policy (engagements by the channel
    and policy of the touch they answer)."""
    t = a.touches
    ch, pol, viewer = t.channel[t_mask], t.policy[t_mask], t.viewer[t_mask]
    post = t.post[t_mask]
    e_ch, e_pol = a.eng_channel[e_mask], a.eng_policy[e_mask]
    n_ch, n_pol = len(CHANNELS), len(t.policies)
    imp_ch, imp_pol = counts(ch, n_ch), counts(pol, n_pol)
    reach_ch = counts(distinct(ch, post, viewer)[:, 0], n_ch) if len(ch) else np.zeros(n_ch, np.int64)
    reach_pol = counts(distinct(pol, post, viewer)[:, 0], n_pol) if len(pol) else np.zeros(n_pol, np.int64)
    eng_ch = counts(e_ch, n_ch + 1)
    eng_pol = counts(e_pol[e_pol >= 0], n_pol)
    by_channel = {
        c: {"impressions": int(imp_ch[i]), "reached": int(reach_ch[i]), "engagements": int(eng_ch[i])}
        for i, c in enumerate(CHANNELS)
        if imp_ch[i] or eng_ch[i]
    }
    if eng_ch[_DIRECT_CODE]:
        by_channel[DIRECT] = {"impressions": 0, "reached": 0, "engagements": int(eng_ch[_DIRECT_CODE])}
    by_policy = {
        p: {
            "impressions": int(imp_pol[i]),
            "reached": int(reach_pol[i]),
            "engagements": int(eng_pol[i]),
            "engagements_per_impression": float(eng_pol[i] / imp_pol[i]) if imp_pol[i] else None,
        }
        for i, p in enumerate(t.policies)
        if imp_pol[i] or eng_pol[i]
    }
    return {
        "impressions": int(t_mask.sum()),
        "reached": len(distinct(post, viewer)),
        "engagements": int(e_mask.sum()),
        "by_channel": by_channel,
        "by_policy": by_policy,
    }


def _cross(a: Analysis, t_mask: np.ndarray, e_mask: np.ndarray) -> list[dict[str, Any]]:
    """Impressions and engagements per (channel, policy), most impressions first."""
    t = a.touches
    n_pol = len(t.policies)
    cell = t.channel[t_mask] * n_pol + t.policy[t_mask]
    imp = counts(cell, len(CHANNELS) * n_pol)
    e_ok = e_mask & (a.eng_policy >= 0)
    eng = counts(a.eng_channel[e_ok] * n_pol + a.eng_policy[e_ok], len(CHANNELS) * n_pol)
    rows = [
        {"channel": CHANNELS[i // n_pol], "policy": t.policies[i % n_pol], "impressions": int(imp[i]),
         "engagements": int(eng[i])}
        for i in np.flatnonzero(imp + eng).tolist()
    ]  # fmt: skip
    return sorted(rows, key=lambda r: (-r["impressions"], -r["engagements"], r["channel"], r["policy"]))


def _series(a: Analysis, t_mask: np.ndarray, e_mask: np.ndarray) -> dict[str, Any]:
    """Impressions by channel and engagements by the channel they are credited to, per bucket."""
    w = a.window
    nb = w.n_buckets
    tb = bucket_index(a.touches.ts[t_mask], w.start, w.bucket_s, nb)
    imp = counts(a.touches.channel[t_mask] * nb + tb, len(CHANNELS) * nb).reshape(len(CHANNELS), nb)
    eb = bucket_index(a.eng_ts[e_mask], w.start, w.bucket_s, nb)
    eng = counts(a.eng_channel[e_mask] * nb + eb, len(_ENG_CHANNELS) * nb).reshape(len(_ENG_CHANNELS), nb)
    return {
        "t": w.starts(),
        "impressions": {c: imp[i].tolist() for i, c in enumerate(CHANNELS) if imp[i].any()},
        "engagements": {c: eng[i].tolist() for i, c in enumerate(_ENG_CHANNELS) if eng[i].any()},
    }


def _followers(a: Analysis) -> dict[str, Any]:
    """Follows and unfollows of the author per bucket, and the follower count at each bucket's end (today's count
    less the net change after it)."""
    w = a.window
    nb = w.n_buckets
    gained = counts(bucket_index(a.follows_ts, w.start, w.bucket_s, nb), nb)
    lost = counts(bucket_index(a.unfollows_ts, w.start, w.bucket_s, nb), nb)
    net = gained - lost
    after = np.cumsum(net[::-1])[::-1] - net  # the net change in the buckets after each one
    return {
        "now": a.followers_now,
        "t": w.starts(),
        "gained": gained.tolist(),
        "lost": lost.tolist(),
        "total": (a.followers_now - after).tolist(),
    }


def _count(k: int, one: str, many: str | None = None) -> str:
    """``k`` with its noun in the singular or plural: "1 person", "3 people", "1,240 impressions"."""
    return f"{k:,} {one if k == 1 else (many or one + 's')}"


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.0f}%"


def summary(split: dict[str, Any]) -> str:
    """ "Why did my post travel", in words, from a post's split: the main channel, the main (channel, policy) pair
    when there are several policies, who engaged through what."""
    n, reached, n_eng = split["impressions"], split["reached"], split["engagements"]
    if not n and not n_eng:
        return "Nobody has been shown this post in a feed or a notification in this window, and nobody engaged with it."
    parts: list[str] = []
    if n:
        by_ch = sorted(
            ((c, v) for c, v in split["by_channel"].items() if v["impressions"]), key=lambda cv: -cv[1]["impressions"]
        )
        top, v = by_ch[0]
        s = (
            f"{_pct(v['impressions'], n)} of its {_count(n, 'impression')} ({_count(reached, 'person', 'people')}) "
            "came through "
            f"{CHANNEL_WORDS[top]}"
        )
        if len(by_ch) > 1:
            nxt, w = by_ch[1]
            s += f"; {_pct(w['impressions'], n)} through {CHANNEL_WORDS[nxt]}"
        parts.append(s + ".")
        pols = sorted(
            ((p, v) for p, v in split["by_policy"].items() if v["impressions"] and p not in (NO_POLICY, UNRECORDED)),
            key=lambda pv: -pv[1]["impressions"],
        )
        if pols:
            words = [f"{v['reached']:,} under {p} ({_pct(v['impressions'], n)} of impressions)" for p, v in pols[:3]]
            parts.append("It reached " + ", ".join(words) + ".")
            rated = [(p, v["engagements_per_impression"]) for p, v in pols if v["impressions"] >= 1]
            if len(rated) > 1:
                best = max(rated, key=lambda pr: pr[1] or 0.0)
                parts.append(f"People engaged most per impression under {best[0]} ({(best[1] or 0.0):.1%}).")
    if n_eng:
        eng = sorted(
            ((c, v["engagements"]) for c, v in split["by_channel"].items() if v["engagements"]), key=lambda cv: -cv[1]
        )
        named = ", ".join(f"{k:,} through {c.replace('_', ' ')}" for c, k in eng)
        parts.append(f"{_count(n_eng, 'engagement')}: {named}.")
    else:
        parts.append("Nobody engaged with it yet.")
    return " ".join(parts)


__all__ = ["CHANNEL_WORDS", "NOTES", "CreatorError", "CreatorService", "summary"]
