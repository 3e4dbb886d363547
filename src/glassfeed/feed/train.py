"""Train the feed's models from the store: engagement heads, light ranker, ALS user factors, bridging sides.

Training examples are logged impressions labelled by the engagements that followed them. Features are
computed point-in-time by replaying the event log day by day through a fresh ``ServingState`` (features for a
day's impressions come from the state before that day), so no label leaks into its own features. The split is
by time: the oldest 70% of impressions train, the next 10% calibrate, the newest 20% are the holdout.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

from glassfeed.domain import EventKind
from glassfeed.feed.features import F, pair_context, pair_features
from glassfeed.feed.heads import EngagementHeads, LightRanker
from glassfeed.feed.pipeline import Models
from glassfeed.feed.policy import HEADS
from glassfeed.feed.sources import CollaborativeIndex, EaseRetriever
from glassfeed.retrieval.ease import EASE
from glassfeed.retrieval.factor import ALS
from glassfeed.settings import RetrievalSettings, StateSettings, packaged_settings
from glassfeed.state import ServingState
from glassfeed.store import Store

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


@dataclass
class Examples:
    """Training examples: one row per logged impression kept, in replay order (by time)."""

    X: np.ndarray  # (n, len(FEATURES)) features at impression time
    Y: np.ndarray  # (n, len(HEADS)) labels
    ts: np.ndarray  # impression time
    user: np.ndarray
    post: np.ndarray

    @classmethod
    def empty(cls) -> Examples:
        z = np.zeros(0, np.int64)
        return cls(np.zeros((0, len(F)), np.float32), np.zeros((0, len(HEADS)), np.float32), np.zeros(0), z, z)

    def __len__(self) -> int:
        return len(self.ts)


def build_examples(
    store: Store,
    cfg: StateSettings | None = None,
    chunk_s: float = 86400.0,
    max_rows: int = 400_000,
    seed: int = 0,
    progress: Progress | None = None,
) -> Examples:
    """Point-in-time examples for logged impressions, by replaying the log in ``chunk_s`` windows: a window's
    impressions get their features (``pair_context`` + ``pair_features``, as serving computes them) from the
    state holding every event before the window, at their own impression time."""
    say = progress or (lambda s, f: None)
    rng = np.random.default_rng(seed)
    state = ServingState.for_replay(store, cfg)
    n_posts = state.posts.capacity + 1
    labels = _label_keys(store, n_posts)
    total_imp = store.count_events(EventKind.IMPRESSION)
    keep_p = min(1.0, max_rows / max(total_imp, 1))
    parts: list[Examples] = []
    events = np.concatenate([np.c_[c.seq, c.ts] for c in store.iter_events()]) if total_imp else None
    if events is None:
        return Examples.empty()
    t_start, t_end = float(events[:, 1].min()), float(events[:, 1].max())
    bounds = np.arange(t_start, t_end + chunk_s, chunk_s)
    for i, (a, b) in enumerate(pairwise(bounds.tolist())):
        chunk = store.events_in_window(a, b)
        if not len(chunk):
            continue
        imp = (chunk.kind == int(EventKind.IMPRESSION)) & (chunk.post > 0)
        imp &= rng.random(len(imp)) < keep_p
        if imp.any():
            u, p, t = chunk.user[imp], chunk.post[imp], chunk.ts[imp]
            users, row = np.unique(u, return_inverse=True)
            key = u * n_posts + p
            parts.append(
                Examples(
                    pair_features(state, pair_context(state, users, row, p), t),
                    np.stack([np.isin(key, labels[h]) for h in HEADS], axis=1).astype(np.float32),
                    t,
                    u,
                    p,
                )
            )
        state.apply_events(chunk)
        say("replay", (i + 1) / (len(bounds) - 1))
    if not parts:
        return Examples.empty()
    return Examples(*(np.concatenate([getattr(e, f) for e in parts]) for f in ("X", "Y", "ts", "user", "post")))


def train_heads(
    X: np.ndarray, Y: np.ndarray, ts: np.ndarray, heads: EngagementHeads | None = None
) -> tuple[EngagementHeads, LightRanker, TrainReport]:
    """Time-split, fit, calibrate and evaluate against the popularity baseline (post like-rate)."""
    t0 = time.perf_counter()
    order = np.argsort(ts, kind="stable")
    X, Y = X[order], Y[order]
    n = len(X)
    a, b = int(0.7 * n), int(0.8 * n)
    model = heads or EngagementHeads()
    model.fit(X[:a], Y[:a], X[a:b], Y[a:b])
    light = LightRanker().fit(X[:a], Y[:a, [HEADS.index(h) for h in ("like", "repost", "reply", "dwell")]].max(1))
    P = model.predict(X[b:])
    report = TrainReport(n_train=a, n_cal=b - a, n_test=n - b, seconds=0.0)
    pop = X[b:, F["like_rate"]]
    for h, name in enumerate(HEADS):
        y = Y[b:, h]
        base = Y[:a, h].mean() if a else 0.0
        # popularity baseline probability: the post's like-rate rescaled to the head's base rate
        scale = base / max(float(X[:a, F["like_rate"]].mean()), 1e-9)
        report.heads.append(
            HeadReport(
                head=name,
                positives_train=int(Y[:a, h].sum()),
                positives_test=int(y.sum()),
                auc=auc(y, P[:, h]),
                logloss=logloss(y, P[:, h]),
                baseline_auc=auc(y, pop),
                baseline_logloss=logloss(y, np.clip(pop * scale, 1e-6, 1 - 1e-6)),
                trees=model.trees.get(name, 0),
            )
        )
    report.seconds = time.perf_counter() - t0
    return model, light, report


def engagement_matrix(store: Store, n_users: int, n_posts: int) -> sp.csr_matrix:
    """Users x posts confidence matrix from positive engagements (ALS_WEIGHTS; row/column 0 unused)."""
    us, ps, ws = [], [], []
    for ev in store.iter_events():
        for kind, w in ALS_WEIGHTS.items():
            m = (ev.kind == int(kind)) & (ev.post > 0)
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


def models_dir(db_path: str | Path | None) -> Path:
    """Where a store's trained models live: ``<db>.models/`` beside the database file (``Store.path``); a store
    without a file (``None``) has no default, so the caller must name a models folder."""
    if db_path is None:
        raise ValueError("this store has no database file to keep models beside; pass a models folder")
    p = Path(db_path)
    return p.with_name(p.name + ".models")


def train_all(
    store: Store,
    folder: str | Path | None = None,
    max_rows: int = 400_000,
    progress: Progress | None = None,
    seed: int = 0,
    retrieval: RetrievalSettings | None = None,
    state: StateSettings | None = None,
) -> TrainReport:
    """Train every model the pipeline uses and save them to ``folder`` (default: beside the database).

    ``retrieval`` picks and sizes the collaborative model; ``state`` is the serving state's section, so that the
    training replay computes the features as serving will (both default to the packaged settings)."""
    retrieval = retrieval or packaged_settings().retrieval
    say = progress or (lambda s, f: None)
    t0 = time.perf_counter()
    out = Path(folder) if folder else models_dir(store.path)
    n_users, n_posts = store.count("users"), store.count("posts")
    ex = build_examples(store, state, max_rows=max_rows, seed=seed, progress=progress)
    if len(ex) < 100:
        raise NotEnoughData(f"only {len(ex)} logged impressions: too few to train the engagement heads (100 needed)")
    say("heads", 0.0)
    heads, light, report = train_heads(ex.X, ex.Y, ex.ts)
    heads.save(out / "heads")
    light.save(out / "heads")
    say("als", 0.0)
    X = engagement_matrix(store, n_users, n_posts)
    user_vec = fit_als(X, seed=seed)
    np.save(out / "als_user_factors.npy", user_vec)
    ease_file = out / "ease.npz"
    if retrieval.collaborative_model == "ease":
        say("ease", 0.0)
        items, B = fit_ease(X, retrieval.ease_lam, retrieval.ease_gamma, retrieval.ease_max_items)
        np.savez(ease_file, items=items, B=B)
    elif ease_file.exists():
        ease_file.unlink()
    report.als_users = int((np.abs(user_vec).sum(axis=1) > 0).sum())
    say("bridging", 0.0)
    side = fit_bridging_sides(store, n_users, n_posts)
    np.save(out / "bridging_sides.npy", side)
    report.bridging_users = int((side != 0).sum())
    report.seconds = time.perf_counter() - t0
    (out / "train_report.json").write_text(json.dumps(asdict(report), indent=1))
    say("done", 1.0)
    return report


def load_ease(folder: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(post idx per column, EASE weights) when the collaborative source was trained with EASE."""
    f = Path(folder) / "ease.npz"
    if not f.exists():
        return None
    z = np.load(f)
    return z["items"], z["B"]


def load_models(folder: str | Path, retrieval: RetrievalSettings | None = None) -> Models:
    """The pipeline's trained parts from ``folder`` (untrained parts where a file is missing); ``retrieval``
    (default: the packaged section) sizes the collaborative index."""
    d = Path(folder)
    r = retrieval or packaged_settings().retrieval
    heads = EngagementHeads.load(d / "heads") if (d / "heads" / "heads.json").exists() else EngagementHeads()
    ease = load_ease(d)
    return Models(
        heads=heads,
        light=LightRanker.load(d / "heads"),
        collab=CollaborativeIndex(rebuild_every_s=r.ann_rebuild_every_s, exact_below=r.ann_exact_below),
        ease=EaseRetriever(*ease) if ease else None,
    )


#: Model files with one row per user idx (``load_factors``): a data-rights erasure zeroes the person's row.
PER_USER_MODEL_FILES = ("als_user_factors.npy", "bridging_sides.npy")


def erase_user_rows(folder: str | Path, user: int) -> list[str]:
    """Zero ``user``'s row in every per-user model file in ``folder`` (ALS factor, bridging side), each file
    rewritten atomically (a temporary file beside it, fsynced, then renamed over it); returns the files changed.
    A zero row is what an untrained user has, so serving treats the person as unknown to the models."""
    d = Path(folder)
    changed = []
    for name in PER_USER_MODEL_FILES:
        f = d / name
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
        changed.append(name)
    return changed


def load_factors(folder: str | Path) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(ALS user factors, bridging sides) from ``folder``, each None when not trained: the serving state's
    learned inputs (``ServingState.from_store``)."""
    d = Path(folder)
    uv = np.load(d / "als_user_factors.npy") if (d / "als_user_factors.npy").exists() else None
    side = np.load(d / "bridging_sides.npy") if (d / "bridging_sides.npy").exists() else None
    return uv, side
