"""Community notes: X's bridging matrix factorisation, which decides which notes show (docs/notes.md).

Each rating r (helpful 1, somewhat helpful 0.5, not helpful 0: ``[ratings]`` in the policy) is modelled as

    r(u, n) ≈ mu + i_u + i_n + f_u * f_n            (one-dimensional factors)

and the parameters minimise the squared error plus ``intercept_lambda (i_u² + i_n² + mu²) + factor_lambda
(f_u² + f_n²)`` (Wojcik et al. 2022; github.com/twitter/communitynotes). With ``penalty = "mean"`` (the
policy default, what the scorer's code computes) the squared error and each group's penalty are means instead
of sums, i.e. each group's lambda is scaled by (number of ratings / group size); ``"sum"`` is the formula as
written. Intercepts cost five times more than factors, so agreement that the raters' viewpoint (their factor)
can explain goes into the factor, and a note's
intercept ``i_n`` grows only with helpful ratings from both sides: the note's "helpfulness across perspectives".

The fit is alternating least squares: with the raters fixed, every note's ``(i_n, f_n)`` is a two-parameter ridge
regression with a closed form, solved for all notes at once from ``np.bincount`` sums; then the raters' the same
way; then ``mu``. Each step lowers the loss exactly, so it converges monotonically; the starting factors are drawn
from ``seed``, so the fit is deterministic given the seed. The factor's sign is arbitrary (flipping every ``f_u``
and ``f_n`` leaves the loss unchanged); as in the reference scorer it is fixed so that at least half of the raters
have a negative factor (the larger camp is negative).

Every threshold and penalty is policy data (``policies/moderation/notes.toml``, loaded by :func:`load_policy`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Status codes returned by :meth:`BridgingModel.status` index this tuple.
STATUS_NAMES: tuple[str, ...] = ("needs_more_ratings", "currently_rated_helpful", "currently_rated_not_helpful")
NEEDS_MORE_RATINGS, HELPFUL, NOT_HELPFUL = 0, 1, 2
#: The answers a rater can give, in the order of the policy's ``[ratings]`` table.
RATING_LABELS: tuple[str, ...] = ("helpful", "somewhat_helpful", "not_helpful")

_DEFAULT = "policies/moderation/notes.toml"


class NotesPolicyError(ValueError):
    """A notes policy file that is missing a key, has an unknown one, or holds an impossible value."""


@dataclass(frozen=True, slots=True)
class NotesPolicy:
    """The numbers of ``policies/moderation/notes.toml`` (see that file for each one's source)."""

    name: str
    title: str
    summary: str
    rating_values: dict[str, float]
    intercept_lambda: float
    factor_lambda: float
    penalty: Literal["sum", "mean"]
    max_iterations: int
    tolerance: float
    init_scale: float
    min_ratings: int
    min_minority_net_helpful: int
    helpful_intercept: float
    helpful_max_abs_factor: float
    not_helpful_intercept: float
    not_helpful_factor_slope: float

    def values(self, labels: ArrayLike) -> NDArray[np.float64]:
        """Model values for rating labels (``"helpful"``, ``"somewhat_helpful"``, ``"not_helpful"``)."""
        arr = np.asarray(labels)
        out = np.full(arr.shape, np.nan)
        for label, value in self.rating_values.items():
            out[arr == label] = value
        if np.isnan(out).any():
            bad = arr[np.isnan(out)].ravel()[0]
            raise ValueError(f"unknown rating label {bad!r}; expected one of {', '.join(RATING_LABELS)}")
        return out


_KEYS: dict[str, tuple[str, ...]] = {
    "ratings": RATING_LABELS,
    "model": ("intercept_lambda", "factor_lambda", "penalty"),
    "fit": ("max_iterations", "tolerance", "init_scale"),
    "status": (
        "min_ratings",
        "min_minority_net_helpful",
        "helpful_intercept",
        "helpful_max_abs_factor",
        "not_helpful_intercept",
        "not_helpful_factor_slope",
    ),
}


def policy_from_dict(d: dict[str, Any], origin: str = "<dict>") -> NotesPolicy:
    """Check and convert a parsed notes policy; every key is required and unknown keys are errors."""
    for key in d:
        if key not in ("name", "title", "summary", *_KEYS):
            raise NotesPolicyError(f"{origin}: {key}: unknown key")
    flat: dict[str, Any] = {}
    for table, keys in _KEYS.items():
        body = d.get(table)
        if not isinstance(body, dict):
            raise NotesPolicyError(f"{origin}: [{table}]: missing table")
        for key in body:
            if key not in keys:
                raise NotesPolicyError(f"{origin}: [{table}] {key}: unknown key; expected one of {', '.join(keys)}")
        for key in keys:
            if key not in body:
                raise NotesPolicyError(f"{origin}: [{table}] {key}: missing")
            flat[key] = body[key]
    if flat["penalty"] not in ("sum", "mean"):
        raise NotesPolicyError(f'{origin}: [model] penalty: must be "sum" or "mean", not {flat["penalty"]!r}')
    positive = ("intercept_lambda", "factor_lambda", "tolerance", "init_scale", "max_iterations")
    for key in positive:
        if not isinstance(flat[key], (int, float)) or isinstance(flat[key], bool) or not flat[key] > 0:
            raise NotesPolicyError(f"{origin}: {key}: must be a positive number, not {flat[key]!r}")
    if not isinstance(flat["min_ratings"], int) or flat["min_ratings"] < 1:
        raise NotesPolicyError(f"{origin}: [status] min_ratings: must be a positive integer")
    if not isinstance(flat["min_minority_net_helpful"], int) or flat["min_minority_net_helpful"] < 0:
        raise NotesPolicyError(f"{origin}: [status] min_minority_net_helpful: must be an integer >= 0")
    if flat["helpful_max_abs_factor"] < 0:
        raise NotesPolicyError(f"{origin}: [status] helpful_max_abs_factor: must be >= 0")
    if flat["not_helpful_intercept"] >= flat["helpful_intercept"]:
        raise NotesPolicyError(f"{origin}: [status] not_helpful_intercept must be below helpful_intercept")
    return NotesPolicy(
        name=str(d.get("name", "community_notes")),
        title=str(d.get("title", "")),
        summary=str(d.get("summary", "")).strip(),
        rating_values={k: float(d["ratings"][k]) for k in RATING_LABELS},
        intercept_lambda=float(flat["intercept_lambda"]),
        factor_lambda=float(flat["factor_lambda"]),
        penalty=flat["penalty"],
        max_iterations=int(flat["max_iterations"]),
        tolerance=float(flat["tolerance"]),
        init_scale=float(flat["init_scale"]),
        min_ratings=int(flat["min_ratings"]),
        min_minority_net_helpful=int(flat["min_minority_net_helpful"]),
        helpful_intercept=float(flat["helpful_intercept"]),
        helpful_max_abs_factor=float(flat["helpful_max_abs_factor"]),
        not_helpful_intercept=float(flat["not_helpful_intercept"]),
        not_helpful_factor_slope=float(flat["not_helpful_factor_slope"]),
    )


def load_policy(path: str | Path | None = None) -> NotesPolicy:
    """The notes policy at ``path``, or the packaged ``policies/moderation/notes.toml`` when ``path`` is None."""
    if path is None:
        text = resources.files("glassfeed").joinpath(_DEFAULT).read_text("utf-8")
        origin = _DEFAULT
    else:
        text, origin = Path(path).read_text("utf-8"), str(path)
    try:
        return policy_from_dict(tomllib.loads(text), origin)
    except tomllib.TOMLDecodeError as e:
        raise NotesPolicyError(f"{origin}: {e}") from None


def _solve_pairs(
    idx: NDArray[np.intp],
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    size: int,
    lam_a: float,
    lam_b: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """For every group g = 0..size-1, the ridge solution (a_g, b_g) of min Σ_{k: idx_k = g} (y_k - a - b x_k)²
    + lam_a a² + lam_b b² (a 2x2 system per group, solved in closed form for all groups at once)."""
    s0 = np.bincount(idx, minlength=size).astype(np.float64) + lam_a
    s1 = np.bincount(idx, weights=x, minlength=size)
    s2 = np.bincount(idx, weights=x * x, minlength=size) + lam_b
    b0 = np.bincount(idx, weights=y, minlength=size)
    b1 = np.bincount(idx, weights=y * x, minlength=size)
    det = s0 * s2 - s1 * s1  # > 0: the matrix is positive definite because lam_a, lam_b > 0
    return (b0 * s2 - s1 * b1) / det, (s0 * b1 - s1 * b0) / det


def _regauge(
    mu: float,
    iu: NDArray[np.float64],
    fu: NDArray[np.float64],
    i_n: NDArray[np.float64],
    fn: NDArray[np.float64],
    rated_u: NDArray[np.bool_],
    rated_n: NDArray[np.bool_],
    li: float,
    lf: float,
    scale_u: float,
    scale_n: float,
    scale_mu: float,
) -> float:
    """Move the parameters along the directions that leave every prediction unchanged, to the point where the
    penalty is smallest (exactly, in closed form); updates the arrays in place and returns the new ``mu``.

    The data term is flat along these directions (only the small penalties curve it), which is where plain
    alternating least squares crawls; solving them directly after each sweep takes it from about 1,800 sweeps
    to a few dozen on the 100,000-rating simulation. The moves: (1) shifting a constant between ``mu``, the rater
    intercepts and the note intercepts; (2) scaling the rater factors by s and the note factors by 1/s; (3)
    shifting the rater factors by d while the note intercepts absorb ``d * f_n`` (and the mirror image)."""
    m_n, m_u = float(np.count_nonzero(rated_n)), float(np.count_nonzero(rated_u))
    a_n, a_u, a_mu = li * scale_n, li * scale_u, li * scale_mu
    b_n, b_u = lf * scale_n, lf * scale_u
    # (1) mu + c1 + c2, i_n - c1, i_u - c2: minimise a_n Σ(i_n - c1)² + a_u Σ(i_u - c2)² + a_mu (mu + c1 + c2)²
    s_n, s_u = float(i_n[rated_n].sum()), float(iu[rated_u].sum())
    mat = np.array([[a_n * m_n + a_mu, a_mu], [a_mu, a_u * m_u + a_mu]])
    c1, c2 = np.linalg.solve(mat, [a_n * s_n - a_mu * mu, a_u * s_u - a_mu * mu])
    i_n[rated_n] -= c1
    iu[rated_u] -= c2
    mu += c1 + c2
    # (3) f_u - d, i_n + d f_n: minimise a_n Σ(i_n + d f_n)² + b_u Σ(f_u - d)²; and the mirror image
    d = (b_u * fu[rated_u].sum() - a_n * (i_n @ fn)) / (a_n * (fn @ fn) + b_u * m_u)
    fu[rated_u] -= d
    i_n += d * fn
    e = (b_n * fn[rated_n].sum() - a_u * (iu @ fu)) / (a_u * (fu @ fu) + b_n * m_n)
    fn[rated_n] -= e
    iu += e * fu
    # (2) f_u s, f_n / s: minimise b_u s² Σf_u² + b_n Σf_n² / s²
    su2, sn2 = float(fu @ fu), float(fn @ fn)
    if su2 > 0 and sn2 > 0:
        s = (b_n * sn2 / (b_u * su2)) ** 0.25
        fu *= s
        fn /= s
    return float(mu)


class BridgingModel:
    """The Community Notes bridging model, with scikit-learn conventions (``fit`` returns self, learned
    attributes end in ``_``).

    ``policy``: a :class:`NotesPolicy` (None: the packaged ``notes.toml``); ``seed``: draws the starting factors.

    Learned by :meth:`fit`: ``mu_`` (float), ``rater_intercept_``, ``rater_factor_`` (per rater code),
    ``note_intercept_``, ``note_factor_``, ``n_ratings_`` (per note code), ``minority_net_helpful_`` (per note:
    helpful minus not-helpful ratings on the factor side where that is smaller, floored at 0),
    ``note_net_helpful_by_side_`` (2 x notes: row 0 raters with factor < 0, row 1 >= 0), ``n_rater_ratings_``, ``loss_``
    (the penalised loss at the end), ``n_iter_``, ``converged_``, ``policy_`` (the policy used).
    """

    status_names: tuple[str, ...] = STATUS_NAMES

    def __init__(self, policy: NotesPolicy | None = None, *, seed: int = 0) -> None:
        self.policy = policy
        self.seed = seed

    # ---- fitting -------------------------------------------------------------------------------------------
    def fit(
        self,
        raters: ArrayLike,
        notes: ArrayLike,
        values: ArrayLike,
        *,
        n_raters: int | None = None,
        n_notes: int | None = None,
    ) -> BridgingModel:
        """Fit on ratings given as three equal-length arrays: rater codes and note codes (integers >= 0) and the
        rating values (see :meth:`NotesPolicy.values`). Codes index the learned arrays; ``n_raters`` / ``n_notes``
        size them (default: largest code + 1); a code without ratings keeps intercept and factor 0. One rating per
        (rater, note) pair is expected: de-duplicate (keep the latest) before calling."""
        policy = self.policy if self.policy is not None else load_policy()
        u = np.asarray(raters)
        n = np.asarray(notes)
        r = np.asarray(values, dtype=np.float64)
        if not (u.ndim == n.ndim == r.ndim == 1 and len(u) == len(n) == len(r)):
            raise ValueError("raters, notes and values must be 1-D arrays of the same length")
        if len(r) == 0:
            raise ValueError("no ratings to fit")
        if not (np.issubdtype(u.dtype, np.integer) and np.issubdtype(n.dtype, np.integer)):
            raise ValueError("raters and notes must be integer codes")
        if u.min() < 0 or n.min() < 0:
            raise ValueError("rater and note codes must be >= 0")
        if not np.isfinite(r).all():
            raise ValueError("rating values must be finite")
        u = u.astype(np.intp)
        n = n.astype(np.intp)
        n_u = int(u.max()) + 1 if n_raters is None else int(n_raters)
        n_n = int(n.max()) + 1 if n_notes is None else int(n_notes)
        if u.max() >= n_u or n.max() >= n_n:
            raise ValueError("a code is >= n_raters / n_notes")

        # penalty weights per parameter group: "sum" as published, "mean" as the scorer's code computes them
        cnt_u = np.bincount(u, minlength=n_u)
        cnt_n = np.bincount(n, minlength=n_n)
        big_n = float(len(r))
        if policy.penalty == "mean":
            scale_u = big_n / float(np.count_nonzero(cnt_u))
            scale_n = big_n / float(np.count_nonzero(cnt_n))
            scale_mu = big_n
        else:
            scale_u = scale_n = scale_mu = 1.0
        li, lf = policy.intercept_lambda, policy.factor_lambda

        rng = np.random.default_rng(self.seed)
        fu = rng.normal(0.0, policy.init_scale, n_u) * (cnt_u > 0)
        fn = rng.normal(0.0, policy.init_scale, n_n) * (cnt_n > 0)
        iu = np.zeros(n_u)
        i_n = np.zeros(n_n)
        mu = float(r.mean())

        def loss() -> float:
            e = r - mu - iu[u] - i_n[n] - fu[u] * fn[n]
            return float(
                e @ e
                + li * (scale_u * iu @ iu + scale_n * i_n @ i_n + scale_mu * mu * mu)
                + lf * (scale_u * fu @ fu + scale_n * fn @ fn)
            )

        prev = loss()
        converged = False
        it = 0
        for it in range(1, policy.max_iterations + 1):  # noqa: B007 (it is reported after the loop)
            i_n, fn = _solve_pairs(n, fu[u], r - mu - iu[u], n_n, li * scale_n, lf * scale_n)
            iu, fu = _solve_pairs(u, fn[n], r - mu - i_n[n], n_u, li * scale_u, lf * scale_u)
            mu = float((r - iu[u] - i_n[n] - fu[u] * fn[n]).sum() / (big_n + li * scale_mu))
            mu = _regauge(mu, iu, fu, i_n, fn, cnt_u > 0, cnt_n > 0, li, lf, scale_u, scale_n, scale_mu)
            cur = loss()
            if prev - cur <= policy.tolerance * max(prev, 1e-300):
                prev, converged = cur, True
                break
            prev = cur

        # identification: the factor's sign is arbitrary; make at least half of the raters' factors negative
        nonzero = fu[cnt_u > 0]
        nonzero = nonzero[nonzero != 0]
        if nonzero.size and np.count_nonzero(nonzero < 0) / nonzero.size < 0.5:
            fu, fn = -fu, -fn

        # per note and side of the factor (rater factor < 0 / >= 0): helpful minus not-helpful ratings; the
        # smaller side's count, floored at 0, is the note's "minority net helpful" (reference: note_ratings.py)
        side = (fu[u] >= 0).astype(np.intp)
        net = np.where(r == policy.rating_values["helpful"], 1, 0) - np.where(
            r == policy.rating_values["not_helpful"], 1, 0
        )
        by_side = np.stack([np.bincount(n[side == s], weights=net[side == s], minlength=n_n) for s in (0, 1)])
        self.note_net_helpful_by_side_ = by_side.astype(np.int64)  # row 0: negative factors, row 1: positive
        self.minority_net_helpful_ = np.clip(by_side.min(axis=0), 0, None).astype(np.int64)
        self.policy_ = policy
        self.mu_ = mu
        self.rater_intercept_ = iu
        self.rater_factor_ = fu
        self.note_intercept_ = i_n
        self.note_factor_ = fn
        self.n_ratings_ = cnt_n
        self.n_rater_ratings_ = cnt_u
        self.loss_ = prev
        self.n_iter_ = it
        self.converged_ = converged
        return self

    def predict(self, raters: ArrayLike, notes: ArrayLike) -> NDArray[np.float64]:
        """Modelled rating value for each (rater, note) code pair."""
        u = np.asarray(raters, dtype=np.intp)
        n = np.asarray(notes, dtype=np.intp)
        return (
            self.mu_ + self.rater_intercept_[u] + self.note_intercept_[n] + self.rater_factor_[u] * self.note_factor_[n]
        )

    # ---- decisions -----------------------------------------------------------------------------------------
    def status(self) -> NDArray[np.int8]:
        """One status code per note (index :data:`STATUS_NAMES`): shown ("currently rated helpful") when the
        intercept >= ``helpful_intercept``, |factor| <= ``helpful_max_abs_factor`` and on each side of the factor
        the helpful ratings outnumber the not-helpful ones by ``min_minority_net_helpful``; "not helpful" when the
        intercept <= ``not_helpful_intercept + not_helpful_factor_slope * |factor|``; otherwise, and always
        below ``min_ratings`` ratings, "needs more ratings"."""
        p = self.policy_
        i, af = self.note_intercept_, np.abs(self.note_factor_)
        enough = self.n_ratings_ >= p.min_ratings
        out = np.full(i.shape, NEEDS_MORE_RATINGS, dtype=np.int8)
        both_sides = self.minority_net_helpful_ >= p.min_minority_net_helpful
        out[enough & (i >= p.helpful_intercept) & (af <= p.helpful_max_abs_factor) & both_sides] = HELPFUL
        out[enough & (i <= p.not_helpful_intercept + p.not_helpful_factor_slope * af)] = NOT_HELPFUL
        return out

    def explain(self, note: int) -> str:
        """Why note ``note`` has its status, in plain language with the numbers that decided it."""
        p = self.policy_
        i, f, k = float(self.note_intercept_[note]), float(self.note_factor_[note]), int(self.n_ratings_[note])
        nums = f"intercept {i:.2f}, factor {f:.2f}, {k} ratings"
        if k < p.min_ratings:
            return f"Needs more ratings: {k} of the {p.min_ratings} ratings needed so far ({nums})."
        nh_line = p.not_helpful_intercept + p.not_helpful_factor_slope * abs(f)
        code = int(self.status()[note])
        if code == HELPFUL:
            return (
                f"Shown: rated helpful by people who usually disagree ({nums}; shown from intercept "
                f"{p.helpful_intercept:.2f} with |factor| at most {p.helpful_max_abs_factor:.2f})."
            )
        if code == NOT_HELPFUL:
            return (
                f"Rated not helpful: raters across perspectives found it unhelpful ({nums}; the not-helpful line "
                f"at this factor is {nh_line:.2f})."
            )
        side = "the larger group of raters (negative factors)" if f < 0 else "the smaller group (positive factors)"
        # (the sign convention makes at least half of the raters' factors negative; see the module docstring)
        if i >= p.helpful_intercept and abs(f) <= p.helpful_max_abs_factor:
            neg, pos = (int(x) for x in self.note_net_helpful_by_side_[:, note])
            return (
                f"Not shown, needs more ratings: needs helpful ratings from both sides ({nums}; helpful minus "
                f"not-helpful ratings: {neg} from raters with negative factors, {pos} from positive, "
                f"{p.min_minority_net_helpful} needed on each side)."
            )
        if abs(f) > p.helpful_max_abs_factor:
            return (
                f"Not shown, needs more ratings: its ratings follow the raters' viewpoint, favoured by {side} "
                f"({nums}; |factor| above {p.helpful_max_abs_factor:.2f}, and shown needs intercept "
                f"{p.helpful_intercept:.2f})."
            )
        return (
            f"Not shown, needs more ratings: not yet rated helpful across perspectives ({nums}; shown from "
            f"intercept {p.helpful_intercept:.2f}, not helpful at or below {nh_line:.2f})."
        )
