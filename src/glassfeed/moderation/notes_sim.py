"""A synthetic Community Notes population for checking the bridging model (docs/notes.md, "Reproduction").

Raters come in two camps: camp A (position +1) and camp B (position -1), each rater's position blurred by
Normal(0, ``position_noise``), with a personal leniency ~ Normal(0, ``leniency_sd``). Notes are of four kinds:

- ``camp_a_only``: helpful only to camp A (no quality of their own, strongly slanted towards A);
- ``camp_b_only``: the mirror image;
- ``cross_camp``: helpful to both camps (high quality, no slant);
- ``unhelpful``: unhelpful to both (low quality, no slant).

A rater's latent reaction to a note is ``quality + alignment * slant * position + leniency`` plus standard logistic
noise; above ``somewhat_cut`` + 1 it is rated helpful (1.0), above ``somewhat_cut`` somewhat helpful (0.5), else
not helpful (0.0). Every rater rates ``ratings_per_rater`` notes drawn uniformly without replacement. Everything
is drawn from one ``numpy.random.default_rng(seed)``, so a seed gives the same population.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from glassfeed.moderation.notes import STATUS_NAMES

KINDS: tuple[str, ...] = ("camp_a_only", "camp_b_only", "cross_camp", "unhelpful")
CAMP_A_ONLY, CAMP_B_ONLY, CROSS_CAMP, UNHELPFUL = range(4)
#: (quality, slant) of each kind, in KINDS order; slant +1 favours camp A, -1 camp B
_KIND_SHAPE = np.array([[0.0, 1.0], [0.0, -1.0], [2.5, 0.0], [-2.5, 0.0]])


@dataclass(frozen=True, slots=True)
class NotesPopulation:
    """Ratings (``raters``, ``notes``, ``values``: equal-length arrays) and the ground truth behind them."""

    raters: NDArray[np.int64]
    notes: NDArray[np.int64]
    values: NDArray[np.float64]
    note_kind: NDArray[np.int64]  # index into KINDS, per note code
    rater_camp: NDArray[np.int64]  # +1 camp A, -1 camp B, per rater code
    rater_position: NDArray[np.float64]


def simulate(
    seed: int,
    *,
    n_raters: int = 2000,
    notes_per_kind: int = 100,
    ratings_per_rater: int = 50,
    camp_a_share: float = 0.6,
    position_noise: float = 0.3,
    leniency_sd: float = 0.3,
    quality_sd: float = 0.3,
    alignment: float = 2.5,
    somewhat_cut: float = 0.0,
) -> NotesPopulation:
    """A seeded two-camp population; see the module docstring for the model. Defaults: 2,000 raters x 50
    ratings = 100,000 ratings on 400 notes (about 250 ratings a note)."""
    rng = np.random.default_rng(seed)
    n_notes = notes_per_kind * len(KINDS)
    if not 0 < ratings_per_rater <= n_notes:
        raise ValueError("ratings_per_rater must be between 1 and the number of notes")
    camp = np.where(rng.random(n_raters) < camp_a_share, 1, -1)
    position = camp + rng.normal(0.0, position_noise, n_raters)
    leniency = rng.normal(0.0, leniency_sd, n_raters)
    kind = np.repeat(np.arange(len(KINDS)), notes_per_kind)
    quality = _KIND_SHAPE[kind, 0] + rng.normal(0.0, quality_sd, n_notes)
    slant = _KIND_SHAPE[kind, 1]
    # each rater's subset: the first ratings_per_rater columns of an independent random permutation per rater
    chosen = np.argsort(rng.random((n_raters, n_notes)), axis=1)[:, :ratings_per_rater]
    raters = np.repeat(np.arange(n_raters), ratings_per_rater)
    notes = chosen.ravel()
    latent = quality[notes] + alignment * slant[notes] * position[raters] + leniency[raters]
    latent += rng.logistic(0.0, 1.0, latent.shape)
    values = np.where(latent > somewhat_cut + 1.0, 1.0, np.where(latent > somewhat_cut, 0.5, 0.0))
    return NotesPopulation(
        raters=raters.astype(np.int64),
        notes=notes.astype(np.int64),
        values=values,
        note_kind=kind.astype(np.int64),
        rater_camp=camp.astype(np.int64),
        rater_position=position,
    )


def status_by_kind(note_kind: NDArray[np.int64], status: NDArray[np.int8]) -> dict[str, dict[str, int]]:
    """How many notes of each kind got each status: ``{kind: {status_name: count, "total": count}}``."""
    out: dict[str, dict[str, int]] = {}
    for k, name in enumerate(KINDS):
        mask = note_kind == k
        row = {s: int(np.count_nonzero(status[mask] == code)) for code, s in enumerate(STATUS_NAMES)}
        row["total"] = int(np.count_nonzero(mask))
        out[name] = row
    return out


def shown_precision(note_kind: NDArray[np.int64], status: NDArray[np.int8]) -> float:
    """Share of shown notes ("currently rated helpful") that are ``cross_camp``; nan when none is shown."""
    shown = status == STATUS_NAMES.index("currently_rated_helpful")
    return float(np.mean(note_kind[shown] == CROSS_CAMP)) if shown.any() else float("nan")
