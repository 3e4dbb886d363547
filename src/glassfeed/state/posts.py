"""The post table: author, creation time, primary topic, reply flag, moderation level, divisiveness, text and
labels by post idx, plus each author's posts in creation order."""

from __future__ import annotations

from bisect import bisect_left
from itertools import chain
from typing import Any

import numpy as np

from glassfeed.state._columns import Grow
from glassfeed.state.topics import Topics
from glassfeed.store import ERASED_LABEL

#: Labels that remove a post from every feed (``ERASED_LABEL``: its author erased it); any other label shows it
#: behind an interstitial.
DROP_LABELS = frozenset({"drop", "illegal", "csam", "spam-removed", "removed", ERASED_LABEL})
_VISIBLE, _LABELLED, _REMOVED = 0, 1, 2


class PostTable:
    """Posts by store idx (slot 0 unused); reads are vectorised over arrays of post idx."""

    def __init__(self, topics: Topics) -> None:
        self._topics = topics
        self.n = 0  #: highest post idx loaded
        self.newest_created = 0.0
        self._ids: list[str | None] = [None]
        self._author = Grow(np.int64, 0)
        self._created = Grow(np.float64, 0.0)
        self._topic = Grow(np.int32, -1)  # primary topic id
        self._is_reply = Grow(np.bool_, False)
        self._moderation = Grow(np.int8, _VISIBLE)
        self._divisiveness = Grow(np.float32, 0.0)
        self._text_len = Grow(np.int32, 0)
        self._text: list[str] = [""]
        self._text_lower: list[str] = [""]
        self._topic_names: list[list[str]] = [[]]
        self._labels: list[list[str]] = [[]]
        self._by_author: dict[int, list[int]] = {}

    # ------------------------------------------------------------------ writes
    def add(self, posts: dict[str, Any]) -> None:
        """Install rows as from ``Store.load_posts`` (idx, id, author, created_at, reply_to, text, topics,
        labels, divisiveness)."""
        idx = posts["idx"]
        if not len(idx):
            return
        n = int(idx.max()) + 1
        for g in (
            self._author,
            self._created,
            self._topic,
            self._is_reply,
            self._moderation,
            self._divisiveness,
            self._text_len,
        ):
            g.ensure(n)
        while len(self._ids) < n:
            self._ids.append(None)
            self._text.append("")
            self._text_lower.append("")
            self._topic_names.append([])
            self._labels.append([])
        self._author.a[idx] = posts["author"]
        self._created.a[idx] = posts["created_at"]
        self._is_reply.a[idx] = posts["reply_to"] > 0
        div = posts["divisiveness"]
        self._divisiveness.a[idx] = np.where(np.isnan(div), 0.0, div)
        self._text_len.a[idx] = [len(t) for t in posts["text"]]
        for i, pid, text, topics, labels, a in zip(
            idx.tolist(), posts["id"], posts["text"], posts["topics"], posts["labels"], posts["author"].tolist()
        ):
            self._ids[i] = pid
            self._text[i] = text
            self._text_lower[i] = text.lower()
            self._topic_names[i] = topics
            self._labels[i] = labels
            self._topic.a[i] = self._topics.id(topics[0]) if topics else -1
            if labels:
                self._moderation.a[i] = _level(labels)
            self._by_author.setdefault(a, []).append(i)
        self.n = max(self.n, n - 1)
        self.newest_created = max(self.newest_created, float(posts["created_at"].max()))

    def set_labels(self, labels: dict[int, list[str]]) -> None:
        """Install moderation labels for posts (drop labels remove them from every feed)."""
        for i, lbs in labels.items():
            self._labels[i] = lbs
            self._moderation.a[i] = _level(lbs) if lbs else _VISIBLE

    def forget_posts(self, posts: list[int]) -> None:
        """Tombstone posts their author erased, as ``Store.erase_posts`` does: text, topics and links emptied,
        labelled ``ERASED_LABEL`` (dropped from every feed); idx, id, author and creation time stay."""
        for i in posts:
            self._text[i] = self._text_lower[i] = ""
            self._topic_names[i] = []
            self._labels[i] = [ERASED_LABEL]
        idx = np.asarray(posts, np.int64)
        self._text_len.a[idx] = 0
        self._topic.a[idx] = -1
        self._is_reply.a[idx] = False
        self._divisiveness.a[idx] = 0.0
        self._moderation.a[idx] = _REMOVED

    # ------------------------------------------------------------------ reads (vectorised over post idx)
    @property
    def capacity(self) -> int:
        """One more than the highest post idx any read accepts."""
        return len(self._ids)

    def author(self, posts: np.ndarray) -> np.ndarray:
        return self._author.a[posts]

    def created(self, posts: np.ndarray) -> np.ndarray:
        return self._created.a[posts]

    def topic(self, posts: np.ndarray) -> np.ndarray:
        """Primary topic id per post (-1 = none)."""
        return self._topic.a[posts]

    def is_reply(self, posts: np.ndarray) -> np.ndarray:
        return self._is_reply.a[posts]

    def divisiveness(self, posts: np.ndarray) -> np.ndarray:
        return self._divisiveness.a[posts]

    def text_len(self, posts: np.ndarray) -> np.ndarray:
        return self._text_len.a[posts]

    def removed(self, posts: np.ndarray) -> np.ndarray:
        """True where moderation removed the post (a drop label)."""
        return self._moderation.a[posts] == _REMOVED

    def interstitial(self, posts: np.ndarray) -> np.ndarray:
        """True where the post carries a label that shows it behind a warning."""
        return self._moderation.a[posts] == _LABELLED

    def created_between(self, since: float, until: float) -> np.ndarray:
        """Indices of posts created in ``[since, until]``, ascending."""
        created = self._created.a[1 : self.n + 1]
        return np.flatnonzero((created >= since) & (created <= until)) + 1

    def by_authors(self, authors: np.ndarray, since: float, until: float) -> tuple[np.ndarray, np.ndarray]:
        """Each author's posts created in ``[since, until]``: (flat posts, author by author, oldest first;
        count per author)."""
        created = self._created.a
        key = created.__getitem__
        own = [
            lst[bisect_left(lst, since, key=key) :] if (lst := self._by_author.get(a)) else [] for a in authors.tolist()
        ]
        n_own = np.fromiter(map(len, own), np.int64, len(own))
        posts = np.fromiter(chain.from_iterable(own), np.int64, int(n_own.sum()))
        fresh = created[posts] <= until  # the data clock can sit before posts already stored
        if not fresh.all():
            owner = np.repeat(np.arange(len(authors)), n_own)
            posts, n_own = posts[fresh], np.bincount(owner[fresh], minlength=len(authors))
        return posts, n_own

    def posts_of(self, author: int) -> list[int]:
        """Every post by ``author``, in the order they were stored."""
        return list(self._by_author.get(author, ()))

    def contains_any(self, posts: np.ndarray, words: list[list[str]]) -> np.ndarray:
        """True where post ``posts[i]``'s lower-cased text contains any of ``words[i]`` (lower case)."""
        text = self._text_lower
        return np.fromiter((any(w in text[p] for w in ws) for p, ws in zip(posts.tolist(), words)), bool, len(posts))

    # ------------------------------------------------------------------ one post
    def id_of(self, p: int) -> str | None:
        return self._ids[p]

    def author_of(self, p: int) -> int:
        return int(self._author.a[p])

    def created_at(self, p: int) -> float:
        return float(self._created.a[p])

    def topic_id_of(self, p: int) -> int:
        """The post's primary topic id (-1 = none)."""
        return int(self._topic.a[p])

    def text_of(self, p: int) -> str:
        return self._text[p]

    def topics_of(self, p: int) -> list[str]:
        """The post's topic names (the first is its primary topic)."""
        return self._topic_names[p]

    def labels_of(self, p: int) -> list[str]:
        return self._labels[p]


def _level(labels: list[str]) -> int:
    return _REMOVED if any(lb in DROP_LABELS for lb in labels) else _LABELLED
