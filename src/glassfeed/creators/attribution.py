"""How each impression of an author's posts reached its viewer, and which impression each engagement answers.

Batch-first over the event log's rows (``EventBatch``), no per-event Python:

- an impression's **channel** is the candidate source that placed the post on that page, read from the page's
  ``PageSourcesRow`` (``Store.page_sources``: the request id names the page, the impression's ``position`` the
  source) or ``"unrecorded"`` when the page has no such row (the generator's history, impressions a client logged,
  pages served before the record existed); its **policy** is the tag of its request id
  (``feed.sessions.parse_request_id``), ``"unrecorded"`` without one;
- an opened notification about the post is a touch through ``"notification"`` (no feed policy: ``NO_POLICY``);
- an engagement is attributed to the viewer's latest touch of the same post at or before it, else to ``DIRECT``
  (a profile visit, a link, search, or a client that logs no impressions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import get_args

import numpy as np

from glassfeed.domain import EventBatch, EventKind
from glassfeed.feed.policy import SOURCES
from glassfeed.feed.sessions import parse_request_id
from glassfeed.settings import CreatorBucket

NOTIFICATION = "notification"
UNRECORDED = "unrecorded"
#: How a post reached a person: the feed's candidate sources, a notification, or a page whose sources were not kept.
CHANNELS: tuple[str, ...] = (*SOURCES, NOTIFICATION, UNRECORDED)
CHANNEL_CODE: dict[str, int] = {c: i for i, c in enumerate(CHANNELS)}
#: Where an engagement with no earlier touch is counted.
DIRECT = "direct"
#: The policy of a touch that was not a feed page (a notification).
NO_POLICY = "none"
#: What counts as engaging with a post (a dwell is part of a click; impressions and negative feedback are not).
ENGAGEMENT_KINDS: tuple[EventKind, ...] = (
    EventKind.CLICK,
    EventKind.LIKE,
    EventKind.REPOST,
    EventKind.REPLY,
    EventKind.QUOTE,
    EventKind.SHARE,
    EventKind.BOOKMARK,
)
#: Each bucket's size in seconds (the names: ``settings.CreatorBucket``).
BUCKET_S: dict[str, float] = {"hour": 3600.0, "day": 86400.0, "week": 7 * 86400.0}
assert set(BUCKET_S) == set(get_args(CreatorBucket)), "BUCKET_S must size every settings.CreatorBucket"


@dataclass(frozen=True, slots=True)
class Touches:
    """Every way the author's posts reached a viewer: one row per impression or opened notification."""

    viewer: np.ndarray  # int64 user idx
    post: np.ndarray  # int64 post idx
    ts: np.ndarray  # float64
    channel: np.ndarray  # int64 code into CHANNELS
    policy: np.ndarray  # int64 code into ``policies``
    policies: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.viewer)


def impression_channels(
    impressions: EventBatch, page_sources: Mapping[str, Sequence[str]]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Each impression's channel code and policy code (into the returned policy names), one lookup per page."""
    n = len(impressions)
    rid = impressions.request_id
    keys = np.array(["" if r is None else str(r) for r in rid.tolist()], dtype=object) if rid is not None else None
    if keys is None or n == 0:
        return np.full(n, CHANNEL_CODE[UNRECORDED], np.int64), np.zeros(n, np.int64), [UNRECORDED]
    pages, inv = np.unique(keys.astype(str), return_inverse=True)
    width = max([len(page_sources.get(p, ())) for p in pages.tolist()] + [1])
    table = np.full((len(pages), width), CHANNEL_CODE[UNRECORDED], np.int64)
    names: list[str] = []
    name_code: dict[str, int] = {}
    page_policy = np.zeros(len(pages), np.int64)
    for i, page in enumerate(pages.tolist()):
        srcs = page_sources.get(page, ())
        table[i, : len(srcs)] = [CHANNEL_CODE.get(s, CHANNEL_CODE[UNRECORDED]) for s in srcs]
        tag = parse_request_id(page).policy if page else ""
        page_policy[i] = name_code.setdefault(tag or UNRECORDED, len(names))
        if len(names) < len(name_code):
            names.append(tag or UNRECORDED)
    pos = impressions.position.astype(np.int64)
    inside = (pos >= 0) & (pos < width)
    channel = np.where(inside, table[inv, np.clip(pos, 0, width - 1)], CHANNEL_CODE[UNRECORDED])
    return channel, page_policy[inv], names


def make_touches(
    impressions: EventBatch,
    page_sources: Mapping[str, Sequence[str]],
    opens: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> Touches:
    """The impressions (with their channel and policy) and the opened notifications ``(viewer, post, ts)``."""
    channel, policy, names = impression_channels(impressions, page_sources)
    viewer, post, ts = impressions.user.astype(np.int64), impressions.post.astype(np.int64), impressions.ts
    if opens is not None and len(opens[0]):
        if NO_POLICY not in names:
            names.append(NO_POLICY)
        k = len(opens[0])
        viewer = np.concatenate([viewer, opens[0].astype(np.int64)])
        post = np.concatenate([post, opens[1].astype(np.int64)])
        ts = np.concatenate([ts, opens[2].astype(np.float64)])
        channel = np.concatenate([channel, np.full(k, CHANNEL_CODE[NOTIFICATION], np.int64)])
        policy = np.concatenate([policy, np.full(k, names.index(NO_POLICY), np.int64)])
    return Touches(viewer, post, ts.astype(np.float64), channel, policy, tuple(names))


def last_touch(touches: Touches, viewer: np.ndarray, post: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """For each engagement ``(viewer, post, ts)``, the index of the same viewer's latest touch of the same post at
    or before ``ts`` (a touch at the same second counts as before), else -1. One sort of touches and engagements
    together; no loop over events."""
    n_t, n_e = len(touches), len(viewer)
    if n_e == 0:
        return np.zeros(0, np.int64)
    if n_t == 0:
        return np.full(n_e, -1, np.int64)
    # one key per (viewer, post): the post's rank among the posts here times the viewer bound, plus the viewer
    both_post = np.concatenate([touches.post, post.astype(np.int64)])
    both_viewer = np.concatenate([touches.viewer, viewer.astype(np.int64)])
    _, post_rank = np.unique(both_post, return_inverse=True)
    key = post_rank.astype(np.int64) * (int(both_viewer.max()) + 1) + both_viewer
    when = np.concatenate([touches.ts, ts.astype(np.float64)])
    is_eng = np.concatenate([np.zeros(n_t, bool), np.ones(n_e, bool)])
    order = np.lexsort((is_eng, when, key))  # by key, then time, a touch before an engagement at the same time
    at = np.arange(len(order))
    last = np.maximum.accumulate(np.where(is_eng[order], -1, at))
    ok = (last >= 0) & (key[order][np.maximum(last, 0)] == key[order])
    found = np.where(ok, order[np.maximum(last, 0)], -1)
    out = np.full(n_t + n_e, -1, np.int64)
    out[order] = found
    return out[n_t:]


def bucket_index(ts: np.ndarray, start: float, bucket_s: float, n_buckets: int) -> np.ndarray:
    """Each time's bucket in ``[start, start + n_buckets * bucket_s)``, clipped to the first and last."""
    return np.clip(((np.asarray(ts, np.float64) - start) // bucket_s).astype(np.int64), 0, max(n_buckets - 1, 0))


def counts(codes: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    """``np.bincount`` with its length fixed at ``n`` (int64 counts)."""
    return np.bincount(codes, weights=weights, minlength=n)[:n].astype(np.int64)


def distinct(*columns: np.ndarray) -> np.ndarray:
    """The distinct rows of equal-length integer columns (an (n, k) array)."""
    if not columns or not len(columns[0]):
        return np.zeros((0, len(columns)), np.int64)
    return np.unique(np.stack([np.asarray(c, np.int64) for c in columns], axis=1), axis=0)


__all__ = [
    "BUCKET_S",
    "CHANNELS",
    "CHANNEL_CODE",
    "DIRECT",
    "ENGAGEMENT_KINDS",
    "NOTIFICATION",
    "NO_POLICY",
    "UNRECORDED",
    "Touches",
    "bucket_index",
    "counts",
    "distinct",
    "impression_channels",
    "last_touch",
    "make_touches",
]
