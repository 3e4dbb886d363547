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


class BoosterFit(Protocol):
    """Fits one head's booster: ``rounds`` boosting rounds of ``params`` on (X, y); with ``valid`` (X, y) and
    ``stopping_rounds`` > 0, keeps only the trees up to the round of lowest held-out log-loss, stopping once it
    has not improved for ``stopping_rounds`` rounds (LightGBM's ``early_stopping`` rule)."""

    def __call__(
        self,
        params: dict[str, Any],
        X: np.ndarray,
        y: np.ndarray,
        rounds: int,
        valid: tuple[np.ndarray, np.ndarray] | None,
        stopping_rounds: int,
    ) -> lgb.Booster: ...


def fit_booster_local(
    params: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    rounds: int,
    valid: tuple[np.ndarray, np.ndarray] | None,
    stopping_rounds: int,
) -> lgb.Booster:
    """``BoosterFit`` in this process (``lgb.train``, early stopping by its callback)."""
    ds = lgb.Dataset(X, y, feature_name=list(FEATURES), free_raw_data=True)
    if valid is None or not stopping_rounds:
        return lgb.train(params, ds, num_boost_round=rounds)
    booster = lgb.train(
        params,
        ds,
        num_boost_round=rounds,
        valid_sets=[lgb.Dataset(valid[0], valid[1], reference=ds)],
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
    ``n_estimators`` trees (measured in docs/benchmarks.md and docs/simulation.md).
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
    seed: int = 0
    boosters: dict[str, lgb.Booster] = field(default_factory=dict)
    calibration: dict[str, tuple[float, float]] = field(default_factory=dict)
    base_rate: dict[str, float] = field(default_factory=dict)

    def fit(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        X_cal: np.ndarray | None = None,
        Y_cal: np.ndarray | None = None,
        fit_booster: BoosterFit | None = None,
    ) -> EngagementHeads:
        """Fit every head on (X, Y), early-stop and Platt-calibrate on (X_cal, Y_cal); a head's NaN labels mark
        examples it has no label for (they are left out of its fit). ``fit_booster`` fits one
        head's booster (default ``fit_booster_local``, in this process; ``train.DaskBoosterFit`` on a Dask
        cluster): the examples, parameters, early-stopping rule and calibration are the same either way."""
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
            X_c = X_cal
            if X_cal is not None and np.isnan(y_cal).any():
                known_c = ~np.isnan(y_cal)
                X_c, y_cal = X_cal[known_c], y_cal[known_c]
            if held_out and y_cal.sum() < 5:
                continue  # too few held-out positives to check a model against: base rate, not noise
            early = bool(held_out and self.early_stopping_rounds and y_cal.sum() >= self.early_stopping_min_positives)
            booster = fit_booster(
                params,
                X_h,
                y,
                self.max_estimators if early else self.n_estimators,
                (X_c, y_cal.astype(np.float32)) if early and X_c is not None else None,
                self.early_stopping_rounds if early else 0,
            )
            self.boosters[name] = booster
            if held_out:
                raw = np.asarray(booster.predict(X_c))
                self.calibration[name] = fit_platt(raw, y_cal.astype(np.float64))
        return self

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
            b = self.boosters.get(name)
            if b is None or len(X) == 0:
                out[:, h] = self.base_rate.get(name, 0.0)
                continue
            p = np.asarray(b.predict(X, num_threads=1 if len(X) < BIG_BATCH else 0))  # 0: all cores for batch ranking
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
        return bool(self.boosters)

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
            },
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
