"""The terms of each post the serving state holds, as flat arrays: one row per (post, term), with the post's creation
time, whether the term was written as a hashtag in the post's text, and a hash of the post's normalised text.

A post's terms are its topics, which already include the hashtags of its text (``Ingestor.create_posts`` merges
them, lower-cased, and the state keeps every name in ``PostTable.topics_of``). The state keeps the names per post as
Python tuples, so reading them is a loop over posts: the index does that once per post, as posts arrive (``update``
reads only the posts added since the last call), and answers every later question with array operations. A state
rebuilt from the store (``FeedService.reload``) is indexed again from the start."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

from glassfeed.ingest import HASHTAG
from glassfeed.state import ServingState

_URL = re.compile(r"https?://\S+")
_MENTION = re.compile(r"@[\w.:-]+")
_NOT_WORD = re.compile(r"[\W_]+")
#: Posts read per step of ``update`` (the loop over posts is per post; the arrays are built per step).
_STEP = 50_000


def normalise_text(text: str) -> str:
    """The text the lockstep rule compares: lower case, links and mentions removed, punctuation, digits' separators
    and spacing collapsed to single spaces (``"Go #Team!! https://x.y @bob"`` -> ``"go team"``)."""
    t = _MENTION.sub(" ", _URL.sub(" ", text.lower()))
    return _NOT_WORD.sub(" ", t).strip()


def text_hash(text: str) -> int:
    """A stable 63-bit hash of ``normalise_text(text)`` (the same in every process, unlike ``hash``)."""
    digest = hashlib.blake2b(normalise_text(text).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@dataclass(frozen=True, slots=True)
class TermRows:
    """(post, term) rows: ``post`` idx, ``term`` id (``TermIndex.name``), ``created`` (the post's), ``tag``
    (written as ``#term`` in the text), ``text`` (``text_hash`` of the post's text)."""

    post: np.ndarray
    term: np.ndarray
    created: np.ndarray
    tag: np.ndarray
    text: np.ndarray

    def take(self, m: np.ndarray) -> TermRows:
        return TermRows(self.post[m], self.term[m], self.created[m], self.tag[m], self.text[m])

    def __len__(self) -> int:
        return len(self.post)


def _empty() -> TermRows:
    return TermRows(
        np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0), np.zeros(0, np.bool_), np.zeros(0, np.int64)
    )


class TermIndex:
    """The (post, term) rows of one ``ServingState``'s posts (see the module docstring). Not thread-safe: the
    caller holds the state's lock (``FeedService.lock``) around ``update`` and reads."""

    def __init__(self) -> None:
        self._state: ServingState | None = None
        self._names: list[str] = []
        self._ids: dict[str, int] = {}
        self._reset()

    def _reset(self) -> None:
        self._done = 0  # posts up to this idx are indexed
        self._rows = _empty()
        self._pending: list[TermRows] = []
        self.oldest = float("inf")  #: the earliest creation time of any post indexed (with or without terms)

    def name(self, term: int) -> str:
        return self._names[term]

    def names(self, terms: np.ndarray) -> list[str]:
        return [self._names[t] for t in terms.tolist()]

    def update(self, state: ServingState) -> int:
        """Index the posts ``state`` added since the last call (all of them for a new state); returns how many."""
        if state is not self._state:
            self._state = state
            self._reset()
        posts = state.posts
        top = posts.n
        start = self._done + 1
        for lo in range(start, top + 1, _STEP):
            self._index(state, np.arange(lo, min(lo + _STEP, top + 1), dtype=np.int64))
        self._done = max(self._done, top)
        return max(0, top - start + 1)

    def _index(self, state: ServingState, idx: np.ndarray) -> None:
        posts = state.posts
        created = posts.created(idx)
        held = created > 0  # posts below the state's lowest held idx read as created 0
        if held.any():
            self.oldest = min(self.oldest, float(created[held].min()))
        ids = self._ids
        p_out: list[int] = []
        t_out: list[int] = []
        tag_out: list[bool] = []
        h_out: list[int] = []
        for p in idx[held].tolist():
            names = posts.topics_of(p)
            if not names:
                continue
            text = posts.text_of(p)
            tags = {m.lower() for m in HASHTAG.findall(text)}
            h = text_hash(text)
            for name in dict.fromkeys(names):
                t = ids.get(name)
                if t is None:
                    t = ids[name] = len(self._names)
                    self._names.append(name)
                p_out.append(p)
                t_out.append(t)
                tag_out.append(name in tags)
                h_out.append(h)
        if p_out:
            p_arr = np.array(p_out, np.int64)
            self._pending.append(
                TermRows(
                    p_arr,
                    np.array(t_out, np.int32),
                    posts.created(p_arr),
                    np.array(tag_out, np.bool_),
                    np.array(h_out, np.int64),
                )
            )

    def rows(self, since: float, until: float) -> TermRows:
        """The rows of posts created in ``[since, until]``. Rows of posts created before ``since`` are dropped
        from the index when they are half of it (every later question asks about later times, as the clock moves
        forward; a question about an earlier time sees fewer)."""
        if self._pending:
            self._rows = TermRows(
                *(np.concatenate([getattr(r, f) for r in (self._rows, *self._pending)]) for f in TermRows.__slots__)
            )
            self._pending = []
        rows = self._rows
        old = rows.created < since
        if old.sum() * 2 > len(rows):
            self._rows = rows = rows.take(~old)
            old = np.zeros(len(rows), np.bool_)
        return rows.take(~old & (rows.created <= until))
