"""The serving state's content part: post embeddings made at ingest, people's content vectors, inferred topics.

- **Post embeddings** (``StaticEmbedder``) are computed when posts enter the state, in one batch per call of
  ``add_posts`` (the build, and each batch of new posts while tailing), never on the request path. They are kept as
  int8 with one float32 scale per post (``dims + 4`` bytes a post), in rows appended in arrival order, with a row
  number per post idx (-1: not embedded). At build, posts created more than ``embed_window_h`` before the newest
  post are not embedded (the feed's freshness windows are far shorter); posts added later always are.
- **A person's content vector** is the decayed sum of the embeddings of the posts they engaged with, each weighted
  by ``weights[kind]`` (negative for "see less"), halving every ``user_half_life_h``; at read time the names of
  their onboarding topics are added, worth ``interest_weight`` likes, and the sum is L2-normalised. Sums are kept
  relative to a decay origin that moves forward on a fixed grid, as the counters' are.
- **Topic inference**: each topic's centroid is the sum of its name's embedding and the embeddings of the posts
  whose primary topic it is; a post that arrives without topics is given the topic whose centroid is nearest,
  when the cosine reaches ``topic_min_similarity``. The inferred topic is kept beside the post's stated topics,
  which it never changes: centroids grow with the posts seen so far, so the inferred topic of a post can depend on
  what arrived before it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from glassfeed.content.embedder import StaticEmbedder
from glassfeed.domain import EventKind
from glassfeed.settings import ContentSettings

#: The decay origin of people's content vectors moves forward once its exponent would exceed this.
_REBASE_EXP = 30.0
#: A person's decayed sum shorter than this (in likes of a unit embedding, at read time) has no direction.
_MIN_MASS = 1e-3
#: Below this many rows ``_add_rows`` adds with ``np.add.at``.
_SMALL = 256


class TopicNames(Protocol):
    """The topic vocabulary (``glassfeed.state.Topics``): names by dense id."""

    @property
    def names(self) -> tuple[str, ...]: ...

    def __len__(self) -> int: ...


def _grow(a: np.ndarray, n: int, fill: Any) -> np.ndarray:
    """``a`` with room for at least ``n`` rows (capacity doubles), new rows ``fill``."""
    if n <= len(a):
        return a
    b = np.full((max(n, 2 * len(a)), *a.shape[1:]), fill, a.dtype)
    b[: len(a)] = a
    return b


class ContentVectors:
    """Post embeddings, people's content vectors and inferred topics (see the module doc); reads are vectorised
    over arrays of post or user idx. With ``config.enabled`` false it holds nothing, loads no model and every read
    answers as for posts and people without content (zeros, -1)."""

    def __init__(self, config: ContentSettings, topics: TopicNames, embedder: StaticEmbedder | None = None) -> None:
        self.config = config
        self.enabled = config.enabled
        self.dims = config.dims
        self.embedder = embedder or StaticEmbedder(config.model, config.dims)
        self.lam = math.log(2.0) / (config.user_half_life_h * 3600.0)
        self._topics = topics
        d = self.dims
        self._weight = np.zeros(max(int(k) for k in EventKind) + 1)
        for name, w in config.weights.items():
            self._weight[int(EventKind.parse(name))] = w
        # posts: row per post idx - base (-1: not embedded); rows of int8 codes and a scale, in arrival order
        self._base = 0
        self._row = np.full(16, -1, np.int32)
        self._topic = np.full(16, -1, np.int32)  # inferred topic id per post idx - base (-1: none)
        self._q = np.zeros((16, d), np.int8)
        self._scale = np.zeros(16, np.float32)
        self._idx = np.zeros(16, np.int64)  # post idx of each row
        self._n_rows = 0
        # people: decayed sums of engaged posts' embeddings, relative to origin t0
        self.t0 = 0.0
        self._user = np.zeros((16, d), np.float32)
        # topics: centroid sums (name embedding + member posts), and how many names are embedded
        self._tsum = np.zeros((16, d), np.float32)
        self._tname = np.zeros((16, d), np.float32)
        self._n_named = 0
        # the last ``user_vectors`` answer, reused while nothing it reads has changed (a request asks twice: the
        # content source and the content_sim feature); ``_version`` counts the writes that could change it
        self._version = 0
        self._memo: tuple[tuple[Any, ...], np.ndarray] | None = None

    # ------------------------------------------------------------------ writes
    def add_posts(
        self, idx: np.ndarray, texts: Sequence[str], created: np.ndarray, topic: np.ndarray, newest: float
    ) -> int:
        """Embed a batch of posts as they enter the state (``topic``: each post's primary topic id, -1 = none;
        ``newest``: the newest post time the state holds). Posts older than ``embed_window_h`` before ``newest``
        and posts without text are not embedded. Returns the posts embedded."""
        if not self.enabled or not len(idx):
            return 0
        self._version += 1
        idx = np.asarray(idx, np.int64)
        window = self.config.embed_window_h * 3600.0
        ok = np.fromiter((bool(t) for t in texts), bool, len(idx)) & (idx >= self._base)
        if window > 0:
            ok &= np.asarray(created) >= newest - window
        if not ok.any():
            return 0
        idx, topic = idx[ok], np.asarray(topic, np.int64)[ok]
        emb = self.embedder.embed([t for t, k in zip(texts, ok.tolist()) if k])
        n = int(idx.max()) + 1 - self._base
        self._row = _grow(self._row, n, -1)
        self._topic = _grow(self._topic, n, -1)
        rel = idx - self._base
        rows = self._row[rel]
        new = rows < 0  # a post embedded again (its text came again) keeps its row
        rows[new] = self._n_rows + np.arange(int(new.sum()))
        self._n_rows += int(new.sum())
        self._q = _grow(self._q, self._n_rows, 0)
        self._scale = _grow(self._scale, self._n_rows, 0.0)
        self._idx = _grow(self._idx, self._n_rows, 0)
        peak = np.abs(emb).max(axis=1)
        scale = np.where(peak > 0, peak / 127.0, 0.0).astype(np.float32)
        self._q[rows] = np.rint(emb / np.where(scale > 0, scale, 1.0)[:, None]).astype(np.int8)
        self._scale[rows], self._idx[rows], self._row[rel] = scale, idx, rows
        # topics: stated ones grow their centroid, then posts without one get the nearest
        self._sync_topics()
        has = topic >= 0
        _add_rows(self._tsum, topic[has], emb[has])
        self._topic[rel[has]] = -1
        if (~has).any():
            self._topic[rel[~has]] = self._infer(emb[~has])
        return len(idx)

    def apply(self, kind: np.ndarray, user: np.ndarray, post: np.ndarray, ts: np.ndarray) -> None:
        """Fold a batch of committed events into people's content vectors (events without a post, or on a post
        without an embedding, or of a kind without a weight change nothing)."""
        if not self.enabled or not len(kind):
            return
        w = self._weight[kind]
        m = (w != 0) & (post > 0)
        if not m.any():
            return
        rows = self._rows(post[m])
        ok = rows >= 0
        if not ok.any():
            return
        u, t, rows, w = user[m][ok], ts[m][ok], rows[ok], w[m][ok]
        self._version += 1
        self._advance(float(t.max()))
        self._user = _grow(self._user, int(u.max()) + 1, 0.0)
        f = (w * np.exp(self.lam * (t - self.t0))).astype(np.float32)
        _add_rows(self._user, u, self._dequantize(rows), f)

    def forget_posts(self, posts: Sequence[int]) -> None:
        """Drop the embeddings and inferred topics of erased posts (their text is gone)."""
        self._version += 1
        rel = np.asarray(posts, np.int64) - self._base
        rel = rel[(rel >= 0) & (rel < len(self._row))]
        rows = self._row[rel]
        self._q[rows[rows >= 0]] = 0
        self._scale[rows[rows >= 0]] = 0.0
        self._row[rel] = -1
        self._topic[rel] = -1

    def forget_user(self, u: int) -> None:
        """Drop a person's content vector (data-rights erasure)."""
        self._version += 1
        if u < len(self._user):
            self._user[u] = 0.0

    def shift_posts(self, base: int) -> None:
        """Stop holding posts below idx ``base`` (the state's retention window): their rows go."""
        if base <= self._base:
            return
        self._version += 1
        cut = min(base - self._base, len(self._row))
        idx = self._idx[: self._n_rows]
        live = self._row[idx - self._base] == np.arange(self._n_rows)  # not erased since
        keep = np.flatnonzero(live & (idx >= base))
        self._q, self._scale, self._idx = self._q[keep].copy(), self._scale[keep].copy(), self._idx[keep].copy()
        self._n_rows = len(keep)
        self._row, self._topic = self._row[cut:].copy(), self._topic[cut:].copy()
        self._row[self._row >= 0] = -1
        self._row[self._idx - base] = np.arange(len(keep), dtype=np.int32)
        self._base = base

    # ------------------------------------------------------------------ reads
    def has(self, posts: np.ndarray) -> np.ndarray:
        """True where the post has an embedding."""
        return self._rows(posts) >= 0

    def embeddings(self, posts: np.ndarray, dims: int | None = None) -> np.ndarray:
        """The posts' unit embeddings (float32, zeros where none), truncated to ``dims`` leading dimensions and
        normalised again when given (the model's shorter embeddings)."""
        rows = self._rows(posts)
        out = np.zeros((len(rows), dims or self.dims), np.float32)
        ok = rows >= 0
        out[ok] = self._dequantize(rows[ok], dims)
        return _unit(out) if dims else out

    def inferred_topic(self, posts: np.ndarray) -> np.ndarray:
        """The topic inferred for each post without stated topics (-1: none, or the post has stated topics)."""
        return self._at(self._topic, posts)

    def user_vectors(self, users: np.ndarray, now: float, interests: Sequence[Sequence[int]]) -> np.ndarray:
        """Each person's unit content vector at ``now`` (float32, zeros for people with neither engagement on
        embedded posts nor onboarding topics); ``interests[i]``: the topic ids ``users[i]`` picked."""
        users = np.asarray(users, np.int64)
        if not self.enabled or not len(users):
            return np.zeros((len(users), self.dims), np.float32)
        prior_on = self.config.interest_weight > 0 and any(interests)
        if prior_on:
            self._sync_topics()  # before the key: embedding new topic names is a write
        key = (self._version, float(now), users.tobytes(), tuple(map(tuple, interests)))
        if self._memo is not None and self._memo[0] == key:
            return self._memo[1]
        out = np.zeros((len(users), self.dims), np.float32)
        have = users < len(self._user)
        out[have] = self._user[users[have]] * np.float32(math.exp(self.lam * (self.t0 - now)))
        out[np.linalg.norm(out, axis=1) < _MIN_MASS] = 0.0  # what is left of likes taken back: rounding, no direction
        if prior_on:
            n = np.fromiter(map(len, interests), np.int64, len(interests))
            flat = np.fromiter((t for ts in interests for t in ts), np.int64, int(n.sum()))
            rows = np.repeat(np.arange(len(users)), n)
            prior = np.zeros_like(out)
            _add_rows(prior, rows, self._tname[flat])
            out += self.config.interest_weight * _unit(prior)
        out = _unit(out)
        out.flags.writeable = False  # shared by the calls the memo answers
        self._memo = (key, out)
        return out

    def nbytes(self) -> int:
        return sum(
            a.nbytes for a in (self._row, self._topic, self._q, self._scale, self._idx, self._user, self._tsum)
        ) + int(self._tname.nbytes)

    # ------------------------------------------------------------------ internals
    def _rows(self, posts: np.ndarray) -> np.ndarray:
        return self._at(self._row, posts)

    def _at(self, per_post: np.ndarray, posts: np.ndarray) -> np.ndarray:
        """``per_post`` (indexed from ``_base``) at ``posts``; -1 for posts outside the held range."""
        rel = np.asarray(posts, np.int64) - self._base
        ok = (rel >= 0) & (rel < len(per_post))
        out = np.full(len(rel), -1, per_post.dtype)
        out[ok] = per_post[rel[ok]]
        return out

    def _dequantize(self, rows: np.ndarray, dims: int | None = None) -> np.ndarray:
        q = self._q[rows] if dims is None else self._q[rows, :dims]
        return q.astype(np.float32) * self._scale[rows, None]

    def _advance(self, tmax: float) -> None:
        if self.t0 == 0.0:
            self.t0 = tmax
        step = _REBASE_EXP / self.lam
        if tmax - self.t0 >= step:
            t = self.t0 + math.floor((tmax - self.t0) / step) * step
            self._user *= np.float32(math.exp(-self.lam * (t - self.t0)))
            self.t0 = t

    def _sync_topics(self) -> None:
        """Embed the names of topics that appeared since the last call (each one's centroid starts there)."""
        n = len(self._topics)
        if n <= self._n_named:
            return
        self._version += 1
        names = self._topics.names[self._n_named :]
        emb = self.embedder.embed([name.replace("_", " ").replace("-", " ") for name in names])
        self._tname = _grow(self._tname, n, 0.0)
        self._tsum = _grow(self._tsum, n, 0.0)
        self._tname[self._n_named : n] = emb
        self._tsum[self._n_named : n] += emb
        self._n_named = n

    def _infer(self, emb: np.ndarray) -> np.ndarray:
        if not self._n_named:
            return np.full(len(emb), -1, np.int32)
        sim = emb @ _unit(self._tsum[: self._n_named]).T
        best = sim.argmax(axis=1)
        ok = sim[np.arange(len(emb)), best] >= self.config.topic_min_similarity
        return np.where(ok, best, -1).astype(np.int32)


def _add_rows(target: np.ndarray, at: np.ndarray, rows: np.ndarray, weight: np.ndarray | None = None) -> None:
    """``target[at[i]] += weight[i] * rows[i]`` for every i (repeated ``at`` add up): one sparse product per
    distinct target row, where ``np.add.at`` over (rows x dims) is many times slower."""
    if len(at) < _SMALL:  # a request's few rows: np.add.at costs less than building a sparse matrix
        np.add.at(target, at, rows if weight is None else rows * weight[:, None])
        return
    keys, inv = np.unique(at, return_inverse=True)
    w = np.ones(len(at), np.float32) if weight is None else weight.astype(np.float32)
    m = sp.csr_matrix((w, (inv, np.arange(len(at)))), shape=(len(keys), len(at)))
    target[keys] += np.asarray(m @ rows, np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norm, out=np.zeros_like(v), where=norm > 0)
