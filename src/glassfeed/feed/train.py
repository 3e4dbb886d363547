"""Train the feed's models from the store: engagement heads, light ranker, ALS user factors, bridging sides.

Training examples are logged impressions labelled by the engagements that followed them. Features are
computed point-in-time by replaying the event log day by day through a fresh ``ServingState`` (features for a
day's impressions come from the state before that day), so no label leaks into its own features. The split is
by time: the oldest 70% of impressions train, the next 10% calibrate, the newest 20% are the holdout.

The engagement heads fit in this process or on a Dask cluster (``DaskBoosterFit``, ``dask_client``): the examples,
parameters, bins, early-stopping rule, calibration and saved files are the same; only where the trees grow differs.

A models folder is flat (today's layout: the files in the folder itself) or versioned: each training writes
``<folder>/<version>/`` (UTC time + a hash of the files) and then switches the pointer file ``CURRENT`` to it
atomically; ``current_models`` resolves either, and every reader here (``load_models``, ``load_factors``,
``load_ease``) goes through it. The last ``[train] keep_versions`` versions are kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, redirect_stdout
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

from glassfeed.domain import EventKind
from glassfeed.feed.candidates import no_facts
from glassfeed.feed.features import FEATURES, F, pair_context, pair_features
from glassfeed.feed.heads import (
    BoosterFit,
    EngagementHeads,
    LightRanker,
    RequestRanker,
    relevance_grade,
    request_ndcg,
)
from glassfeed.feed.pipeline import Models
from glassfeed.feed.pipeline import candidates as pipeline_candidates
from glassfeed.feed.policy import HEADS, Policy, builtin_policies
from glassfeed.feed.sources import CollaborativeIndex, EaseRetriever
from glassfeed.retrieval.ease import EASE
from glassfeed.retrieval.factor import ALS
from glassfeed.settings import RetrievalSettings, Settings, StateSettings, TrainSettings, packaged_settings
from glassfeed.state import ServingState
from glassfeed.store import Store, models_dir

if TYPE_CHECKING:
    import lightgbm as lgb
    from distributed import Client

#: Which logged event kinds make each head's label positive.
HEAD_LABELS: dict[str, tuple[EventKind, ...]] = {
    "like": (EventKind.LIKE,),
    "repost": (EventKind.REPOST, EventKind.QUOTE),
    "reply": (EventKind.REPLY,),
    "click": (EventKind.CLICK,),
    "dwell": (EventKind.DWELL,),  # with value >= DWELL_THRESHOLD_MS
    "see_less": (EventKind.SEE_LESS, EventKind.NOT_INTERESTED, EventKind.MUTE, EventKind.BLOCK),
    "report": (EventKind.REPORT,),
}
DWELL_THRESHOLD_MS = 10_000.0
#: The head labelled by people's answers to "was this worth your time?" (``_worth_it_keys``), not by an event on the
#: post: it has no entry in ``HEAD_LABELS``.
WORTH_IT = "worth_it"
#: Heads whose label counts as engaging with an impression (``unengaged_share``).
POSITIVE_HEADS: tuple[str, ...] = ("like", "repost", "reply", "click", "dwell")
#: ALS confidence added per engagement kind.
ALS_WEIGHTS = {
    EventKind.LIKE: 1.0,
    EventKind.REPOST: 2.0,
    EventKind.REPLY: 2.0,
    EventKind.QUOTE: 2.0,
    EventKind.BOOKMARK: 1.0,
    EventKind.SHARE: 2.0,
}

Progress = Callable[[str, float], None]


@dataclass
class HeadReport:
    head: str
    positives_train: int
    positives_test: int
    auc: float
    logloss: float
    baseline_auc: float
    baseline_logloss: float
    trees: int = 0  # trees the head evaluates per prediction (0 = predicts its base rate)


@dataclass
class TrainReport:
    n_train: int
    n_cal: int
    n_test: int
    seconds: float
    heads: list[HeadReport] = field(default_factory=list)
    als_users: int = 0
    bridging_users: int = 0
    ranking: dict[str, float] = field(default_factory=dict)  # held-out requests' nDCG@10 per ordering
    ranker_trees: int = 0  # trees of the request ranker (0 = not trained)
    version: str = ""  # the models' version (``current_models``): a version folder's name, or the flat heads' hash

    def table(self) -> str:
        lines = [
            "| head | positives (train/test) | trees | AUC | log-loss | popularity AUC | popularity log-loss |",
            "|---|---|---|---|---|---|---|",
        ]
        for h in self.heads:
            lines.append(
                f"| {h.head} | {h.positives_train}/{h.positives_test} | {h.trees} | {h.auc:.4f} | "
                f"{h.logloss:.4f} | {h.baseline_auc:.4f} | {h.baseline_logloss:.4f} |"
            )
        return "\n".join(lines)


class NotEnoughData(ValueError):
    """The store holds too little history to train a model (a state of the data, not a server fault)."""


def auc(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the ROC curve via the rank-sum formula (ties get average ranks); NaN without both classes."""
    y = y.astype(bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def logloss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean log loss; NaN without examples."""
    if not len(y):
        return float("nan")
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _label_keys(store: Store, n_posts: int) -> dict[str, np.ndarray]:
    """Sorted (user * n + post) keys of every engagement per head, over the whole log."""
    keys: dict[str, list[np.ndarray]] = {h: [] for h in HEADS}
    kind_to_head = {int(k): h for h, kinds in HEAD_LABELS.items() for k in kinds}
    for ev in store.iter_events():
        k = ev.kind.astype(np.int64)
        for kind, head in kind_to_head.items():
            m = (k == kind) & (ev.post > 0)
            if kind == int(EventKind.DWELL):
                m &= ev.value >= DWELL_THRESHOLD_MS
            if m.any():
                keys[head].append(ev.user[m] * n_posts + ev.post[m])
    return {h: np.unique(np.concatenate(v)) if v else np.zeros(0, np.int64) for h, v in keys.items()}


def _labels(key: np.ndarray, labels: dict[str, np.ndarray], answered: np.ndarray) -> np.ndarray:
    """(n, len(HEADS)) labels of the examples ``key``; the worth_it column is NaN where nobody answered."""
    Y = np.stack([np.isin(key, labels[h]) for h in HEADS], axis=1).astype(np.float32)
    Y[~np.isin(key, answered), HEADS.index(WORTH_IT)] = np.nan
    return Y


def _worth_it_keys(store: Store, n_posts: int) -> tuple[np.ndarray, np.ndarray]:
    """(answered, yes): sorted (user * n + post) keys of the impressions on the pages people answered "was this
    worth your time?" about (a ``worth_it`` event naming the page's ``request_id``; the newest answer counts), and
    of those answered yes (value >= 0.5). The ``worth_it`` head is labelled on answered impressions only."""
    none = np.zeros(0, np.int64)
    answers = store.events_in_window(kinds=[EventKind.WORTH_IT], object_columns=True)
    if not len(answers) or answers.request_id is None:
        return none, none
    verdict = {
        (int(u), r): v >= 0.5
        for u, r, v in zip(answers.user.tolist(), answers.request_id.tolist(), answers.value.tolist())
        if isinstance(r, str)
    }
    shown = store.events_in_window(kinds=[EventKind.IMPRESSION], object_columns=True)
    if shown.request_id is None:
        return none, none
    got = [verdict.get((u, r)) for u, r in zip(shown.user.tolist(), shown.request_id.tolist())]
    answered = np.fromiter((g is not None for g in got), bool, len(got))
    yes = np.fromiter((g is True for g in got), bool, len(got))
    key = shown.user.astype(np.int64) * n_posts + shown.post.astype(np.int64)
    return np.unique(key[answered]), np.unique(key[yes])


@dataclass
class Examples:
    """Training examples: one row per logged impression kept (and per sampled candidate), in replay order."""

    X: np.ndarray  # (n, len(FEATURES)) features at impression time
    Y: np.ndarray  # (n, len(HEADS)) labels
    ts: np.ndarray  # impression time
    user: np.ndarray
    post: np.ndarray
    window: np.ndarray  # the replay window (0, 1, ...): a user's examples in one window form one request

    @classmethod
    def empty(cls) -> Examples:
        z = np.zeros(0, np.int64)
        return cls(np.zeros((0, len(F)), np.float32), np.zeros((0, len(HEADS)), np.float32), np.zeros(0), z, z, z)

    @property
    def request(self) -> np.ndarray:
        """One integer key per (user, window): the groups a learning-to-rank model orders within."""
        return self.window * (int(self.user.max(initial=0)) + 1) + self.user

    def __len__(self) -> int:
        return len(self.ts)


@dataclass(frozen=True)
class Retrieval:
    """What the replay needs to compute the retrieval features as serving does: the candidate sources' models
    (fit on the log before ``start_ts`` only, so a feature never saw its own label), the ALS user factors they
    put in the replay state, and the policy whose sources (and sizes) make the candidate sets."""

    models: Models
    user_vec: np.ndarray | None
    policy: Policy
    start_ts: float = -np.inf  # examples are drawn from impressions at or after this time


def _pair_keys(store: Store, n_posts: int, kinds: tuple[EventKind, ...]) -> np.ndarray:
    """Sorted distinct (user * n + post) keys of the events of ``kinds`` over the whole log."""
    ks = [int(k) for k in kinds]
    parts = [
        ev.user[m] * n_posts + ev.post[m]
        for ev in store.iter_events()
        if (m := np.isin(ev.kind, ks) & (ev.post > 0)).any()
    ]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def unengaged_share(store: Store, n_posts: int) -> float:
    """Share of the logged (user, post) impressions that no positive engagement followed: near 0 in a log that
    holds only what people rated (an imported catalogue), large in a real feed's log."""
    imp = _pair_keys(store, n_posts, (EventKind.IMPRESSION,))
    if not len(imp):
        return 0.0
    engaged = _pair_keys(store, n_posts, tuple(k for h in POSITIVE_HEADS for k in HEAD_LABELS[h]))
    return float(1.0 - np.isin(imp, engaged).mean())


def build_examples(
    store: Store,
    cfg: StateSettings | None = None,
    chunk_s: float = 86400.0,
    max_rows: int = 400_000,
    seed: int = 0,
    progress: Progress | None = None,
    *,
    retrieval: Retrieval | None = None,
    position: bool = True,
    negatives: float = 0.0,
) -> Examples:
    """Point-in-time examples for logged impressions, by replaying the log in ``chunk_s`` windows: a window's
    impressions get their features (``pair_context`` + ``pair_features``, as serving computes them) from the
    state holding every event before the window, at their own impression time. Beyond ``max_rows``, whole
    requests (a user's impressions in one window) are sampled, not single impressions.

    With ``retrieval``, each window's users get their candidate set from ``pipeline.candidates`` (the policy's
    sources on that state, at the window's last impression time), so the retrieval features (which sources found
    the pair, social proof, ``collab_score``) are those serving would compute; a logged impression no source
    would produce has none. ``negatives`` > 0 adds, per logged impression, that many of the same user's candidates
    that the log never shows them nor sees them engage with, labelled negative, drawn uniformly and featurised
    at the time of one of the request's logged impressions (drawing them by their collaborative rank, "hard
    negatives", was measured to teach the heads that the collaborative score misleads: it picks the negatives
    by that very score) (for logs that hold only what people chose, e.g. ratings); such a log's impressions are
    then kept only where a source finds them, so that "found by a source" does not itself mark the negatives.
    ``position``: the impression's logged slot is a feature (else unknown, NaN).
    """
    say = progress or (lambda s, f: None)
    rng = np.random.default_rng(seed)
    state = ServingState.for_replay(store, cfg, user_vec=None if retrieval is None else retrieval.user_vec)
    n_posts = state.posts.capacity + 1
    labels = _label_keys(store, n_posts)
    answered, worth_yes = _worth_it_keys(store, n_posts)
    labels[WORTH_IT] = worth_yes
    start_ts = -np.inf if retrieval is None else retrieval.start_ts
    total_imp = store.count_events(EventKind.IMPRESSION)
    events = np.concatenate([np.c_[c.seq, c.ts] for c in store.iter_events()]) if total_imp else None
    if events is None:
        return Examples.empty()
    in_window = float(np.mean(events[:, 1] >= start_ts))  # share of the log the examples come from
    keep_p = min(1.0, max_rows / max(total_imp * (1.0 + negatives) * in_window, 1.0))
    shown = _pair_keys(store, n_posts, (EventKind.IMPRESSION,)) if negatives > 0 else np.zeros(0, np.int64)
    engaged = np.unique(np.concatenate(list(labels.values()))) if negatives > 0 else np.zeros(0, np.int64)
    parts: list[Examples] = []
    t_start, t_end = float(events[:, 1].min()), float(events[:, 1].max())
    bounds = np.arange(t_start, t_end + chunk_s, chunk_s)
    for i, (a, b) in enumerate(pairwise(bounds.tolist())):
        chunk = store.events_in_window(a, b)
        if not len(chunk):
            continue
        imp = (chunk.kind == int(EventKind.IMPRESSION)) & (chunk.post > 0) & (chunk.ts >= start_ts)
        if keep_p < 1.0:  # keep whole requests (a user's impressions in the window), so rankers see each one whole
            who = np.unique(chunk.user[imp])
            imp &= np.isin(chunk.user, who[rng.random(len(who)) < keep_p])
        if imp.any():
            u, p, t = chunk.user[imp], chunk.post[imp], chunk.ts[imp]
            pos = (
                np.where(chunk.position[imp] >= 0, chunk.position[imp], np.nan) if position else np.full(len(u), np.nan)
            )
            users, row = np.unique(u, return_inverse=True)
            facts = no_facts(len(u))
            if retrieval is not None:
                now = float(t.max())
                cands = pipeline_candidates(state, retrieval.models, users, retrieval.policy, now)
                ckey = (cands.row << 32) | cands.post
                at = np.searchsorted(ckey, (row << 32) | p)  # dedupe leaves the table sorted by (row, post)
                found = at < len(ckey)
                found[found] = ckey[at[found]] == ((row << 32) | p)[found]
                for k in facts:
                    facts[k][found] = cands.extra[k][at[found]]
                top = np.full(len(users), np.nan)  # a per-person fact: also for impressions no source found
                top[cands.row] = cands.extra["collab_top"]  # the same value on every row of a person
                facts["collab_top"] = top[row]
                if negatives > 0:  # a log of choices: learn from the choices among what the sources offer
                    u, p, t, pos, row = (x[found] for x in (u, p, t, pos, row))
                    facts = {k: v[found] for k, v in facts.items()}
                if negatives > 0 and len(cands):
                    pick = _sample_unserved(
                        cands.row,
                        users[cands.row] * n_posts + cands.post,
                        shown,
                        engaged,
                        np.bincount(row, minlength=len(users)) * negatives,
                        rng,
                    )
                    if len(pick):
                        row = np.r_[row, cands.row[pick]]
                        p = np.r_[p, cands.post[pick]]
                        u = users[row]
                        t = np.r_[t, _times_like(row[: len(t)], t, cands.row[pick], rng)]
                        pos = np.r_[pos, np.full(len(pick), np.nan)]
                        facts = {k: np.r_[v, cands.extra[k][pick]] for k, v in facts.items()}
            key = u * n_posts + p
            ctx = pair_context(state, users, row, p, facts, pos)
            parts.append(
                Examples(
                    pair_features(state, ctx, t, scorer=None if retrieval is None else retrieval.models.scorer),
                    _labels(key, labels, answered),
                    t,
                    u,
                    p,
                    np.full(len(u), i, np.int64),
                )
            )
        state.apply_events(chunk)
        say("replay", (i + 1) / (len(bounds) - 1))
    if not parts:
        return Examples.empty()
    return Examples(
        *(np.concatenate([getattr(e, f) for e in parts]) for f in ("X", "Y", "ts", "user", "post", "window"))
    )


def _times_like(row: np.ndarray, t: np.ndarray, want_row: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each entry of ``want_row``, the time of a uniformly drawn logged impression of the same row (every
    wanted row holds one). A sampled negative is featurised at the time of one of its request's real impressions,
    so that time-dependent features (``age_h``, decayed counters, ``trending``) are distributed alike for both
    labels; at the request's last time instead, "latest in the request" would mark every negative (measured:
    lambdarank 0.39 nDCG@10 on such held-out requests, 0.29 at serving, where every candidate shares one time)."""
    order = np.argsort(row, kind="stable")
    first = np.searchsorted(row[order], want_row, side="left")
    count = np.searchsorted(row[order], want_row, side="right") - first
    return t[order[first + np.floor(rng.random(len(want_row)) * count).astype(np.int64)]]


def _sample_unserved(
    row: np.ndarray, key: np.ndarray, shown: np.ndarray, engaged: np.ndarray, want: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Indices of up to ``want[r]`` (rounded) candidates of each row ``r`` whose (user, post) ``key`` the log never
    shows nor engages with, drawn uniformly without replacement."""
    free = ~(np.isin(key, shown) | np.isin(key, engaged))
    idx = np.flatnonzero(free)
    if not len(idx):
        return idx
    order = idx[np.lexsort((rng.random(len(idx)), row[idx]))]  # shuffled within each row
    r = row[order]
    first = np.searchsorted(r, r)  # index of the row's first entry
    rank_in_row = np.arange(len(order)) - first
    n = np.floor(want + rng.random(len(want))).astype(np.int64)  # stochastic rounding of fractional ratios
    return np.sort(order[rank_in_row < n[r]])


def train_heads(
    X: np.ndarray,
    Y: np.ndarray,
    ts: np.ndarray,
    heads: EngagementHeads | None = None,
    fit_booster: BoosterFit | None = None,
    request: np.ndarray | None = None,
    policy: Policy | None = None,
) -> tuple[EngagementHeads, LightRanker, RequestRanker, TrainReport]:
    """Time-split, fit, calibrate and evaluate against the popularity baseline (post like-rate); ``fit_booster``
    (default: in this process) fits each head's trees, e.g. ``DaskBoosterFit`` on a Dask cluster.

    With ``request`` (one key per example: ``Examples.request``), also fit the ``RequestRanker`` on the same split
    and compare, on the held-out requests, its nDCG@10 with that of the heads' score under ``policy`` (default:
    ``TRAIN_POLICY``'s weights), of ``collab_score`` alone (retrieval only) and of the post's like-rate
    (popularity) (``TrainReport.ranking``)."""
    t0 = time.perf_counter()
    order = np.argsort(ts, kind="stable")
    X, Y = X[order], Y[order]
    n = len(X)
    a, b = int(0.7 * n), int(0.8 * n)
    model = heads or EngagementHeads()
    req = None if request is None else request[order]
    model.fit(X[:a], Y[:a], X[a:b], Y[a:b], fit_booster=fit_booster, request_cal=None if req is None else req[a:b])
    light = LightRanker().fit(X[:a], Y[:a, [HEADS.index(h) for h in ("like", "repost", "reply", "dwell")]].max(1))
    P = model.predict(X[b:])
    report = TrainReport(n_train=a, n_cal=b - a, n_test=n - b, seconds=0.0)
    pop = X[b:, F["like_rate"]]
    for h, name in enumerate(HEADS):
        known = ~np.isnan(Y[b:, h])  # worth_it: the examples someone answered about
        y, p_h, pop_h = Y[b:, h][known], P[known, h], pop[known]
        base = float(np.nanmean(Y[:a, h])) if a and not np.isnan(Y[:a, h]).all() else 0.0
        # popularity baseline probability: the post's like-rate rescaled to the head's base rate
        scale = base / max(float(X[:a, F["like_rate"]].mean()), 1e-9)
        report.heads.append(
            HeadReport(
                head=name,
                positives_train=int(np.nansum(Y[:a, h])),
                positives_test=int(y.sum()),
                auc=auc(y, p_h),
                logloss=logloss(y, p_h),
                baseline_auc=auc(y, pop_h),
                baseline_logloss=logloss(y, np.clip(pop_h * scale, 1e-6, 1 - 1e-6)),
                trees=model.trees.get(name, 0),
            )
        )
    ranker = RequestRanker()
    if req is not None:
        grade = relevance_grade(Y)
        ranker.fit(X[:a], grade[:a], req[:a], X[a:b], grade[a:b], req[a:b])
        weights = np.asarray((policy or builtin_policies()[TRAIN_POLICY]).weight_vector())
        held = {
            "heads": P @ weights,
            "collab_score": X[b:, F["collab_score"]].astype(np.float64),
            "popularity": pop.astype(np.float64),  # the post's like-rate, the heads' AUC baseline
        }
        if ranker.trained:
            held["lambdarank"] = ranker.score(X[b:])
        report.ranking = {k: request_ndcg(v, grade[b:], req[b:]) for k, v in held.items()}
        report.ranker_trees = ranker.trees
    report.seconds = time.perf_counter() - t0
    return model, light, ranker, report


def best_iteration(losses: np.ndarray, stopping_rounds: int) -> int:
    """Trees to keep by LightGBM's ``early_stopping`` rule on a held-out loss curve (``losses[i]``: the loss with
    i + 1 trees): the round of lowest loss, stopping once it has not improved for ``stopping_rounds`` rounds."""
    best, best_i = float("inf"), 0
    for i, loss in enumerate(losses.tolist()):
        if loss < best:
            best, best_i = loss, i
        elif i - best_i >= stopping_rounds:
            break
    return best_i + 1


def held_out_losses(booster: lgb.Booster, X: np.ndarray, y: np.ndarray, init: np.ndarray | None = None) -> np.ndarray:
    """Binary log-loss of ``booster`` on (X, y) after each boosting round (one prediction per tree), the trees
    starting from the raw score ``init`` (default 0)."""
    n = booster.num_trees()
    raw = np.zeros(len(X)) if init is None else np.asarray(init, np.float64).copy()
    losses = np.empty(n)
    for i in range(n):
        raw += np.asarray(booster.predict(X, raw_score=True, start_iteration=i, num_iteration=1))
        losses[i] = logloss(y, 1.0 / (1.0 + np.exp(-raw)))
    return losses


def reference_bins(params: dict[str, Any], X: np.ndarray) -> bytes:
    """LightGBM's bin mappers for ``X`` under ``params``, found as ``fit_booster_local`` finds them (a Dataset of
    the same rows and parameters, so the same sample), as the bytes of a one-row binary Dataset that carries them."""
    import lightgbm as lgb

    ref = lgb.Dataset(X, params=params, feature_name=list(FEATURES), free_raw_data=True).construct()
    with tempfile.TemporaryDirectory(prefix="glassfeed-bins-") as d:
        path = Path(d) / "bins.bin"
        ref.subset([0]).save_binary(path)
        return path.read_bytes()


def _reference_dataset(bins: bytes, params: dict[str, Any]) -> lgb.Dataset:
    """The Dataset ``reference_bins`` wrote, loaded through a temporary file (LightGBM reads binary Datasets from
    files only)."""
    import lightgbm as lgb

    fd, name = tempfile.mkstemp(prefix="glassfeed-bins-", suffix=".bin")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(bins)
        return lgb.Dataset(name, params=params).construct()
    finally:
        os.unlink(name)


def _acquire_port() -> tuple[socket.socket, int]:
    """A free TCP port on this Dask worker, held open until its LightGBM machine starts (as ``lightgbm.dask`` does)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", 0))
    return s, int(s.getsockname()[1])


def _port(held: tuple[socket.socket, int]) -> int:
    return held[1]


def _fit_machine(
    params: dict[str, Any],
    bins: bytes,
    X: np.ndarray,
    y: np.ndarray,
    rounds: int,
    network: dict[str, Any],
    held: tuple[socket.socket, int],
    keep: bool,
    init: np.ndarray | None = None,
) -> str | None:
    """One LightGBM machine of a data-parallel fit, on a Dask worker: its block of rows, binned with the bin mappers
    ``bins`` (a Dataset built against a reference takes its bins, finding none of its own), ``rounds`` boosting
    rounds in step with the other machines over ``network``; the model's text when ``keep`` (every machine ends
    with the same trees)."""
    import lightgbm as lgb

    ref = _reference_dataset(bins, params)
    ds = lgb.Dataset(
        X, y, init_score=init, reference=ref, params=params, feature_name=list(FEATURES), free_raw_data=True
    )
    sock, port = held
    sock.close()
    booster = lgb.Booster({**params, **network, "local_listen_port": port}, ds)
    try:
        for _ in range(rounds):
            booster.update()
        return booster.model_to_string() if keep else None
    finally:
        booster.free_network()


@dataclass
class _Blocks:
    """The training rows on the Dask workers (one contiguous block per worker, in time order) and their bins."""

    X: np.ndarray
    workers: list[str]
    sizes: list[int]
    futures: list[Any]
    bins: bytes


@dataclass
class DaskBoosterFit:
    """``heads.BoosterFit`` on a Dask cluster: LightGBM's data-parallel learner (``tree_learner = "data"``), one
    LightGBM machine per Dask worker, each holding one contiguous block of the training rows; every round the
    machines sum their histograms, so the trees are those of one process up to the order of float sums, provided
    every machine bins the features as one process does. So they all bin with the bin mappers this process finds
    from all the rows (``reference_bins``). LightGBM's own distributed Dataset construction has each machine find
    the bins of a share of the features from its own rows only; ``lightgbm.dask`` builds each machine's Dataset
    with no way to pass bins, and ``forcedbins_filename`` is read with the wrong feature index on every machine
    but the first (LightGBM 4.7, lightgbm-org/LightGBM#7436), hence this driver instead of ``lightgbm.dask``.

    One worker gives the one-process trees exactly. With more, the first tree of each head is the one-process tree
    and later ones may differ: the data-parallel learner knows a leaf's row count only as estimated from its
    hessians (one process counts it), and the ``min_child_samples`` rule reads it (docs/feed.md, "Dask").

    The machines train without early stopping: a head that early-stops grows all its rounds and keeps the trees up
    to the round LightGBM's callback would have chosen on the same held-out slice (``best_iteration`` on
    ``held_out_losses``, computed in this process)."""

    client: Client
    network_timeout_min: int = 10  # LightGBM's ``time_out``: how long machines wait for each other ([train])
    _blocks: _Blocks | None = field(default=None, repr=False)

    def _scatter(self, params: dict[str, Any], X: np.ndarray) -> _Blocks:
        """``X`` in one row block per worker, and its bin mappers: once for all the heads."""
        if self._blocks is not None and self._blocks.X is X:
            return self._blocks
        workers = sorted(self.client.ncores())
        pairs = [(b, w) for b, w in zip(np.array_split(X, len(workers)), workers, strict=True) if len(b)]
        futures = [self.client.scatter(b, workers=[w], hash=False) for b, w in pairs]
        self._blocks = _Blocks(X, [w for _, w in pairs], [len(b) for b, _ in pairs], futures, reference_bins(params, X))
        return self._blocks

    def _network(self, workers: list[str]) -> tuple[list[Any], str]:
        """A port held open on each worker (futures) and LightGBM's ``machines`` list: ``host:port``, worker order."""
        c = self.client
        held = [c.submit(_acquire_port, workers=[w], allow_other_workers=False, pure=False) for w in workers]
        ports = c.gather([c.submit(_port, h, workers=[w], pure=False) for h, w in zip(held, workers, strict=True)])
        return held, ",".join(f"{urlparse(w).hostname}:{p}" for w, p in zip(workers, ports, strict=True))

    def __call__(
        self,
        params: dict[str, Any],
        X: np.ndarray,
        y: np.ndarray,
        rounds: int,
        valid: tuple[np.ndarray, np.ndarray] | None,
        stopping_rounds: int,
        init: tuple[np.ndarray, np.ndarray | None] | None = None,
    ) -> lgb.Booster:
        import lightgbm as lgb

        c = self.client
        blocks = self._scatter(params, X)
        cuts = np.cumsum(blocks.sizes)[:-1]
        labels = np.split(y, cuts)
        ys = [c.scatter(v, workers=[w], hash=False) for v, w in zip(labels, blocks.workers, strict=True)]
        inits: list[Any] = (
            [None] * len(ys)
            if init is None
            else [c.scatter(v, workers=[w], hash=False) for v, w in zip(np.split(init[0], cuts), blocks.workers)]
        )
        threads = c.ncores()  # LightGBM threads per machine: the worker's
        # LightGBM's network messages (printed whatever its verbosity) go to stderr, not into a command's output
        with redirect_stdout(sys.stderr):
            held, machines = self._network(blocks.workers)
            network = {
                "tree_learner": "data",
                "machines": machines,
                "num_machines": len(blocks.workers),
                "time_out": self.network_timeout_min,
            }
            fits = [
                c.submit(
                    _fit_machine,
                    *(params, blocks.bins, xf, yf, rounds, {**network, "num_threads": threads[w]}, h, i == 0, it),
                    workers=[w],
                    allow_other_workers=False,
                    pure=False,
                )
                for i, (w, xf, yf, h, it) in enumerate(
                    zip(blocks.workers, blocks.futures, ys, held, inits, strict=True)
                )
            ]
            text = c.gather(fits)[0]
        booster = lgb.Booster(model_str=text)
        if valid is None or not stopping_rounds:
            return booster
        keep = best_iteration(held_out_losses(booster, *valid, None if init is None else init[1]), stopping_rounds)
        return lgb.Booster(model_str=booster.model_to_string(num_iteration=keep))


@contextmanager
def dask_client(address: str, cfg: TrainSettings | None = None) -> Iterator[Client]:
    """A Dask client: ``address`` ``"local"`` starts a ``LocalCluster`` of ``[train] dask_workers`` workers (closed
    on exit), any other address (``tcp://host:8786``) connects to that scheduler."""
    from distributed import Client, LocalCluster

    cfg = cfg or packaged_settings().train
    if address == "local":
        with (
            LocalCluster(
                n_workers=cfg.dask_workers,
                threads_per_worker=cfg.dask_threads_per_worker,
                processes=cfg.dask_processes,
                dashboard_address=":0",  # its HTTP endpoints on a free port (8787 may be taken)
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
    else:
        with Client(address) as client:
            yield client


def engagement_matrix(store: Store, n_users: int, n_posts: int, until_ts: float = np.inf) -> sp.csr_matrix:
    """Users x posts confidence matrix from positive engagements before ``until_ts`` (ALS_WEIGHTS; row/column 0
    unused)."""
    us, ps, ws = [], [], []
    for ev in store.iter_events():
        for kind, w in ALS_WEIGHTS.items():
            m = (ev.kind == int(kind)) & (ev.post > 0) & (ev.ts < until_ts)
            us.append(ev.user[m])
            ps.append(ev.post[m])
            ws.append(np.full(int(m.sum()), w, np.float32))
    u, p = (np.concatenate(x) if x else np.zeros(0, np.int64) for x in (us, ps))
    weight = np.concatenate(ws) if ws else np.zeros(0, np.float32)
    X = sp.csr_matrix((weight, (u, p)), shape=(n_users + 1, n_posts + 1), dtype=np.float32)
    X.sum_duplicates()
    return X


def fit_als(X: sp.csr_matrix, factors: int = 32, iterations: int = 10, seed: int = 0) -> np.ndarray:
    """ALS user factors from the engagement matrix (rows indexed by user idx; row 0 unused)."""
    model = ALS(factors=factors, iterations=iterations, random_state=seed).fit(X)
    return np.asarray(model.user_factors_, np.float32)


def fit_ease(X: sp.csr_matrix, lam: float, gamma: float, max_items: int) -> tuple[np.ndarray, np.ndarray]:
    """EASE item-item weights over the ``max_items`` most engaged posts: (post idx per column, B)."""
    model = EASE(lam=lam, gamma=gamma, max_items=max_items).fit(X)
    return np.asarray(model.items_, np.int64), model.B_


def fit_bridging_sides(
    store: Store, n_users: int, n_posts: int, iterations: int = 25, lam_i: float = 0.15, lam_f: float = 0.03
) -> np.ndarray:
    """Community Notes' 1-D model r = mu + i_u + i_n + f_u * f_n on (impression -> liked?) ratings.

    Returns user factors f_u rescaled to unit standard deviation times 0.5 (row 0 unused); 0 for users with
    no impressions. The sign is arbitrary; what matters is which users share a side.
    """
    us, ps = [], []
    liked: list[np.ndarray] = []
    for ev in store.iter_events():
        m = (ev.kind == int(EventKind.IMPRESSION)) & (ev.post > 0)
        us.append(ev.user[m])
        ps.append(ev.post[m])
        lk = (ev.kind == int(EventKind.LIKE)) & (ev.post > 0)
        liked.append(ev.user[lk] * (n_posts + 1) + ev.post[lk])
    if not us:
        return np.zeros(n_users + 1, np.float32)
    u, p = np.concatenate(us), np.concatenate(ps)
    key = u * (n_posts + 1) + p
    key, first = np.unique(key, return_index=True)
    u, p = u[first], p[first]
    y = np.isin(key, np.concatenate(liked)).astype(np.float64)
    nu, npost = n_users + 1, n_posts + 1
    rng = np.random.default_rng(0)
    mu, iu, ip = float(y.mean()), np.zeros(nu), np.zeros(npost)
    fu, fp = rng.normal(0, 0.1, nu), rng.normal(0, 0.1, npost)
    cu, cp = np.bincount(u, minlength=nu), np.bincount(p, minlength=npost)
    for _ in range(iterations):
        r = y - mu - iu[u] - ip[p] - fu[u] * fp[p]
        mu += r.sum() / (len(y) + lam_i)
        r = y - mu - ip[p] - fu[u] * fp[p]
        iu = np.bincount(u, r, nu) / (cu + lam_i)
        r = y - mu - iu[u] - fu[u] * fp[p]
        ip = np.bincount(p, r, npost) / (cp + lam_i)
        r = y - mu - iu[u] - ip[p]
        fu = np.bincount(u, r * fp[p], nu) / (np.bincount(u, fp[p] ** 2, nu) + lam_f)
        fp = np.bincount(p, r * fu[u], npost) / (np.bincount(p, fu[u] ** 2, npost) + lam_f)
    fu[cu == 0] = 0.0
    sd = fu[cu > 0].std() if (cu > 0).any() else 1.0
    return (0.5 * fu / max(sd, 1e-9)).astype(np.float32)


#: The pointer file of a versioned models folder: the name of the current version, one line.
POINTER = "CURRENT"
#: A version folder's name: UTC time of the training, then the first 8 hex digits of the hash of its files.
VERSION_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")
#: What one training writes (flat in the folder, or in a version folder).
MODEL_FILES = ("heads", "als_user_factors.npy", "ease.npz", "bridging_sides.npy", "train_report.json")


def current_models(root: str | Path) -> tuple[Path, str]:
    """(folder holding the current models, version) of the models folder ``root``: the version ``CURRENT``
    names; without a pointer, ``root`` itself (the flat layout, or a version folder given directly), whose
    version is its folder name when that is a version's, else the first 12 hex digits of the SHA-256 of the
    heads' metadata, or ``"untrained"`` without heads. A pointer naming a missing version is an error."""
    d = Path(root)
    ptr = d / POINTER
    if ptr.is_file():
        version = ptr.read_text().strip()
        if not VERSION_RE.match(version) or not (d / version).is_dir():
            raise ValueError(f"{ptr}: names {version!r}, which is not a model version in {d}")
        return d / version, version
    if VERSION_RE.match(d.name):
        return d, d.name
    meta = d / "heads" / "heads.json"
    return d, hashlib.sha256(meta.read_bytes()).hexdigest()[:12] if meta.is_file() else "untrained"


def model_versions(root: str | Path) -> list[str]:
    """The version folders in ``root``, oldest first (names start with their UTC time)."""
    d = Path(root)
    return sorted(p.name for p in d.iterdir() if p.is_dir() and VERSION_RE.match(p.name)) if d.is_dir() else []


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _files_hash(d: Path) -> str:
    """SHA-256 over the relative paths and bytes of the model files in ``d``: the same models give the same hash.
    Each file and folder is fsynced on the way."""
    h = hashlib.sha256()
    for f in sorted(p for p in d.rglob("*") if p.is_file()):
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
            h.update(f.relative_to(d).as_posix().encode() + b"\0" + fh.read())
    for sub in (p for p in d.rglob("*") if p.is_dir()):
        _fsync_dir(sub)
    return h.hexdigest()


def switch_models(root: str | Path, version: str) -> None:
    """Point ``root``'s ``CURRENT`` at ``version`` atomically: a temporary file beside it, fsynced, renamed over it,
    then the folder fsynced (a reader sees the old version or the new one, never a torn pointer)."""
    d = Path(root)
    if not VERSION_RE.match(version) or not (d / version).is_dir():
        raise ValueError(f"{version!r} is not a model version in {d}")
    tmp = d / f".{POINTER}.{os.getpid()}.{secrets.token_hex(4)}"
    with open(tmp, "w") as fh:
        fh.write(version + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, d / POINTER)
    _fsync_dir(d)


def prune_versions(root: str | Path, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` version folders of ``root`` (never the current one) and the flat
    model files left from before the first version; returns the versions deleted."""
    d = Path(root)
    if not (d / POINTER).is_file():
        return []
    _, current = current_models(d)
    versions = model_versions(d)
    old = [v for v in versions[: max(0, len(versions) - keep)] if v != current]
    for v in old:
        shutil.rmtree(d / v, ignore_errors=True)
    for name in MODEL_FILES:
        f = d / name
        if f.is_dir():
            shutil.rmtree(f, ignore_errors=True)
        elif f.exists():
            f.unlink()
    return old


def heads_from(train: TrainSettings) -> EngagementHeads:
    """Untrained heads with the ``[train]`` section's regularisation (``heads_*``)."""
    return EngagementHeads(
        feature_fraction=train.heads_feature_fraction,
        bagging_fraction=train.heads_bagging_fraction,
        lambda_l2=train.heads_l2,
        offset_feature=train.heads_offset,
        stopping=train.heads_stopping,
    )


def _write_models(
    out: Path,
    store: Store,
    ex: Examples,
    seed: int,
    retrieval: RetrievalSettings,
    progress: Progress,
    fit_booster: BoosterFit | None,
    t0: float,
    train: TrainSettings,
) -> TrainReport:
    """Train the heads, ALS, EASE (when chosen) and bridging sides on ``ex`` / ``store`` and write them to ``out``
    (the report is the caller's to write, once it knows the version)."""
    n_users, n_posts = store.count("users"), store.count("posts")
    progress("heads", 0.0)
    heads, light, ranker, report = train_heads(
        ex.X, ex.Y, ex.ts, heads=heads_from(train), fit_booster=fit_booster, request=ex.request
    )
    heads.save(out / "heads")
    light.save(out / "heads")
    ranker.save(out / "heads")
    progress("als", 0.0)
    X = engagement_matrix(store, n_users, n_posts)
    user_vec = fit_als(X, seed=seed)
    np.save(out / "als_user_factors.npy", user_vec)
    ease_file = out / "ease.npz"
    if retrieval.collaborative_model == "ease":
        progress("ease", 0.0)
        items, B = fit_ease(X, retrieval.ease_lam, retrieval.ease_gamma, retrieval.ease_max_items)
        np.savez(ease_file, items=items, B=B)
    elif ease_file.exists():
        ease_file.unlink()
    report.als_users = int((np.abs(user_vec).sum(axis=1) > 0).sum())
    progress("bridging", 0.0)
    side = fit_bridging_sides(store, n_users, n_posts)
    np.save(out / "bridging_sides.npy", side)
    report.bridging_users = int((side != 0).sum())
    report.seconds = time.perf_counter() - t0
    return report


def _write_report(out: Path, report: TrainReport) -> None:
    with open(out / "train_report.json", "w") as fh:
        fh.write(json.dumps(asdict(report), indent=1))
        fh.flush()
        os.fsync(fh.fileno())


def train_all(
    store: Store,
    folder: str | Path | None = None,
    max_rows: int = 400_000,
    progress: Progress | None = None,
    seed: int = 0,
    retrieval: RetrievalSettings | None = None,
    state: StateSettings | None = None,
    *,
    versioned: bool = False,
    train: TrainSettings | None = None,
    fit_booster: BoosterFit | None = None,
    policy: Policy | None = None,
) -> TrainReport:
    """Train every model the pipeline uses and save them to ``folder`` (default: beside the database).

    ``retrieval`` picks and sizes the collaborative model; ``state`` is the serving state's section, so that the
    training replay computes the features as serving will (both default to the packaged settings).
    ``fit_booster`` fits the heads' trees (default: in this process; ``DaskBoosterFit`` on a Dask cluster).
    ``policy`` names the candidate sources the training replay draws its candidate sets from (default: the
    ``TRAIN_POLICY`` preset): the heads learn to rank what those sources find (``build_examples``).

    With ``versioned``, or when ``folder`` is already versioned (has a ``CURRENT`` pointer), the models go to a
    new ``folder/<version>/`` (written under a temporary name, fsynced, renamed), ``CURRENT`` is switched to it
    (``switch_models``) and all but the newest ``train.keep_versions`` versions are pruned; ``report.version``
    names it. Otherwise they are written flat into ``folder``, as before versions existed."""
    retrieval = retrieval or packaged_settings().retrieval
    train = train or packaged_settings().train
    say = progress or (lambda s, f: None)
    t0 = time.perf_counter()
    out = Path(folder) if folder else models_dir(store.path)
    ex = build_examples(
        store,
        state,
        max_rows=max_rows,
        seed=seed,
        progress=progress,
        retrieval=replay_retrieval(store, retrieval, train, policy, seed),
        position=train.position_feature,
        negatives=train.sampled_negatives
        if unengaged_share(store, store.count("posts") + 1) < train.min_unengaged_share
        else 0.0,
    )
    if len(ex) < 100:
        raise NotEnoughData(f"only {len(ex)} logged impressions: too few to train the engagement heads (100 needed)")
    if not (versioned or (out / POINTER).is_file()):
        report = _write_models(out, store, ex, seed, retrieval, say, fit_booster, t0, train)
        report.version = current_models(out)[1]
        _write_report(out, report)
        say("done", 1.0)
        return report
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        report = _write_models(tmp, store, ex, seed, retrieval, say, fit_booster, t0, train)
        version = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{_files_hash(tmp)[:8]}"
        report.version = version
        _write_report(tmp, report)
        if (out / version).exists():  # the same models trained within the same second: keep the one there
            shutil.rmtree(tmp)
        else:
            os.rename(tmp, out / version)
            _fsync_dir(out)
        switch_models(out, version)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    prune_versions(out, train.keep_versions)
    say("done", 1.0)
    return report


def replay_retrieval(
    store: Store, retrieval: RetrievalSettings, train: TrainSettings, policy: Policy | None, seed: int
) -> Retrieval:
    """The candidate sources' models for the training replay, fit on the log before the first
    ``train.retrieval_share`` of its impressions (by time) only; the examples come from the impressions after.
    Fitting them on the whole log would let ``collab_score`` see the very engagement each example is labelled
    with, and the heads would trust it more than serving can."""
    imp = [ev.ts[ev.kind == int(EventKind.IMPRESSION)] for ev in store.iter_events()]
    ts = np.concatenate(imp) if imp else np.zeros(0)
    start = float(np.quantile(ts, train.retrieval_share)) if len(ts) and train.retrieval_share > 0 else -np.inf
    n_users, n_posts = store.count("users"), store.count("posts")
    # share 0: the models serving will use, fit on the whole log (their scores of the examples' own pairs leak)
    X = engagement_matrix(store, n_users, n_posts, until_ts=start if start > -np.inf else np.inf)
    user_vec = fit_als(X, seed=seed) if X.nnz else None
    ease = None
    if retrieval.collaborative_model == "ease" and X.nnz:
        ease = EaseRetriever(*fit_ease(X, retrieval.ease_lam, retrieval.ease_gamma, retrieval.ease_max_items))
    models = Models(
        collab=CollaborativeIndex(rebuild_every_s=0.0, exact_below=retrieval.ann_exact_below),
        ease=ease,
    )
    return Retrieval(models, user_vec, policy or builtin_policies()[TRAIN_POLICY], start)


#: The policy whose candidate sources make the training replay's candidate sets when the caller names none.
TRAIN_POLICY = "engagement"


def train_version(
    store: Store,
    settings: Settings,
    *,
    dask: str | None = None,
    max_rows: int = 400_000,
    folder: str | Path | None = None,
    progress: Progress | None = None,
) -> TrainReport:
    """Train every model into a new version of ``folder`` (default: the store's models folder) with the run's
    ``settings``: what ``glassfeed train`` and ``glassfeed trainer`` do. ``dask``: fit the heads on that Dask
    scheduler (``tcp://host:8786``) or on a ``LocalCluster`` (``"local"``, ``[train]`` sizes it)."""
    with dask_client(dask, settings.train) if dask else nullcontext(None) as client:
        return train_all(
            store,
            folder,
            max_rows=max_rows,
            progress=progress,
            retrieval=settings.retrieval,
            state=settings.state,
            versioned=True,
            train=settings.train,
            fit_booster=(
                DaskBoosterFit(client, settings.train.dask_network_timeout_min) if client is not None else None
            ),
        )


def load_ease(folder: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(post idx per column, EASE weights) when the collaborative source was trained with EASE (``folder``: a
    models folder, its current version read)."""
    f = current_models(folder)[0] / "ease.npz"
    if not f.exists():
        return None
    z = np.load(f)
    return z["items"], z["B"]


def load_models(folder: str | Path, retrieval: RetrievalSettings | None = None) -> Models:
    """The pipeline's trained parts from the models folder ``folder`` (its current version; untrained parts where a
    file is missing); ``retrieval`` (default: the packaged section) sizes the collaborative index. To read heads
    and factors of one version, resolve it once (``current_models``) and pass its folder to both loaders."""
    d = current_models(folder)[0]
    r = retrieval or packaged_settings().retrieval
    heads = EngagementHeads.load(d / "heads") if (d / "heads" / "heads.json").exists() else EngagementHeads()
    ease = load_ease(d)
    return Models(
        heads=heads,
        light=LightRanker.load(d / "heads"),
        ranker=RequestRanker.load(d / "heads"),
        collab=CollaborativeIndex(rebuild_every_s=r.ann_rebuild_every_s, exact_below=r.ann_exact_below),
        ease=EaseRetriever(*ease) if ease else None,
    )


#: Model files with one row per user idx (``load_factors``): a data-rights erasure zeroes the person's row.
PER_USER_MODEL_FILES = ("als_user_factors.npy", "bridging_sides.npy")


def erase_user_rows(folder: str | Path, user: int) -> list[str]:
    """Zero ``user``'s row in every per-user model file in the models folder ``folder`` (ALS factor, bridging
    side): the flat files and those of every version kept, not only the current one; each file rewritten
    atomically (a temporary file beside it, fsynced, then renamed over it); returns the files changed (relative
    to ``folder``). A zero row is what an untrained user has, so serving treats the person as unknown to the
    models."""
    d = Path(folder)
    changed = []
    files = [sub / name for sub in (d, *(d / v for v in model_versions(d))) for name in PER_USER_MODEL_FILES]
    for f in files:
        if not f.exists():
            continue
        a = np.load(f)
        if user >= len(a) or not a[user].any():
            continue
        a[user] = 0
        tmp = f.with_name(f.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, a)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, f)
        changed.append(f.relative_to(d).as_posix())
    return changed


def load_factors(folder: str | Path) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(ALS user factors, bridging sides) from the models folder ``folder`` (its current version), each None when
    not trained: the serving state's learned inputs (``ServingState.from_store``)."""
    d = current_models(folder)[0]
    uv = np.load(d / "als_user_factors.npy") if (d / "als_user_factors.npy").exists() else None
    side = np.load(d / "bridging_sides.npy") if (d / "bridging_sides.npy").exists() else None
    return uv, side
