"""Multi-task engagement heads: one LightGBM classifier per head, Platt-calibrated, plus a light ranker.

``EngagementHeads.fit(X, Y)`` trains P(head | user, post) for every head in ``policy.HEADS`` from logged
impressions (Y[:, h] = 1 when the impression was followed by that engagement); ``predict(X)`` returns an
(n, n_heads) matrix of calibrated probabilities. ``LightRanker`` is the cheap first stage (logistic regression on
a few features) that trims ~1,000 candidates to a few hundred before the heads run, as X's light ranker does.
``RequestRanker`` is the learning-to-rank alternative to the heads (a policy's ``ranker = "lambdarank"``): one
LightGBM ``lambdarank`` model over the same features, trained on requests (a user's examples in one replay window)
to order each request's posts by a graded engagement label, rather than to predict each engagement's chance.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import lightgbm as lgb
import numpy as np
from scipy.optimize import minimize

from glassfeed.feed.features import FEATURES, LIGHT_FEATURES, F
from glassfeed.feed.policy import HEADS

#: Rows from which prediction uses every core (simulator batches); single requests stay on one thread.
BIG_BATCH = 20_000


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -35, 35)))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def fit_platt(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Fit ``sigmoid(a * logit(p) + b)`` to labels by log-loss (Platt scaling)."""
    z = _logit(p)

    def loss(ab: np.ndarray) -> tuple[float, np.ndarray]:
        q = np.clip(_sigmoid(ab[0] * z + ab[1]), 1e-9, 1 - 1e-9)
        g = q - y
        return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))), np.array([np.mean(g * z), np.mean(g)])

    res = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    return float(res.x[0]), float(res.x[1])


def request_ndcg(score: np.ndarray, grade: np.ndarray, request: np.ndarray, k: int = 10) -> float:
    """Mean nDCG@k (gain 2^grade - 1) over the requests that hold an engaged example, ordering each request by
    ``score``, ties broken against the engaged: an ordering that cannot tell examples apart earns nothing from the
    order they were logged in (logged impressions come before sampled negatives, so breaking ties by row order
    credited a constant score with the log's own choices)."""
    per = request_ndcgs(score, grade, request, k)
    return float(per.mean()) if len(per) else float("nan")


def request_ndcgs(score: np.ndarray, grade: np.ndarray, request: np.ndarray, k: int = 10) -> np.ndarray:
    """``request_ndcg``'s nDCG@k of each request that holds an engaged example, in request key order."""
    order = np.lexsort((grade, -score, request))
    r, g = request[order], grade[order].astype(np.float64)
    first = np.searchsorted(r, r)
    pos = np.arange(len(r)) - first
    disc = np.where(pos < k, 1.0 / np.log2(pos + 2.0), 0.0)
    keys, inv = np.unique(r, return_inverse=True)
    dcg = np.bincount(inv, (2**g - 1) * disc, len(keys))
    io = np.lexsort((-g, r))  # each request's grades, best first, at the same row positions
    ideal_g = g[io]
    idcg = np.bincount(inv[io], (2**ideal_g - 1) * disc, len(keys))  # same positions: r[io] == r
    ok = idcg > 0
    return np.asarray(dcg[ok] / idcg[ok])


#: How a head's trees stop growing on the held-out slice (``[train] heads_stopping``): at the round of lowest
#: log-loss, or of highest nDCG@10 over the held-out requests (each person's examples of a replay window).
STOPPING: tuple[str, ...] = ("logloss", "request_ndcg")


def fit_offset(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """A head's offset on one feature (``EngagementHeads.offset_feature``): the logistic fit ``a * x + b`` of the
    label on ``x`` where ``x`` is finite, and ``c``, the (smoothed) log-odds of the label where it is not.
    Returns (a, b, c); the trees then learn the residual over ``a * x + b``."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(x)
    base = float(np.clip(y.mean(), 1e-4, 1 - 1e-4)) if len(y) else 0.5
    miss = y[~ok]
    c = float(_logit(np.array([(miss.sum() + base) / (len(miss) + 1.0)]))[0])
    if ok.sum() < 2 or np.ptp(x[ok]) == 0:
        return 0.0, float(_logit(np.array([base]))[0]), c
    xo, yo = x[ok], y[ok]
    mu, sd = float(xo.mean()), float(xo.std())
    z = (xo - mu) / sd

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        q = np.clip(_sigmoid(w[0] * z + w[1]), 1e-9, 1 - 1e-9)
        g = q - yo
        return float(-np.mean(yo * np.log(q) + (1 - yo) * np.log(1 - q))), np.array([np.mean(g * z), np.mean(g)])

    w = minimize(loss, np.array([0.0, float(_logit(np.array([base]))[0])]), jac=True, method="L-BFGS-B").x
    return float(w[0] / sd), float(w[1] - w[0] * mu / sd), c


def best_rounds(values: np.ndarray, stopping_rounds: int) -> int:
    """Trees to keep by the early-stopping rule on a held-out curve to maximise (``values[i]``: with i trees, so
    ``values[0]`` is the offset alone): the round of highest value, stopping once it has not improved for
    ``stopping_rounds`` rounds. May be 0."""
    best, best_i = -float("inf"), 0
    for i, v in enumerate(values.tolist()):
        if v > best:
            best, best_i = v, i
        elif i - best_i >= stopping_rounds:
            break
    return best_i


def one_se_rounds(per_request: np.ndarray, stopping_rounds: int) -> int:
    """Trees to keep from the held-out requests' nDCG (``per_request[i, r]``: request r's with i trees): the
    early-stopping rule's round (``best_rounds`` on the means), then the fewest trees whose mean is within one
    standard error of it (the one-standard-error rule of Breiman et al. 1984, the error that of the paired
    per-request differences), so trees are kept only where the held-out requests show they help by more than their
    noise; otherwise fewer, down to the offset alone."""
    best = best_rounds(per_request.mean(axis=1), stopping_rounds)
    n = per_request.shape[1]
    for i in range(best):
        d = per_request[i] - per_request[best]
        if d.mean() >= -(d.std(ddof=1) / np.sqrt(n) if n > 1 else 0.0):
            return i
    return best


class BoosterFit(Protocol):
    """Fits one head's booster: ``rounds`` boosting rounds of ``params`` on (X, y); with ``valid`` (X, y) and
    ``stopping_rounds`` > 0, keeps only the trees up to the round of lowest held-out log-loss, stopping once it
    has not improved for ``stopping_rounds`` rounds (LightGBM's ``early_stopping`` rule). ``init``: the raw score
    the trees start from, for X and for ``valid``'s rows (LightGBM's ``init_score``; None = the label's mean)."""

    def __call__(
        self,
        params: dict[str, Any],
        X: np.ndarray,
        y: np.ndarray,
        rounds: int,
        valid: tuple[np.ndarray, np.ndarray] | None,
        stopping_rounds: int,
        init: tuple[np.ndarray, np.ndarray | None] | None = None,
    ) -> lgb.Booster: ...


def fit_booster_local(
    params: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    rounds: int,
    valid: tuple[np.ndarray, np.ndarray] | None,
    stopping_rounds: int,
    init: tuple[np.ndarray, np.ndarray | None] | None = None,
) -> lgb.Booster:
    """``BoosterFit`` in this process (``lgb.train``, early stopping by its callback)."""
    init_X, init_valid = init if init is not None else (None, None)
    ds = lgb.Dataset(X, y, init_score=init_X, feature_name=list(FEATURES), free_raw_data=True)
    if valid is None or not stopping_rounds:
        return lgb.train(params, ds, num_boost_round=rounds)
    booster = lgb.train(
        params,
        ds,
        num_boost_round=rounds,
        valid_sets=[lgb.Dataset(valid[0], valid[1], init_score=init_valid, reference=ds)],
        callbacks=[lgb.early_stopping(stopping_rounds, verbose=False)],
    )
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))


def booster_params(
    objective: str, num_leaves: int, learning_rate: float, min_child_samples: int, seed: int
) -> dict[str, Any]:
    """LightGBM parameters every model here trains with: deterministic, two threads, quiet."""
    return {
        "objective": objective,
        "num_leaves": num_leaves,
        "learning_rate": learning_rate,
        "min_child_samples": min_child_samples,
        "seed": seed,
        "deterministic": True,
        "num_threads": 2,
        "verbose": -1,
        "feature_pre_filter": False,
    }


@dataclass
class EngagementHeads:
    """One gradient-boosted classifier per head (shared features), calibrated on held-out impressions.

    A head whose held-out slice has at least ``early_stopping_min_positives`` positives stops adding trees once
    its held-out log-loss has not improved for ``early_stopping_rounds`` rounds (at most ``max_estimators``), so
    serving pays only for trees that help; rarer heads, whose held-out loss is too noisy to choose by, get
    ``n_estimators`` trees (measured in docs/benchmarks.md and docs/simulation.md). With ``stopping =
    "request_ndcg"`` and the held-out slice's request keys, the trees kept are chosen by the held-out nDCG@10 of the
    head's own label within each request instead (all ``max_estimators`` grown, the curve read after;
    ``one_se_rounds``).

    ``offset_feature`` (a ``FEATURES`` name, "" = none) makes each head a residual model: its raw score is
    ``a * x + b`` (``fit_offset``, a logistic fit of the label on that feature) plus the trees, which start from it
    (LightGBM's ``init_score``). With ``collab_gap`` the heads start from the retrieval's order of each request,
    and with ``request_ndcg`` stopping, zero trees (that order alone) is one of the choices.
    """

    n_estimators: int = 60
    max_estimators: int = 200
    early_stopping_rounds: int = 10
    early_stopping_min_positives: int = 100
    num_leaves: int = 15
    learning_rate: float = 0.1
    min_child_samples: int = 50
    feature_fraction: float = 1.0
    bagging_fraction: float = 1.0
    lambda_l2: float = 0.0
    offset_feature: str = ""
    stopping: str = "logloss"
    seed: int = 0
    boosters: dict[str, lgb.Booster] = field(default_factory=dict)
    offsets: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # head -> fit_offset's (a, b, c)
    calibration: dict[str, tuple[float, float]] = field(default_factory=dict)
    base_rate: dict[str, float] = field(default_factory=dict)
    #: head -> its trees compiled to native code (``compile_trees``; ``feed/compiled.py``), used in place of the
    #: booster's ``predict`` for request-sized batches; empty = LightGBM's ``predict`` everywhere
    compiled: dict[str, Any] = field(default_factory=dict)

    def fit(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        X_cal: np.ndarray | None = None,
        Y_cal: np.ndarray | None = None,
        fit_booster: BoosterFit | None = None,
        request_cal: np.ndarray | None = None,
    ) -> EngagementHeads:
        """Fit every head on (X, Y), early-stop and Platt-calibrate on (X_cal, Y_cal); a head's NaN labels mark
        examples it has no label for (they are left out of its fit). ``fit_booster`` fits one
        head's booster (default ``fit_booster_local``, in this process; ``train.DaskBoosterFit`` on a Dask
        cluster): the examples, parameters, early-stopping rule and calibration are the same either way.
        ``request_cal``: one request key per held-out example, for ``stopping = "request_ndcg"``."""
        if self.stopping not in STOPPING:
            raise ValueError(f"stopping {self.stopping!r} is not one of {STOPPING}")
        if self.offset_feature and self.offset_feature not in F:
            raise ValueError(f"offset_feature {self.offset_feature!r} is not a feature")
        fit_booster = fit_booster or fit_booster_local
        params = booster_params("binary", self.num_leaves, self.learning_rate, self.min_child_samples, self.seed)
        params.update(feature_fraction=self.feature_fraction, lambda_l2=self.lambda_l2)
        if self.bagging_fraction < 1.0:
            params.update(bagging_fraction=self.bagging_fraction, bagging_freq=1)
        for h, name in enumerate(HEADS):
            y = Y[:, h].astype(np.float32)
            X_h = X
            if np.isnan(y).any():  # a head labelled on some examples only (worth_it: pages someone answered about)
                known = ~np.isnan(y)
                X_h, y = X[known], y[known]
            self.base_rate[name] = float(y.mean()) if len(y) else 0.0
            if y.sum() < 5 or y.sum() > len(y) - 5:
                continue  # too few positives to learn: the head predicts its base rate
            held_out = X_cal is not None and Y_cal is not None
            y_cal = Y_cal[:, h] if Y_cal is not None else np.zeros(0)
            X_c, req_c = X_cal, request_cal
            if X_cal is not None and np.isnan(y_cal).any():
                known_c = ~np.isnan(y_cal)
                X_c, y_cal = X_cal[known_c], y_cal[known_c]
                req_c = None if request_cal is None else request_cal[known_c]
            if held_out and y_cal.sum() < 5:
                continue  # too few held-out positives to check a model against: base rate, not noise
            early = bool(held_out and self.early_stopping_rounds and y_cal.sum() >= self.early_stopping_min_positives)
            by_ndcg = early and self.stopping == "request_ndcg" and req_c is not None
            init = None
            if self.offset_feature:
                self.offsets[name] = fit_offset(X_h[:, F[self.offset_feature]], y)
                init = (self._offset(name, X_h), None if X_c is None else self._offset(name, X_c))
            booster: lgb.Booster | None = fit_booster(
                params,
                X_h,
                y,
                self.max_estimators if early else self.n_estimators,
                (X_c, y_cal.astype(np.float32)) if early and not by_ndcg and X_c is not None else None,
                self.early_stopping_rounds if early and not by_ndcg else 0,
                init=init,
            )
            if by_ndcg and booster is not None and X_c is not None and req_c is not None:
                keep = one_se_rounds(self._held_out_ndcg(name, booster, X_c, y_cal, req_c), self.early_stopping_rounds)
                booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=keep)) if keep else None
            if booster is not None:
                self.boosters[name] = booster
            elif name not in self.offsets:
                continue  # no trees and no offset: the head predicts its base rate
            if held_out and X_c is not None:
                self.calibration[name] = fit_platt(self._uncalibrated(name, X_c), y_cal.astype(np.float64))
        return self

    def _offset(self, name: str, X: np.ndarray) -> np.ndarray:
        """The head's offset (raw score before its trees) for the rows of X."""
        a, b, c = self.offsets[name]
        x = X[:, F[self.offset_feature]].astype(np.float64)
        return np.where(np.isfinite(x), a * np.nan_to_num(x) + b, c)

    def _uncalibrated(self, name: str, X: np.ndarray) -> np.ndarray:
        """P(head) before Platt scaling: the trees' probability, or with an offset sigmoid(offset + trees' raw)."""
        b = self.boosters.get(name)
        threads = 1 if len(X) < BIG_BATCH else 0  # 0: all cores for batch ranking
        c = self.compiled.get(name) if threads == 1 else None  # the same trees as native code (compile_trees)
        if name not in self.offsets:
            if c is not None:
                return c.predict(X)
            return np.asarray(b.predict(X, num_threads=threads)) if b is not None else np.full(len(X), 0.5)
        raw = self._offset(name, X)
        if b is not None:
            trees = c.predict(X) if c is not None else b.predict(X, raw_score=True, num_threads=threads)
            raw = raw + np.asarray(trees)
        return _sigmoid(raw)

    def compile_trees(self) -> EngagementHeads:
        """Compile every head's trees to native code for request-sized predictions (``feed/compiled.py``: the same
        probabilities to rounding, ~10x sooner; ~1.4 s per 100 trees, once per model version). A head that does not
        compile stays on LightGBM. Returns ``self``."""
        from glassfeed.feed.compiled import compile_forests

        self.compiled = compile_forests(self.boosters, {name: name in self.offsets for name in self.boosters})
        return self

    def _held_out_ndcg(
        self, name: str, booster: lgb.Booster, X: np.ndarray, y: np.ndarray, request: np.ndarray
    ) -> np.ndarray:
        """(trees + 1, requests): each held-out request's nDCG@10 ordered by the head's raw score with 0, 1, ... all
        of ``booster``'s trees (ties against the engaged, ``request_ndcgs``)."""
        raw = self._offset(name, X) if name in self.offsets else np.zeros(len(X))
        grade = (y > 0).astype(np.int32)
        out = [request_ndcgs(raw, grade, request)]
        for i in range(booster.num_trees()):
            raw = raw + np.asarray(booster.predict(X, raw_score=True, start_iteration=i, num_iteration=1))
            out.append(request_ndcgs(raw, grade, request))
        return np.stack(out)

    def predict(self, X: np.ndarray, calibrated: bool = True, skip: Collection[str] = ()) -> np.ndarray:
        """(n, len(HEADS)) probabilities; heads without a model return their base rate. Heads named in ``skip``
        are not evaluated and read 0: a policy that weighs a head 0 needs its probability only for the rows it
        explains (the page), which ``complete`` fills in afterwards (a row's prediction does not depend on the
        other rows of the call)."""
        out = np.empty((len(X), len(HEADS)), np.float64)
        for h, name in enumerate(HEADS):
            if name in skip:
                out[:, h] = 0.0
                continue
            if (name not in self.boosters and name not in self.offsets) or len(X) == 0:
                out[:, h] = self.base_rate.get(name, 0.0)
                continue
            p = self._uncalibrated(name, X)
            if calibrated and name in self.calibration:
                a, c = self.calibration[name]
                p = _sigmoid(a * _logit(p) + c)
            out[:, h] = p
        return out

    def complete(self, probs: np.ndarray, X: np.ndarray, skipped: Collection[str]) -> np.ndarray:
        """``probs`` (rows ``predict(X, skip=skipped)`` returned) with the ``skipped`` heads' columns predicted:
        equal to ``predict(X)``."""
        if not skipped:
            return probs
        out = probs.copy()
        cols = [h for h, name in enumerate(HEADS) if name in skipped]
        out[:, cols] = self.predict(X, skip=[name for name in HEADS if name not in skipped])[:, cols]
        return out

    @property
    def trees(self) -> dict[str, int]:
        """Trees each head evaluates per prediction (its serving cost)."""
        return {name: b.num_trees() for name, b in self.boosters.items()}

    @property
    def trained(self) -> bool:
        return bool(self.boosters or self.offsets)

    def save(self, folder: str | Path) -> None:
        d = Path(folder)
        d.mkdir(parents=True, exist_ok=True)
        for name, b in self.boosters.items():
            b.save_model(str(d / f"{name}.txt"))
        meta = {
            "features": list(FEATURES),
            "calibration": self.calibration,
            "base_rate": self.base_rate,
            "params": {
                "n_estimators": self.n_estimators,
                "num_leaves": self.num_leaves,
                "learning_rate": self.learning_rate,
                "max_estimators": self.max_estimators,
                "early_stopping_rounds": self.early_stopping_rounds,
                "early_stopping_min_positives": self.early_stopping_min_positives,
                "feature_fraction": self.feature_fraction,
                "bagging_fraction": self.bagging_fraction,
                "lambda_l2": self.lambda_l2,
                "offset_feature": self.offset_feature,
                "stopping": self.stopping,
            },
            "offsets": self.offsets,
            "trees": self.trees,
        }
        (d / "heads.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, folder: str | Path) -> EngagementHeads:
        d = Path(folder)
        meta = json.loads((d / "heads.json").read_text())
        if meta["features"] != list(FEATURES):
            raise ValueError(f"{d}: heads were trained on other features; run `glassfeed train` again")
        m = cls(**meta["params"])
        m.calibration = {k: (float(v[0]), float(v[1])) for k, v in meta["calibration"].items()}
        m.base_rate = meta["base_rate"]
        m.offsets = {k: (float(v[0]), float(v[1]), float(v[2])) for k, v in meta.get("offsets", {}).items()}
        for name in HEADS:
            f = d / f"{name}.txt"
            if f.exists():
                m.boosters[name] = lgb.Booster(model_file=str(f))
        return m


#: The heads whose label adds a grade to ``RequestRanker``'s relevance label (0 = none of them followed).
GRADE_HEADS: tuple[str, ...] = ("like", "repost", "reply", "dwell")
#: Heads whose label makes the grade 0 whatever else followed (the person pushed the post away).
NEGATIVE_HEADS: tuple[str, ...] = ("see_less", "report")


def relevance_grade(Y: np.ndarray) -> np.ndarray:
    """Graded label per example from head labels ``Y`` (n, len(HEADS)): how many of ``GRADE_HEADS`` followed,
    0 where any of ``NEGATIVE_HEADS`` did."""
    g = Y[:, [HEADS.index(h) for h in GRADE_HEADS]].sum(axis=1)
    g[Y[:, [HEADS.index(h) for h in NEGATIVE_HEADS]].any(axis=1)] = 0
    return g.astype(np.int32)


def group_sizes(request: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(order that makes each request's rows contiguous, rows per request in that order). Within a request the
    rows come in a seeded random order: LightGBM's nDCG breaks score ties by row order, and a log's engaged rows
    precede its sampled negatives, so in log order a ranker that cannot tell rows apart scores well on the
    validation requests and early stopping keeps it (measured on ms-ml100k: one tree)."""
    order = np.lexsort((np.random.default_rng(seed).random(len(request)), request))
    _, sizes = np.unique(request[order], return_counts=True)
    return order, sizes


@dataclass
class RequestRanker:
    """LightGBM ``lambdarank`` over ``FEATURES``: orders a request's candidates by ``relevance_grade``, optimising
    nDCG@``eval_at`` within each request; trees are added until the held-out requests' nDCG stops improving for
    ``early_stopping_rounds`` rounds (at most ``max_estimators``). ``score`` is its raw output (higher = better)."""

    max_estimators: int = 300
    early_stopping_rounds: int = 20
    num_leaves: int = 31
    learning_rate: float = 0.05
    min_child_samples: int = 50
    eval_at: int = 10
    seed: int = 0
    booster_: lgb.Booster | None = None

    def fit(
        self,
        X: np.ndarray,
        grade: np.ndarray,
        request: np.ndarray,
        X_val: np.ndarray | None = None,
        grade_val: np.ndarray | None = None,
        request_val: np.ndarray | None = None,
    ) -> RequestRanker:
        """Fit on examples grouped by ``request`` (any integer key per row); early-stop on the validation set."""
        params = booster_params("lambdarank", self.num_leaves, self.learning_rate, self.min_child_samples, self.seed)
        params.update(metric="ndcg", eval_at=[self.eval_at], label_gain=list(range(2 ** (len(GRADE_HEADS) + 1))))
        order, sizes = group_sizes(request, self.seed)
        if grade[order].max(initial=0) == 0:
            self.booster_ = None  # nothing to rank by: no request holds an engaged example
            return self
        ds = lgb.Dataset(X[order], grade[order], group=sizes, feature_name=list(FEATURES), free_raw_data=True)
        if X_val is None or grade_val is None or request_val is None or not grade_val.any():
            self.booster_ = lgb.train(params, ds, num_boost_round=self.max_estimators // 3)
            return self
        vo, vs = group_sizes(request_val, self.seed + 1)
        valid = lgb.Dataset(X_val[vo], grade_val[vo], group=vs, reference=ds)
        b = lgb.train(
            params,
            ds,
            num_boost_round=self.max_estimators,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)],
        )
        self.booster_ = lgb.Booster(model_str=b.model_to_string(num_iteration=b.best_iteration))
        return self

    @property
    def trained(self) -> bool:
        return self.booster_ is not None

    def score(self, X: np.ndarray) -> np.ndarray:
        """Ranking score per row (comparable within a request only)."""
        if self.booster_ is None:
            raise ValueError("the request ranker is not trained")
        return np.asarray(self.booster_.predict(X, num_threads=1 if len(X) < BIG_BATCH else 0))

    def save(self, folder: str | Path) -> None:
        if self.booster_ is None:
            return
        d = Path(folder)
        d.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(d / "request_ranker.txt"))
        (d / "request_ranker.json").write_text(json.dumps({"features": list(FEATURES), "trees": self.trees}))

    @property
    def trees(self) -> int:
        return 0 if self.booster_ is None else int(self.booster_.num_trees())

    @classmethod
    def load(cls, folder: str | Path) -> RequestRanker:
        d, m = Path(folder), cls()
        if (d / "request_ranker.json").exists():
            meta = json.loads((d / "request_ranker.json").read_text())
            if meta["features"] != list(FEATURES):
                raise ValueError(f"{d}: the request ranker was trained on other features; run `glassfeed train` again")
            m.booster_ = lgb.Booster(model_file=str(d / "request_ranker.txt"))
        return m


@dataclass
class LightRanker:
    """Logistic regression on ``LIGHT_FEATURES`` predicting any positive engagement (first-stage ranker)."""

    l2: float = 1.0
    coef: np.ndarray | None = None
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    cols: np.ndarray = field(default_factory=lambda: np.array([F[f] for f in LIGHT_FEATURES]))

    def fit(self, X: np.ndarray, y: np.ndarray) -> LightRanker:
        Z = X[:, self.cols].astype(np.float64)
        self.mean, self.scale = Z.mean(axis=0), Z.std(axis=0) + 1e-9
        Z = np.c_[(Z - self.mean) / self.scale, np.ones(len(Z))]
        y = y.astype(np.float64)

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            q = np.clip(_sigmoid(Z @ w), 1e-9, 1 - 1e-9)
            reg = 0.5 * self.l2 * (w[:-1] @ w[:-1]) / len(Z)
            g = Z.T @ (q - y) / len(Z)
            g[:-1] += self.l2 * w[:-1] / len(Z)
            return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)) + reg), g

        self.coef = minimize(loss, np.zeros(Z.shape[1]), jac=True, method="L-BFGS-B").x
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        if self.coef is None:
            return X[:, F["like_rate"]] - 0.01 * X[:, F["age_h"]]
        Z = (X[:, self.cols] - self.mean) / self.scale
        return Z @ self.coef[:-1] + self.coef[-1]

    def save(self, folder: str | Path) -> None:
        if self.coef is None or self.mean is None or self.scale is None:
            return
        (Path(folder) / "light_ranker.json").write_text(
            json.dumps(
                {
                    "features": list(LIGHT_FEATURES),
                    "coef": self.coef.tolist(),
                    "mean": self.mean.tolist(),
                    "scale": self.scale.tolist(),
                }
            )
        )

    @classmethod
    def load(cls, folder: str | Path) -> LightRanker:
        f = Path(folder) / "light_ranker.json"
        m = cls()
        if f.exists():
            d = json.loads(f.read_text())
            if d.get("features") != list(LIGHT_FEATURES):
                raise ValueError(f"{f}: the light ranker was trained on other features; run `glassfeed train` again")
            m.coef, m.mean, m.scale = (np.array(d[k]) for k in ("coef", "mean", "scale"))
        return m
