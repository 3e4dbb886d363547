"""Chaney, Stewart & Engelhardt (2018) homogenisation experiment, following the T-RECS replication.

Re-implements, in batched numpy, the simulation of sunnymatt/t-recs-experiments (``algo_confounding/``) on the
T-RECS library (elucherini/t-recs): users with Dirichlet preferences meet 10 new items a step, an attention
discount ``rank**-0.8`` shapes what they pick, they never pick an item twice, and six recommenders
(ideal, popularity, content filtering, social filtering, implicit matrix factorisation, random) are trained on
the interactions they themselves caused. Homogenisation at step t is the mean Jaccard index of each user's
consumed set with that of their nearest neighbour (cosine of the recommender's user vectors) minus the same
pairs' Jaccard under the ideal recommender. All simulations of a batch advance in lockstep as one array
(every sim has the same item count at every step), so the hot path has no per-user or per-sim Python loop.
See docs/chaney.md for every modelling decision and the measured reproduction.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from glassfeed.audit.metrics import nearest_neighbours, pair_jaccard

__all__ = ["ChaneyConfig", "ChaneyResult", "MODELS", "LABELS", "PUBLISHED", "run_chaney", "sample_worlds"]

MODELS: tuple[str, ...] = ("ideal", "popularity", "content", "social", "mf", "random")
LABELS: dict[str, str] = {
    "ideal": "ideal",
    "popularity": "popularity",
    "content": "content filtering",
    "social": "social filtering",
    "mf": "matrix factorisation",
    "random": "random",
}
#: Homogenisation at t = 100 read off the T-RECS replication figures (/work/shared/reference/chaney_*.png).
PUBLISHED: dict[str, dict[str, float]] = {
    "repeated": {"popularity": 0.22, "content": 0.15, "social": 0.09, "mf": 0.08, "random": 0.01},
    "single": {"popularity": 0.045, "content": 0.02, "social": 0.0, "mf": 0.0, "random": 0.0},
}


@dataclass(frozen=True, slots=True)
class ChaneyConfig:
    """Simulation parameters; defaults are those of the T-RECS replication (repeated training)."""

    n_users: int = 100
    n_attrs: int = 20
    items_per_step: int = 10
    n_startup: int = 10
    n_steps: int = 90
    attention_exp: float = -0.8
    mu_known: float = 0.98  # mean share of the true utility a user knows
    sigma: float = 1e-5  # std of both Beta draws
    user_hp_scale: float = 10.0  # user hyper-parameter ~ Dir(1_A) * 10
    item_hp_conc: float = 100.0  # item hyper-parameter ~ Dir(100 * 1_A) * 0.1
    item_hp_scale: float = 0.1
    mf_factors: int = 20  # T-RECS passes num_latent_factors = num_attrs
    mf_weight: float = 40.0  # LensKit ImplicitMF defaults: weight 40, reg 0.1
    mf_reg: float = 0.1
    mf_first_iters: int = 20  # ALS sweeps for the first fit (LensKit default iterations)
    mf_iters: int = 2  # warm-started ALS sweeps for each refit (1, 2, 3, 6 agree within noise)
    mf_cg_steps: int = 3  # conjugate-gradient steps per least-squares solve
    nnls_sweeps: int = 200  # cap on coordinate-descent sweeps of the content-filtering NNLS
    rank_margin: int = 32  # top-k window beyond the consumed count before the exact fallback

    @classmethod
    def single(cls, **kw: Any) -> ChaneyConfig:
        """Single training: 50 startup steps, then 50 steps on a model trained once."""
        return cls(**{"n_startup": 50, "n_steps": 50, **kw})

    @property
    def n_total(self) -> int:
        return self.n_startup + self.n_steps

    @property
    def n_items(self) -> int:
        return self.items_per_step * self.n_total


@dataclass(slots=True)
class ChaneyResult:
    """Per-model homogenisation curves: ``curves[m]`` is ``(n_sims, T)``; means and standard errors over sims."""

    training: str
    n_sims: int
    seed: int
    config: ChaneyConfig
    curves: dict[str, NDArray[np.float64]]
    runtime_s: float
    mean: dict[str, NDArray[np.float64]] = field(init=False)
    se: dict[str, NDArray[np.float64]] = field(init=False)

    def __post_init__(self) -> None:
        self.mean = {m: c.mean(axis=0) for m, c in self.curves.items()}
        ddof = 1 if self.n_sims > 1 else 0
        self.se = {m: c.std(axis=0, ddof=ddof) / np.sqrt(self.n_sims) for m, c in self.curves.items()}

    @property
    def final(self) -> dict[str, tuple[float, float]]:
        """``{model: (mean, standard error)}`` of homogenisation at the last step (t = 100 by default)."""
        return {m: (float(self.mean[m][-1]), float(self.se[m][-1])) for m in self.curves}

    def table(self) -> list[tuple[str, float, float, float | None]]:
        """Rows ``(label, measured mean, se, published)`` for the non-ideal models, published order."""
        pub = PUBLISHED.get(self.training, {})
        return [(LABELS[m], *self.final[m], pub.get(m)) for m in MODELS if m in self.curves and m != "ideal"]


# --------------------------------------------------------------------------- worlds


@dataclass(slots=True)
class _Worlds:
    prefs: NDArray[np.float64]  # (S, U, A) true user preferences
    items: NDArray[np.float64]  # (S, N, A) true item attributes
    true: NDArray[np.float64]  # (S, U, N) true utilities (the ideal recommender's scores)
    known: NDArray[np.float64]  # (S, U, N) utilities users act on
    social: NDArray[np.float64]  # (S, U, U) 0/1 adjacency with self-loops


_MeanT = TypeVar("_MeanT", NDArray[np.float64], float)


def _beta_params(mu: _MeanT, sigma: float) -> tuple[_MeanT, _MeanT]:
    """Chaney's Beta with mean ``mu`` and std ``sigma`` (paper footnote 3)."""
    alpha = ((1.0 - mu) / sigma**2 - 1.0 / mu) * mu**2
    return alpha, alpha * (1.0 / mu - 1.0)


def _social_network(prefs: NDArray[np.float64]) -> NDArray[np.float64]:
    """T-RECS replication's graph: threshold the user-user covariance at the largest value (skipping the top
    ``U`` sorted entries) that still gives every user at least one link (self-links included)."""
    u = prefs.shape[0]
    cov = np.cov(prefs)
    cand = np.sort(cov.ravel())[::-1][u:]
    need = cov.max(axis=1).min()
    ok = np.nonzero(cand <= need)[0]
    if ok.size == 0:
        raise RuntimeError("could not find a connecting threshold")
    return (cov >= cand[ok[0]]).astype(np.float64)


def _sim_seeds(seed: int, n_sims: int) -> list[np.random.SeedSequence]:
    return np.random.SeedSequence([seed, 0]).spawn(n_sims)


def sample_worlds(
    config: ChaneyConfig, n_sims: int, seed: int = 0, seeds: list[np.random.SeedSequence] | None = None
) -> _Worlds:
    """Draw users, items, utilities and social graphs; sim i uses its own child seed, so batching is irrelevant."""
    cfg = config
    a_n, b_n = _beta_params(cfg.mu_known, cfg.sigma)
    out: dict[str, list] = {k: [] for k in ("prefs", "items", "true", "known", "social")}
    for child in seeds if seeds is not None else _sim_seeds(seed, n_sims):  # per-sim draws; the loop is batched
        rng = np.random.default_rng(child)
        user_hp = rng.dirichlet(np.ones(cfg.n_attrs)) * cfg.user_hp_scale
        item_hp = rng.dirichlet(np.full(cfg.n_attrs, cfg.item_hp_conc)) * cfg.item_hp_scale
        prefs = rng.dirichlet(user_hp, size=cfg.n_users)
        items = rng.dirichlet(item_hp, size=cfg.n_items)
        mu = np.clip(prefs @ items.T, 1e-9, None)
        a, b = _beta_params(mu, cfg.sigma)
        true = rng.beta(a, b)
        known = true * rng.beta(a_n, b_n, size=true.shape)
        out["prefs"].append(prefs)
        out["items"].append(items)
        out["true"].append(true)
        out["known"].append(known)
        out["social"].append(_social_network(prefs))
    return _Worlds(**{k: np.stack(v) for k, v in out.items()})


# --------------------------------------------------------------------------- recommenders


class _TieBreak:
    """Cheap fresh random tie-breakers: rows of one pre-drawn uniform matrix, rolled by a random offset per call."""

    def __init__(self, rng: np.random.Generator, rows: int, cols: int) -> None:
        self.rng, self.base = rng, rng.random((rows, cols))

    def __call__(self, scores: NDArray[np.float64]) -> NDArray[np.float64]:
        """Scores plus a perturbation far below any real score gap, so only exact ties are reordered (randomly)."""
        rows = int(np.prod(scores.shape[:-1]))
        n = scores.shape[-1]
        shift = int(self.rng.integers(self.base.shape[0]))
        noise = np.roll(self.base, shift, axis=0)[:rows, :n].reshape(scores.shape)
        scale = np.max(np.abs(scores), axis=-1, keepdims=True)
        return scores + noise * (1e-9 * np.maximum(scale, 1e-300))


class _Model:
    """A recommender inside the simulation: user vectors, an interaction update and a (re)train."""

    always_train = False  # random re-draws every step even under single training (as in the replication)

    def __init__(self, w: _Worlds, cfg: ChaneyConfig, rng: np.random.Generator, tie: _TieBreak) -> None:
        self.w, self.cfg, self.rng, self.tie = w, cfg, rng, tie
        self.scores: NDArray[np.float64] | None = None  # (S, U, n_trained), jittered

    def user_vectors(self) -> NDArray[np.float64]:
        raise NotImplementedError

    def new_items(self, lo: int, hi: int) -> None:
        """Items ``lo:hi`` were just created."""

    def update(self, consumed: NDArray[np.bool_], choice: NDArray[np.int64]) -> None:
        """Record this step's interactions (``consumed`` already includes them)."""

    def train(self, consumed: NDArray[np.bool_], hist: NDArray[np.int64], n: int) -> None:
        """Refit on all interactions so far: ``consumed`` ``(S, U, N)`` bool, ``hist`` ``(S, U, t)`` item ids."""
        raise NotImplementedError


class _Ideal(_Model):
    def user_vectors(self):
        return self.w.prefs

    def train(self, consumed, hist, n):
        self.scores = self.tie(self.w.true[..., :n])


class _Popularity(_Model):
    def __init__(self, w, cfg, rng, tie):
        super().__init__(w, cfg, rng, tie)
        s, u, _ = w.known.shape
        self.counts = np.zeros((s, w.items.shape[1]))
        self.ones = np.ones((s, u, 1))

    def user_vectors(self):
        return self.ones  # every user looks the same: nearest neighbours are uniformly random

    def update(self, consumed, choice):
        s = choice.shape[0]
        flat = (np.arange(s)[:, None] * self.counts.shape[1] + choice).ravel()
        self.counts += np.bincount(flat, minlength=self.counts.size).reshape(self.counts.shape)

    def train(self, consumed, hist, n):
        u = self.ones.shape[1]
        self.scores = self.tie(np.broadcast_to(self.counts[:, None, :n], (self.counts.shape[0], u, n)))


class _Content(_Model):
    """Chaney's content filtering: item attributes known exactly, user vectors by NNLS on consumption."""

    def __init__(self, w, cfg, rng, tie):
        super().__init__(w, cfg, rng, tie)
        self.W = np.zeros(w.prefs.shape)

    def user_vectors(self):
        return self.W

    def train(self, consumed, hist, n):
        X = self.w.items[:, :n]  # (S, n, A)
        G = np.swapaxes(X, 1, 2) @ X  # (S, A, A)
        b = consumed[..., :n].astype(np.float64) @ X  # (S, U, A)
        self.W = _nnls_gram(G, b, self.W, self.cfg.nnls_sweeps)
        self.scores = self.tie(self.W @ np.swapaxes(X, 1, 2))


def _nnls_gram(G, b, w0, max_sweeps, tol=1e-10):
    """Batched NNLS ``min ||X w - c||, w >= 0`` from its Gram form (G = X'X, b = X'c) by projected coordinate
    descent, warm-started at ``w0``; exact at convergence (the objective is convex)."""
    w = np.maximum(w0, 0.0).copy()
    diag = np.diagonal(G, axis1=1, axis2=2)  # (S, A)
    g = w @ G - b  # gradient (G symmetric)
    a = w.shape[-1]
    for _ in range(max_sweeps):
        biggest = 0.0
        for j in range(a):
            d = diag[:, j][:, None]
            new = np.where(d > 0, np.maximum(w[..., j] - g[..., j] / np.where(d > 0, d, 1.0), 0.0), 0.0)
            delta = new - w[..., j]
            if np.any(delta):
                w[..., j] = new
                g += delta[..., None] * G[:, j, None, :]
                biggest = max(biggest, float(np.abs(delta).max()))
        if biggest < tol:
            break
    return w


class _Social(_Model):
    """Score = number of the user's graph neighbours (self included) who consumed the item."""

    def user_vectors(self):
        return self.w.social

    def train(self, consumed, hist, n):
        self.scores = self.tie(self.w.social @ consumed[..., :n].astype(np.float64))


class _MF(_Model):
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008) as in LensKit's ImplicitMF, solved by batched CG.

    Only items with at least one interaction are in the model; other items keep the mean item vector they were
    given at creation (LensKit mean imputation in T-RECS), or zeros before the first fit.
    """

    def __init__(self, w, cfg, rng, tie):
        super().__init__(w, cfg, rng, tie)
        s, u, _ = w.known.shape
        k = cfg.mf_factors
        self.X = rng.normal(size=(s, u, k))  # T-RECS starts users_hat as N(0, 1)
        self.Y = np.zeros((s, w.items.shape[1], k))
        self.in_model = np.zeros((s, w.items.shape[1]), dtype=bool)
        self.fitted = False

    def user_vectors(self):
        return self.X

    def new_items(self, lo, hi):
        if self.fitted:
            m = self.in_model[..., None]
            mean = (self.Y * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1)
            self.Y[:, lo:hi] = mean[:, None, :]

    def train(self, consumed, hist, n):
        cfg = self.cfg
        S, U, L = hist.shape
        k = cfg.mf_factors
        m = consumed[..., :n].any(axis=1)  # (S, n) items in the model
        Y = self.Y[:, :n].copy()
        if not self.fitted:
            self.X = self.rng.normal(scale=0.1, size=self.X.shape)
            Y = np.where(m[..., None], self.rng.normal(scale=0.1, size=(S, n, k)), Y)
            iters = cfg.mf_first_iters
        else:
            iters = cfg.mf_iters
        X = self.X
        # observed (sim, user, item) triples, grouped by user (hist order) and by item (sorted keys)
        sim_of = np.broadcast_to(np.arange(S)[:, None, None], hist.shape)
        user_key = (sim_of * U + np.arange(U)[None, :, None]).ravel()
        item_key = (sim_of * n + hist).ravel()
        order = np.argsort(item_key, kind="stable")
        item_sorted, user_sorted = item_key[order], user_key[order]
        indptr = np.r_[0, np.cumsum(np.bincount(item_sorted, minlength=S * n))]
        eye = cfg.mf_reg * np.eye(k)
        for _ in range(iters):
            # users: F = in-model item factors; each user's observed items are hist[s, u, :]
            Fm = Y * m[..., None]
            Fo = Y.reshape(S * n, k)[item_key].reshape(S, U, L, k)

            def user_obs(v, Fo=Fo):
                return ((Fo @ v[..., None]).swapaxes(-1, -2) @ Fo)[..., 0, :]

            X = _cg(
                np.swapaxes(Fm, 1, 2) @ Fm + eye,
                user_obs,
                (1 + cfg.mf_weight) * Fo.sum(axis=2),
                X,
                cfg.mf_weight,
                cfg.mf_cg_steps,
            )
            # items: F = user factors; an item's observers are a sparse (item x user) matrix, block-diagonal in sims
            Xf = X.reshape(S * U, k)
            Xo = Xf[user_sorted]

            def item_obs(v, Xf=Xf, Xo=Xo):
                dots = np.einsum("ok,ok->o", Xo, v.reshape(S * n, k)[item_sorted])
                return (sp.csr_matrix((dots, user_sorted, indptr), shape=(S * n, S * U)) @ Xf).reshape(S, n, k)

            ones = sp.csr_matrix((np.ones(len(user_sorted)), user_sorted, indptr), shape=(S * n, S * U))
            Ynew = _cg(
                np.swapaxes(X, 1, 2) @ X + eye,
                item_obs,
                (1 + cfg.mf_weight) * (ones @ Xf).reshape(S, n, k),
                Y,
                cfg.mf_weight,
                cfg.mf_cg_steps,
            )
            Y = np.where(m[..., None], Ynew, Y)
        self.X, self.Y[:, :n], self.in_model[:, :n] = X, Y, m
        self.fitted = True
        self.scores = self.tie(X @ np.swapaxes(Y, 1, 2))


def _cg(gram, observed, b, x0, weight, steps):
    """Batched conjugate gradient on implicit-ALS normal equations (Takacs, Pilaszy & Tikk 2011).

    Row r solves ``(gram + weight * F' diag(p_r) F) x = b_r`` where ``gram = F'F + reg I`` ``(S, k, k)`` and
    ``observed(v)`` returns ``F' diag(p_r) F v_r`` for every row of ``v`` ``(S, R, k)``; starts from ``x0``.
    """

    def apply(v):
        return v @ gram + weight * observed(v)

    x = x0.copy()
    r = b - apply(x)
    p = r.copy()
    rs = np.einsum("srk,srk->sr", r, r)
    for _ in range(steps):
        Ap = apply(p)
        denom = np.einsum("srk,srk->sr", p, Ap)
        alpha = np.divide(rs, denom, out=np.zeros_like(rs), where=denom > 0)
        x += alpha[..., None] * p
        r -= alpha[..., None] * Ap
        rs_new = np.einsum("srk,srk->sr", r, r)
        beta = np.divide(rs_new, rs, out=np.zeros_like(rs), where=rs > 0)
        p = r + beta[..., None] * p
        rs = rs_new
    return x


class _Random(_Model):
    """Random user and item vectors, re-drawn every step; scores are their inner products."""

    always_train = True

    def __init__(self, w: _Worlds, cfg: ChaneyConfig, rng: np.random.Generator, tie: _TieBreak) -> None:
        super().__init__(w, cfg, rng, tie)
        self.R: NDArray[np.float64] = np.zeros(w.prefs.shape)

    def user_vectors(self):
        return self.R

    def update(self, consumed, choice):
        self.R = self.rng.random(self.R.shape)

    def train(self, consumed, hist, n):
        s, _, a = self.R.shape
        self.scores = self.tie(self.R @ self.rng.random((s, a, n)))


_CLASSES = {
    "ideal": _Ideal,
    "popularity": _Popularity,
    "content": _Content,
    "social": _Social,
    "mf": _MF,
    "random": _Random,
}


# --------------------------------------------------------------------------- user choice


def _distinct_slots(rng: np.random.Generator, rows: int, k: int, length: int) -> NDArray[np.int64]:
    """``k`` distinct uniform positions in ``[0, length)`` per row, sorted (Floyd's algorithm, vectorised)."""
    out = np.empty((rows, k), dtype=np.int64)
    for i, j in enumerate(range(length - k, length)):
        r = rng.integers(0, j + 1, size=rows)
        taken = (out[:, :i] == r[:, None]).any(axis=1) if i else np.zeros(rows, dtype=bool)
        out[:, i] = np.where(taken, j, r)
    return np.sort(out, axis=1)


def _choose(scores, known, consumed, new_lo, new_hi, n_rec, att, rng, margin):
    """Each user's pick from the page T-RECS shows them; returns ``(S, U)`` item ids.

    The page is the ``n_rec`` top-scored trained items in score order with the new items ``new_lo:new_hi``
    (random order) dropped into uniformly random slots; already-consumed items stay on the page but cannot be
    picked. A user takes ``argmax known * position**att``. Only the top ``consumed + margin`` ranks are scored;
    rows where the deeper ranks could still win (checked with an upper bound) are recomputed exactly.
    """
    s, u, _ = known.shape
    rows = s * u
    kn = known.reshape(rows, -1)
    cons = consumed.reshape(rows, -1)
    n_new = new_hi - new_lo
    length = n_rec + n_new
    slots = _distinct_slots(rng, rows, n_new, length)  # 0-based page positions of new items
    perm = new_lo + np.argsort(rng.random((rows, n_new)), axis=1)
    new_val = np.take_along_axis(kn, perm, axis=1) * (slots + 1.0) ** att
    best_new = new_val.max(axis=1)
    pick = np.take_along_axis(perm, new_val.argmax(axis=1)[:, None], axis=1)[:, 0]
    if n_rec == 0:
        return pick.reshape(s, u)
    sc = scores.reshape(rows, -1)
    n_cons = int(cons[0].sum())
    shift = slots - np.arange(n_new)  # new slot j sits after (slot_j - j) recommended items

    def rank_pick(idx, kk):
        sub = sc if idx is None else sc[idx]
        r_idx = np.arange(rows)[:, None] if idx is None else idx[:, None]
        n = sub.shape[1]
        top = np.argpartition(sub, n - kk, axis=1)[:, n - kk :] if kk < n else np.broadcast_to(np.arange(n), sub.shape)
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(sub, top, axis=1), axis=1), axis=1)
        top = top[:, :kk]
        sh = np.minimum(shift if idx is None else shift[idx], kk)  # new slots after rank kk do not matter
        nr = sh.shape[0]
        before = np.bincount((np.arange(nr)[:, None] * (kk + 1) + sh).ravel(), minlength=nr * (kk + 1))
        pos = np.arange(kk) + np.cumsum(before.reshape(nr, kk + 1), axis=1)[:, :kk]  # 0-based page position
        val = kn[r_idx, top] * (pos + 1.0) ** att
        val = np.where(cons[r_idx, top], -np.inf, val)
        j = val.argmax(axis=1)
        return np.take_along_axis(top, j[:, None], axis=1)[:, 0], np.take_along_axis(val, j[:, None], axis=1)[:, 0]

    kk = min(n_rec, n_cons + margin)
    rec_pick, rec_val = rank_pick(None, kk)
    if kk < n_rec:  # anything below rank kk sits at position >= kk + 1
        n_tr = sc.shape[1]
        bound = np.where(cons[:, :n_tr], -np.inf, kn[:, :n_tr]).max(axis=1) * (kk + 1.0) ** att
        redo = np.nonzero(np.maximum(rec_val, best_new) < bound)[0]
        if redo.size:
            rec_pick[redo], rec_val[redo] = rank_pick(redo, n_rec)
    pick = np.where(rec_val > best_new, rec_pick, pick)
    return pick.reshape(s, u)


# --------------------------------------------------------------------------- the loop


def _simulate(
    w: _Worlds, cfg: ChaneyConfig, repeated: bool, models: tuple[str, ...], rng: np.random.Generator
) -> dict[str, NDArray[np.float64]]:
    s, u, n_max = w.known.shape
    step_items = cfg.items_per_step
    names = ("ideal", *(m for m in models if m != "ideal"))
    tie = _TieBreak(rng, s * u, n_max)
    recs = {m: _CLASSES[m](w, cfg, rng, tie) for m in names}
    consumed = {m: np.zeros((s, u, n_max), dtype=bool) for m in names}
    hist = {m: np.zeros((s, u, cfg.n_total), dtype=np.int64) for m in names}
    out = {m: np.zeros((s, cfg.n_total)) for m in names if m != "ideal"}
    cap = step_items * cfg.n_startup  # single training shows the trained (startup) items only
    sim_idx = np.arange(s)[:, None]
    user_idx = np.arange(u)[None, :]
    for t in range(cfg.n_total):
        lo, hi = t * step_items, (t + 1) * step_items
        startup = t < cfg.n_startup
        for m in names:
            rec, cons = recs[m], consumed[m]
            rec.new_items(lo, hi)
            vecs = rec.user_vectors()  # the representation that produced this step's page
            if startup:
                n_rec = 0
            else:
                assert rec.scores is not None  # trained at the end of the startup phase
                n_rec = rec.scores.shape[-1] if repeated else min(cap, rec.scores.shape[-1])
            choice = _choose(rec.scores, w.known, cons, lo, hi, n_rec, cfg.attention_exp, rng, cfg.rank_margin)
            cons[sim_idx, user_idx, choice] = True
            hist[m][..., t] = choice
            rec.update(cons, choice)
            if t == cfg.n_startup - 1 or (not startup and (repeated or rec.always_train)):
                rec.train(cons, hist[m][..., : t + 1], hi)
            if m != "ideal":
                nn = nearest_neighbours(vecs, rng)
                out[m][:, t] = (pair_jaccard(cons[..., :hi], nn) - pair_jaccard(consumed["ideal"][..., :hi], nn)).mean(
                    axis=1
                )
    return out


def _run_batch(
    cfg: ChaneyConfig,
    seeds: list[np.random.SeedSequence],
    loop_seed: list[int],
    repeated: bool,
    models: tuple[str, ...],
) -> dict[str, NDArray[np.float64]]:
    worlds = sample_worlds(cfg, len(seeds), seeds=seeds)
    return _simulate(worlds, cfg, repeated, models, np.random.default_rng(loop_seed))


def run_chaney(
    n_sims: int = 50,
    seed: int = 0,
    training: str = "repeated",
    *,
    config: ChaneyConfig | None = None,
    models: tuple[str, ...] = MODELS,
    batch_size: int = 25,
    n_jobs: int = 1,
) -> ChaneyResult:
    """Run ``n_sims`` simulations of every model and return homogenisation over time with standard errors.

    ``training`` is ``"repeated"`` (10 startup steps of random new items, then 90 steps retraining every step)
    or ``"single"`` (50 + 50, trained once after startup). Sims run ``batch_size`` at a time as one array;
    ``n_jobs > 1`` runs batches in parallel processes. Deterministic for a given (seed, n_sims, batch_size),
    whatever ``n_jobs``.
    """
    if training not in ("repeated", "single"):
        raise ValueError("training must be 'repeated' or 'single'")
    if n_sims < 1:
        raise ValueError("n_sims must be >= 1")
    cfg = config or (ChaneyConfig() if training == "repeated" else ChaneyConfig.single())
    t0 = time.perf_counter()
    seeds = _sim_seeds(seed, n_sims)
    jobs = [
        (cfg, seeds[a : a + batch_size], [seed, 1, b], training == "repeated", models)
        for b, a in enumerate(range(0, n_sims, batch_size))
    ]
    if n_jobs > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=min(n_jobs, len(jobs))) as pool:
            parts = list(pool.map(_run_batch, *zip(*jobs)))
    else:
        parts = [_run_batch(*job) for job in jobs]
    curves = {m: np.concatenate([p[m] for p in parts]) for m in parts[0]}
    curves["ideal"] = np.zeros((n_sims, cfg.n_total))
    return ChaneyResult(training, n_sims, seed, cfg, curves, time.perf_counter() - t0)
