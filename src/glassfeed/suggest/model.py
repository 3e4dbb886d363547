"""The learned P(follow | suggested) head: a LightGBM binary model over ``generators.FEATURES``.

**What it is trained on (stated honestly).** glassfeed logs no suggestion impressions yet, so the head cannot learn
from "shown, then followed / not followed". It learns from a holdout of the graph itself: take a graph, hide some
follow edges, generate candidates on what is left, and label a candidate 1 when it is a hidden edge. On the
platform (``train_from_store``) the hidden edges are the newest ``[training] holdout_share`` of follows by time: the
head learns which candidates people went on to follow. In the evaluation (``evaluate.linkpred``) they are a random
validation split. Either way it estimates P(edge appears | candidate), a stand-in for P(follow | suggested) until
suggestion impressions are logged.

scikit-learn conventions: ``FollowModel(settings)`` stores its settings, ``fit(X, y)`` returns the model, learned
attributes end in ``_`` (``booster_``, ``features_``, ``n_train_``, ``positive_rate_``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Self

import lightgbm as lgb
import numpy as np

from glassfeed.store import Store
from glassfeed.suggest import generators as gen
from glassfeed.suggest.graph import PeopleGraph
from glassfeed.suggest.policy import Lightgbm, ModelSettings, Training, load_model_settings

MODEL_FILE = "follow_head.txt"
META_FILE = "follow_head.json"


class FollowModel:
    """P(follow | suggested) from a candidate's features (see the module doc)."""

    def __init__(self, params: Lightgbm | None = None) -> None:
        self.params = params or load_model_settings().lightgbm

    def fit(self, X: np.ndarray, y: np.ndarray) -> Self:
        y = np.asarray(y, np.float64)
        if len(y) == 0 or y.min() == y.max():
            raise ValueError("the head needs both followed and not-followed candidates to learn from")
        ds = lgb.Dataset(np.asarray(X, np.float64), y, feature_name=list(gen.FEATURES), free_raw_data=True)
        self.booster_ = lgb.train(self.params.params(), ds, num_boost_round=self.params.rounds)
        self.features_ = gen.FEATURES
        self.n_train_ = len(y)
        self.positive_rate_ = float(y.mean())
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
        meta = {"features": list(self.features_), "n_train": self.n_train_, "positive_rate": self.positive_rate_}
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


def train_from_store(
    store: Store, graph: PeopleGraph, depth: dict[str, int], settings: ModelSettings | None = None
) -> tuple[FollowModel, dict[str, float]]:
    """The head trained on the platform's own graph: the newest ``holdout_share`` of the store's follow edges (by
    time) are hidden from ``graph`` (the serving state's) and become the positives. Engagement, communities and
    contacts are read as they are now (the state keeps no history of them). Returns the model and a summary."""
    s = settings or load_model_settings()
    t: Training = s.training
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
    model = FollowModel(s.lightgbm).fit(X, y)
    info = {
        "held_out_follows": float(len(new)),
        "since": float(ts[new].min()),
        "sources": float(len(sources)),
        "examples": float(len(y)),
        "positives": float(y.sum()),
    }
    return model, info
