"""The learned P(follow | suggested) head: a LightGBM binary model over ``generators.FEATURES``.

**What it is trained on.** ``train_from_store`` prefers the platform's own suggestion log: every list the API serves
is logged as ``suggestion_impression`` events (``SuggestionService.suggest``), and ``logged_examples`` labels each
impression 1 when the person followed the suggested account within ``[training] label_window_hours`` after it, 0
otherwise. That is P(follow | suggested) itself. Its features are read point-in-time as far as the state allows:
the follow graph as of the start of the impression's ``snapshot_hours`` bucket (the store's current follow edges
made after it removed, so the label's own follow never leaks in; edges unfollowed since are missing, edges made
between the bucket's start and the impression too); engagement, communities, contacts and blocks are read as they
are now (the state keeps no history of them).

While fewer than ``min_logged_impressions`` impressions have a closed window (or none of them, or all, became a
follow), it falls back to a holdout of the graph itself: hide the newest ``holdout_share`` of follows by time,
generate candidates on what is left and label a candidate 1 when it is a hidden edge: P(edge appears |
candidate), a stand-in. The link-prediction evaluation (``evaluate.linkpred``) uses a random holdout
(``holdout_examples``). The summary and the saved head say which data trained it (``trained_on_``).

scikit-learn conventions: ``FollowModel(settings)`` stores its settings, ``fit(X, y)`` returns the model, learned
attributes end in ``_`` (``booster_``, ``features_``, ``n_train_``, ``positive_rate_``, ``trained_on_``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Self

import lightgbm as lgb
import numpy as np

from glassfeed.domain import EventKind
from glassfeed.store import Store
from glassfeed.suggest import generators as gen
from glassfeed.suggest.graph import PeopleGraph
from glassfeed.suggest.policy import Lightgbm, ModelSettings, Training, load_model_settings

MODEL_FILE = "follow_head.txt"
META_FILE = "follow_head.json"
#: What trained a head (``FollowModel.trained_on_``; the training summary's ``trained_on``).
LOGGED, HOLDOUT = "logged suggestions", "graph holdout"


class FollowModel:
    """P(follow | suggested) from a candidate's features (see the module doc)."""

    def __init__(self, params: Lightgbm | None = None) -> None:
        self.params = params or load_model_settings().lightgbm

    def fit(self, X: np.ndarray, y: np.ndarray, *, trained_on: str = HOLDOUT) -> Self:
        """Fit on candidate features ``X`` and follow labels ``y``; ``trained_on`` records where they came from
        (``LOGGED`` or ``HOLDOUT``)."""
        y = np.asarray(y, np.float64)
        if len(y) == 0 or y.min() == y.max():
            raise ValueError("the head needs both followed and not-followed candidates to learn from")
        ds = lgb.Dataset(np.asarray(X, np.float64), y, feature_name=list(gen.FEATURES), free_raw_data=True)
        self.booster_ = lgb.train(self.params.params(), ds, num_boost_round=self.params.rounds)
        self.features_ = gen.FEATURES
        self.n_train_ = len(y)
        self.positive_rate_ = float(y.mean())
        self.trained_on_ = trained_on
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``(len(X), 2)``: P(not followed), P(followed)."""
        p = np.asarray(self.booster_.predict(np.asarray(X, np.float64)), np.float64)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: np.ndarray) -> np.ndarray:
        """P(followed) per row (what ranking reads)."""
        return self.predict_proba(X)[:, 1]

    def save(self, folder: str | Path) -> Path:
        d = Path(folder)
        d.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(d / MODEL_FILE))
        meta = {
            "features": list(self.features_),
            "n_train": self.n_train_,
            "positive_rate": self.positive_rate_,
            "trained_on": self.trained_on_,
        }
        (d / META_FILE).write_text(json.dumps(meta, indent=1), "utf-8")
        return d

    @classmethod
    def load(cls, folder: str | Path) -> FollowModel | None:
        """The head saved in ``folder``; None when there is none or it was saved with other features."""
        d = Path(folder)
        if not (d / MODEL_FILE).is_file() or not (d / META_FILE).is_file():
            return None
        meta = json.loads((d / META_FILE).read_text("utf-8"))
        if tuple(meta.get("features", ())) != gen.FEATURES:
            return None
        m = cls()
        m.booster_ = lgb.Booster(model_file=str(d / MODEL_FILE))
        m.features_ = gen.FEATURES
        m.n_train_ = int(meta["n_train"])
        m.positive_rate_ = float(meta["positive_rate"])
        m.trained_on_ = str(meta.get("trained_on", HOLDOUT))  # heads saved before the log existed: the holdout
        return m


def holdout_examples(
    graph: PeopleGraph,
    src: np.ndarray,
    dst: np.ndarray,
    depth: dict[str, int],
    sources: np.ndarray,
    chunk: int = 250,
) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) for the head: candidates of ``sources`` on ``graph`` (which must not hold the edges ``src -> dst``),
    labelled 1 where the pair is one of those edges."""
    n = np.int64(graph.n)
    positive = np.unique(np.asarray(src, np.int64) * n + np.asarray(dst, np.int64))
    xs, ys = [], []
    for start in range(0, len(sources), chunk):
        users = np.asarray(sources[start : start + chunk], np.int64)
        c = gen.candidates(graph, users, depth)
        xs.append(c.X)
        ys.append(np.isin(users[c.row] * n + c.cand, positive).astype(np.float64))
    if not xs:
        return np.zeros((0, len(gen.FEATURES))), np.zeros(0)
    return np.vstack(xs), np.concatenate(ys)


def follow_labels(
    user: np.ndarray,
    shown: np.ndarray,
    ts: np.ndarray,
    f_user: np.ndarray,
    f_target: np.ndarray,
    f_ts: np.ndarray,
    window_s: float,
) -> np.ndarray:
    """1.0 where ``user[i]`` followed ``shown[i]`` (a follow event ``f_user -> f_target`` at ``f_ts``) after ``ts[i]``
    and within ``window_s`` seconds of it, else 0.0. Vectorised: each impression looks up the first follow of its
    pair that is strictly later than it."""
    user, shown = np.asarray(user, np.int64), np.asarray(shown, np.int64)
    f_user, f_target = np.asarray(f_user, np.int64), np.asarray(f_target, np.int64)
    ts, f_ts = np.asarray(ts, np.float64), np.asarray(f_ts, np.float64)
    y = np.zeros(len(user))
    if not len(user) or not len(f_user):
        return y
    n = np.int64(max(user.max(), shown.max(), f_user.max(), f_target.max()) + 1)
    pairs, pid = np.unique(user * n + shown, return_inverse=True)
    pid = pid.ravel().astype(np.int64)
    f_code = f_user * n + f_target
    j = np.minimum(np.searchsorted(pairs, f_code), len(pairs) - 1)
    mine = pairs[j] == f_code  # follows of a pair that was shown
    f_pid, f_t = j[mine].astype(np.int64), f_ts[mine]
    if not len(f_pid):
        return y
    _, rank = np.unique(np.concatenate([ts, f_t]), return_inverse=True)  # times as ranks: exact order, no rounding
    rank = rank.ravel().astype(np.int64)
    width = np.int64(rank.max() + 1)
    key = f_pid * width + rank[len(ts) :]
    order = np.argsort(key, kind="stable")
    key, f_t = key[order], f_t[order]
    nxt = np.searchsorted(key, pid * width + rank[: len(ts)], side="right")  # the pair's first later follow
    ok = nxt < len(key)
    hit = np.zeros(len(user), bool)
    hit[ok] = (key[nxt[ok]] // width == pid[ok]) & (f_t[nxt[ok]] <= ts[ok] + window_s)
    y[hit] = 1.0
    return y


def logged_examples(
    store: Store, graph: PeopleGraph, t: Training, now: float, chunk: int = 250
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(X, y, summary) from the store's ``suggestion_impression`` events whose label window has closed by ``now``
    (see the module doc for the labels and what the features read). The summary counts the impressions used
    (``logged_impressions``), those still inside their window (``open_impressions``) and the graph snapshots."""
    imp = store.events_in_window(kinds=[EventKind.SUGGESTION_IMPRESSION])
    window = 3600.0 * t.label_window_hours
    valid = (imp.target_user > 0) & (imp.target_user < graph.n) & (imp.user < graph.n)
    closed = valid & (imp.ts + window <= now)
    u, v, ts = imp.user[closed], imp.target_user[closed], imp.ts[closed]
    info: dict[str, Any] = {
        "logged_impressions": int(closed.sum()),
        "open_impressions": int((valid & ~closed).sum()),
        "label_window_hours": t.label_window_hours,
    }
    X = np.zeros((0, len(gen.FEATURES)))
    if not len(u):
        return X, np.zeros(0), info
    fol = store.events_in_window(float(ts.min()), kinds=[EventKind.FOLLOW])  # only follows after the first one shown
    y = follow_labels(u, v, ts, fol.user, fol.target_user, fol.ts, window)
    step = 3600.0 * t.snapshot_hours
    snap = np.floor(ts / step) * step
    src, dst, created = store.load_edges("follows")
    X = np.empty((len(u), len(gen.FEATURES)))
    snaps = np.unique(snap)
    for s0 in snaps.tolist():  # one graph per bucket: the follows as of its start
        later = created > s0
        g = graph.with_edges_removed(src[later], dst[later]) if later.any() else graph
        rows = np.flatnonzero(snap == s0)
        rows = rows[np.argsort(u[rows], kind="stable")]
        people = np.unique(u[rows])
        cuts = np.searchsorted(u[rows], people[::chunk])  # at most ``chunk`` people's score rows at once
        for part in np.split(rows, cuts[1:]):
            X[part] = gen.pair_features(g, u[part], v[part])
    info.update(snapshots=len(snaps), examples=len(y), positives=float(y.sum()))
    return X, y, info


def train_from_store(
    store: Store,
    graph: PeopleGraph,
    depth: dict[str, int],
    settings: ModelSettings | None = None,
    now: float | None = None,
) -> tuple[FollowModel, dict[str, Any]]:
    """The head trained on the platform's own data: its logged suggestions when enough have a closed label window
    (``logged_examples``), else the graph holdout (``holdout_train``). ``graph`` is the serving state's;
    ``now`` (default: the wall clock) decides which label windows have closed. Returns the model and a summary
    whose ``trained_on`` says which data it used and ``why``."""
    s = settings or load_model_settings()
    t: Training = s.training
    X, y, logged = logged_examples(store, graph, t, time.time() if now is None else now)
    n = logged["logged_impressions"]
    if n < t.min_logged_impressions:
        why = f"{n} logged suggestion impressions with a closed label window, fewer than {t.min_logged_impressions}"
    elif y.min() == y.max():
        why = f"the {n} logged suggestion impressions were {'all' if y.min() else 'never'} followed"
    else:
        model = FollowModel(s.lightgbm).fit(X, y, trained_on=LOGGED)
        return model, {"trained_on": LOGGED, "why": f"{n} logged suggestion impressions", **logged}
    model, info = holdout_train(store, graph, depth, s)
    kept = ("logged_impressions", "open_impressions")
    return model, {"trained_on": HOLDOUT, "why": why, **info, **{k: logged[k] for k in kept}}


def holdout_train(
    store: Store, graph: PeopleGraph, depth: dict[str, int], settings: ModelSettings
) -> tuple[FollowModel, dict[str, float]]:
    """The head trained on a holdout of the follow graph: the newest ``holdout_share`` of the store's follow edges
    (by time) are hidden from ``graph`` and become the positives. Engagement, communities and contacts are read as
    they are now (the state keeps no history of them). Returns the model and a summary."""
    t = settings.training
    src, dst, ts = store.load_edges("follows")
    if len(src) < 10:
        raise ValueError(f"too few follows to train on ({len(src)})")
    order = np.lexsort((dst, src, ts))
    cut = len(order) - max(1, round(t.holdout_share * len(order)))
    new = order[cut:]
    inner = graph.with_edges_removed(src[new], dst[new])
    rng = np.random.default_rng(t.seed)
    pool = np.unique(src[new])
    sources = np.sort(rng.choice(pool, size=min(t.max_sources, len(pool)), replace=False))
    X, y = holdout_examples(
        inner, src[new], dst[new], {k: max(v, t.depth) if v else 0 for k, v in depth.items()}, sources
    )
    model = FollowModel(settings.lightgbm).fit(X, y, trained_on=HOLDOUT)
    info = {
        "held_out_follows": float(len(new)),
        "since": float(ts[new].min()),
        "sources": float(len(sources)),
        "examples": float(len(y)),
        "positives": float(y.sum()),
    }
    return model, info
