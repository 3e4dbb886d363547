"""The post table: author, creation time, primary topic, reply flag, moderation level, divisiveness, text and
labels by post idx, plus each author's posts in creation order.

Kept compact, since it grows with every post: a post's topic names are one tuple shared by every post with the
same topics, labels are kept only for labelled posts, texts are not kept a second time in lower case (muted
words lower them when checked), and each author's posts are one ``int32`` array."""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

import numpy as np

from glassfeed.state._columns import Grow, Strings, group_by_user
from glassfeed.state.topics import Topics
from glassfeed.store import ERASED_LABEL

#: Labels that remove a post from every feed (``ERASED_LABEL``: its author erased it); any other label shows it
#: behind an interstitial.
DROP_LABELS = frozenset({"drop", "illegal", "csam", "spam-removed", "removed", ERASED_LABEL})
_VISIBLE, _LABELLED, _REMOVED = 0, 1, 2
_NO_POSTS = np.zeros(0, np.int32)


class PostTable:
    """Posts by store idx (slot 0 unused); reads are vectorised over arrays of post idx."""

    def __init__(self, topics: Topics) -> None:
        self._topics = topics
        self.n = 0  #: highest post idx loaded
        self.newest_created = 0.0
        self._cap = 1  # one more than the highest idx any read accepts
        self._ids = Strings()
        self._author = Grow(np.int64, 0)
        self._created = Grow(np.float64, 0.0)
        self._topic = Grow(np.int32, -1)  # primary topic id
        self._is_reply = Grow(np.bool_, False)
        self._moderation = Grow(np.int8, _VISIBLE)
        self._divisiveness = Grow(np.float32, 0.0)
        self._text_len = Grow(np.int32, 0)
        self._text = Strings()
        self._topic_names: list[tuple[str, ...]] = [()]
        self._topic_sets: dict[tuple[str, ...], tuple[str, ...]] = {(): ()}  # one shared tuple per combination
        self._labels: dict[int, tuple[str, ...]] = {}  # labelled posts only
        self._by_author: dict[int, np.ndarray] = {}  # author -> their posts (int32) in the order stored
        self._dropped_to = float("-inf")  # posts created before this were dropped (``forget_before``)
        self._base = 0  # posts below this idx are not held at all (``shift_to``); rows are idx - base
        # the held rows of ``_created.a`` below ``_sorted_to`` hold non-decreasing times (posts mostly arrive in
        # time order), so ``created_between`` binary-searches them and scans only the rows after; rows below
        # ``_checked_to`` were looked at (once the order breaks, later rows cannot extend it); a write lowers both
        self._sorted_to = self._checked_to = 0

    def _dense(self) -> tuple[Grow, ...]:
        return (
            self._author,
            self._created,
            self._topic,
            self._is_reply,
            self._moderation,
            self._divisiveness,
            self._text_len,
        )

    # ------------------------------------------------------------------ writes
    def add(self, posts: dict[str, Any]) -> None:
        """Install rows as from ``Store.load_posts`` (idx, id, author, created_at, reply_to, text, topics,
        labels, divisiveness)."""
        idx = posts["idx"]
        if not len(idx):
            return
        n = int(idx.max()) + 1
        b = self._base
        if int(idx.min()) < b:
            raise ValueError(f"post idx below {b}, the oldest the state holds, cannot be added again")
        for g in self._dense():
            g.ensure(n)
        if self._cap < n:
            self._topic_names.extend([()] * (n - self._cap))
            self._cap = n
        rows = idx - b
        self._author.a[rows] = posts["author"]
        self._created.a[rows] = posts["created_at"]
        self._sorted_to = min(self._sorted_to, int(rows.min()))
        self._checked_to = min(self._checked_to, int(rows.min()))
        self._is_reply.a[rows] = posts["reply_to"] > 0
        div = posts["divisiveness"]
        self._divisiveness.a[rows] = np.where(np.isnan(div), 0.0, div)
        self._text_len.a[rows] = [len(t) for t in posts["text"]]
        self._ids.set(idx.tolist(), posts["id"])
        self._text.set(idx.tolist(), posts["text"])
        shared = self._topic_sets
        for i, topics, labels in zip(idx.tolist(), posts["topics"], posts["labels"]):
            key = tuple(topics)
            self._topic_names[i - b] = shared.setdefault(key, key)
            self._topic.a[i - b] = self._topics.id(topics[0]) if topics else -1
            if labels:
                self._labels[i] = tuple(labels)
                self._moderation.a[i - b] = _level(labels)
            else:
                self._labels.pop(i, None)
        authors = np.asarray(posts["author"], np.int64)
        for a, at in group_by_user(authors):
            new = idx[at].astype(np.int32)
            old = self._by_author.get(a)
            self._by_author[a] = new if old is None else np.concatenate([old, new])
        self.n = max(self.n, n - 1)
        self.newest_created = max(self.newest_created, float(posts["created_at"].max()))
        self._drop(idx[posts["created_at"] < self._dropped_to])  # older than the retention window already

    def set_labels(self, labels: dict[int, list[str]]) -> None:
        """Install moderation labels for posts (drop labels remove them from every feed)."""
        for i, lbs in labels.items():
            if i < self._base:  # not held
                continue
            if lbs:
                self._labels[i] = tuple(lbs)
            else:
                self._labels.pop(i, None)
            self._moderation.a[i - self._base] = _level(lbs) if lbs else _VISIBLE

    def forget_posts(self, posts: list[int]) -> None:
        """Tombstone posts their author erased, as ``Store.erase_posts`` does: text, topics and links emptied,
        labelled ``ERASED_LABEL`` (dropped from every feed); idx, id, author and creation time stay."""
        posts = [i for i in posts if i >= self._base]  # older ones are not held
        self._text.set(posts, [""] * len(posts))
        for i in posts:
            self._topic_names[i - self._base] = ()
            self._labels[i] = (ERASED_LABEL,)
        idx = np.asarray(posts, np.int64) - self._base
        self._text_len.a[idx] = 0
        self._topic.a[idx] = -1
        self._is_reply.a[idx] = False
        self._divisiveness.a[idx] = 0.0
        self._moderation.a[idx] = _REMOVED

    def forget_before(self, cutoff: float) -> int:
        """Drop the text, topics, labels and author-list entry of posts created before ``cutoff`` (the serving
        state's retention window; ``ServingState.prune_posts``), and of posts added later that are older; idx, id,
        author and creation time stay, so that every read of the post's idx still answers. Returns how many posts
        were dropped."""
        created = self._created.a[: self.n + 1 - self._base]
        idx = np.flatnonzero((created >= self._dropped_to) & (created < cutoff)) + self._base
        idx = idx[idx > 0]
        self._dropped_to = max(self._dropped_to, cutoff)
        self._drop(idx)
        return len(idx)

    def shift_to(self, cutoff: float) -> int:
        """Stop holding the posts below the lowest idx created at or after ``cutoff`` (all of them older): their
        rows of every column go, and reads of their idx answer as for a post never loaded (author 0, created 0,
        no text). Returns the new lowest idx held."""
        created = self._created.a[: self.n + 1 - self._base]
        young = np.flatnonzero(created >= cutoff)
        base = self._base + (int(young[0]) if len(young) else len(created))
        if base <= self._base:
            return self._base
        for g in self._dense():
            g.shift(base)
        self._text.shift(base)
        del self._topic_names[: base - self._base]
        for i in [i for i in self._labels if i < base]:
            del self._labels[i]
        self._base = base
        self._sorted_to = self._checked_to = 0
        return base

    def _drop(self, idx: np.ndarray) -> None:
        if not len(idx):
            return
        self._text.drop(idx)
        for i in idx.tolist():
            self._topic_names[i - self._base] = ()
            self._labels.pop(i, None)
        for a in np.unique(self._author.take(idx)).tolist():
            own = self._by_author.get(a)
            if own is not None:
                kept = own[self._created.take(own) >= self._dropped_to]
                if len(kept):
                    self._by_author[a] = kept
                else:
                    del self._by_author[a]

    # ------------------------------------------------------------------ reads (vectorised over post idx)
    @property
    def capacity(self) -> int:
        """One more than the highest post idx any read accepts."""
        return self._cap

    def author(self, posts: np.ndarray) -> np.ndarray:
        return self._author.take(posts)

    def created(self, posts: np.ndarray) -> np.ndarray:
        return self._created.take(posts)

    def topic(self, posts: np.ndarray) -> np.ndarray:
        """Primary topic id per post (-1 = none)."""
        return self._topic.take(posts)

    def is_reply(self, posts: np.ndarray) -> np.ndarray:
        return self._is_reply.take(posts)

    def divisiveness(self, posts: np.ndarray) -> np.ndarray:
        return self._divisiveness.take(posts)

    def text_len(self, posts: np.ndarray) -> np.ndarray:
        return self._text_len.take(posts)

    def removed(self, posts: np.ndarray) -> np.ndarray:
        """True where moderation removed the post (a drop label)."""
        return self._moderation.take(posts) == _REMOVED

    def interstitial(self, posts: np.ndarray) -> np.ndarray:
        """True where the post carries a label that shows it behind a warning."""
        return self._moderation.take(posts) == _LABELLED

    def created_between(self, since: float, until: float) -> np.ndarray:
        """Indices of posts created in ``[since, until]``, ascending: a binary search over the leading rows known
        to be in time order, a scan of the rows after them (none while posts arrive in order)."""
        lo = max(1, self._base)
        start, end = lo - self._base, self.n + 1 - self._base
        created = self._created.a
        k = max(self._sorted_to, start)
        if k < end and k >= self._checked_to:  # extend the ordered run over the rows added since (a NaN ends it)
            if k == start:
                k += int(created[start] == created[start])
            if k > start:
                bad = np.flatnonzero(~(np.diff(created[k - 1 : end]) >= 0))
                k = k + int(bad[0]) if len(bad) else end
            self._sorted_to, self._checked_to = k, end
        head = created[start:k]
        a, z = int(np.searchsorted(head, since, "left")), int(np.searchsorted(head, until, "right"))
        tail = created[k:end]
        ordered = np.arange(a + lo, z + lo, dtype=np.int64)
        if k == end:
            return ordered
        return np.concatenate([ordered, np.flatnonzero((tail >= since) & (tail <= until)) + (k + self._base)])

    def by_authors(self, authors: np.ndarray, since: float, until: float) -> tuple[np.ndarray, np.ndarray]:
        """Each author's posts created in ``[since, until]``: (flat posts, author by author, oldest first;
        count per author)."""
        created, b = self._created.a, self._base  # every post in an author's list is at or above the base
        key = created.__getitem__ if not b else (lambda i: created[i - b])
        mine = self._by_author.get
        own = [(lst := mine(a, _NO_POSTS))[bisect_left(lst, since, key=key) :] for a in authors.tolist()]
        n_own = np.fromiter(map(len, own), np.int64, len(own))
        posts = np.concatenate(own).astype(np.int64) if own else np.zeros(0, np.int64)
        fresh = created[posts - b] <= until  # the data clock can sit before posts already stored
        if not fresh.all():
            owner = np.repeat(np.arange(len(authors)), n_own)
            posts, n_own = posts[fresh], np.bincount(owner[fresh], minlength=len(authors))
        return posts, n_own

    def posts_of(self, author: int) -> list[int]:
        """Every post by ``author``, in the order they were stored."""
        return self._by_author.get(author, _NO_POSTS).tolist()

    def contains_any(self, posts: np.ndarray, words: list[list[str]]) -> np.ndarray:
        """True where post ``posts[i]``'s lower-cased text contains any of ``words[i]`` (lower case)."""
        text = self._text.text

        def hit(p: int, ws: list[str]) -> bool:
            if not ws:
                return False
            low = text(p).lower()
            return any(w in low for w in ws)

        return np.fromiter((hit(p, ws) for p, ws in zip(posts.tolist(), words)), bool, len(posts))

    # ------------------------------------------------------------------ one post
    def id_of(self, p: int) -> str | None:
        return self._ids.get(p)

    def author_of(self, p: int) -> int:
        return int(self._author.at(p))

    def created_at(self, p: int) -> float:
        return float(self._created.at(p))

    def topic_id_of(self, p: int) -> int:
        """The post's primary topic id (-1 = none)."""
        return int(self._topic.at(p))

    def text_of(self, p: int) -> str:
        return self._text.text(p)

    def topics_of(self, p: int) -> list[str]:
        """The post's topic names (the first is its primary topic); a new list."""
        return list(self._topic_names[p - self._base]) if p >= self._base else []

    def labels_of(self, p: int) -> list[str]:
        """The post's labels; a new list."""
        return list(self._labels.get(p, ()))


def _level(labels: list[str]) -> int:
    return _REMOVED if any(lb in DROP_LABELS for lb in labels) else _LABELLED
