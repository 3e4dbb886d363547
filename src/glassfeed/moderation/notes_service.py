"""Community notes in the lever: the ledger's notes and ratings -> the bridging model -> the notes each post shows.

The model (``glassfeed.moderation.notes``) is refit on every rating the log holds whenever notes or ratings
arrived since the last fit (``ModerationService.refresh_notes``, run by the tail loop and when someone reads a
post's notes). Raters and notes get dense codes in first-seen order; one rating per (rater, note), the newest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from glassfeed.moderation.notes import HELPFUL, STATUS_NAMES, BridgingModel, load_policy
from glassfeed.moderation.records import Ledger


def fit_notes(
    ledger: Ledger, post_id: Callable[[int], str | None]
) -> tuple[tuple[BridgingModel, dict[int, int]] | None, dict[int, list[dict[str, Any]]]]:
    """Fit the bridging model on every rating; returns ((model, note seq -> code) or None when nothing is rated,
    post idx -> the notes shown on it as the feed shows them)."""
    if not ledger.ratings:
        return None, {}
    policy = load_policy()
    note_code = {seq: i for i, seq in enumerate(sorted(ledger.notes))}
    rater_code: dict[str, int] = {}
    raters, notes, answers = [], [], []
    for (rater, note), answer in ledger.ratings.items():
        if note in note_code:
            raters.append(rater_code.setdefault(rater, len(rater_code)))
            notes.append(note_code[note])
            answers.append(answer)
    model = BridgingModel(policy).fit(
        np.asarray(raters, np.int64), np.asarray(notes, np.int64), policy.values(answers), n_notes=len(note_code)
    )
    status = model.status()
    shown: dict[int, list[dict[str, Any]]] = {}
    for seq, code in note_code.items():
        if status[code] == HELPFUL:
            rec = ledger.notes[seq]
            assert rec.post is not None
            shown.setdefault(rec.post, []).append(
                {"note": seq, "text": rec.body["text"], "post": post_id(rec.post), "why": model.explain(code)}
            )
    return (model, note_code), shown


def note_views(ledger: Ledger, fitted: tuple[BridgingModel, dict[int, int]] | None, post: int) -> list[dict[str, Any]]:
    """Every note on ``post`` with its status and why (notes not yet rated need more ratings)."""
    out = []
    for seq, rec in sorted(ledger.notes.items()):
        if rec.post != post:
            continue
        n = sum(1 for (_, note) in ledger.ratings if note == seq)
        view: dict[str, Any] = {"note": seq, "text": rec.body["text"], "ratings": n}
        if fitted is not None and seq in fitted[1]:
            model, codes = fitted
            code = codes[seq]
            view |= {
                "status": STATUS_NAMES[int(model.status()[code])],
                "intercept": float(model.note_intercept_[code]),
                "factor": float(model.note_factor_[code]),
                "why": model.explain(code),
            }
        else:
            view |= {"status": STATUS_NAMES[0], "why": "no ratings yet"}
        out.append(view)
    return out
