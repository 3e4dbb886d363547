"""The report's per-person outcomes from an event log with known answers: each metric over the window from the
person's exposure, its pre-exposure covariate, time in the app as the usage budget counts it, and retention only
for people exposed long enough ago."""

from __future__ import annotations

import numpy as np
import pytest

from glassfeed.domain import EventBatch, EventKind
from glassfeed.experiments.service import person_outcomes
from glassfeed.settings import packaged_settings
from glassfeed.state.usage import Usage

K = EventKind
DAY = 86400.0
T0 = 1_800_000_000.0


def batch(rows: list[tuple[EventKind, int, int, float, float]]) -> EventBatch:
    """(kind, user, post, ts, value) rows, in time order."""
    rows = sorted(rows, key=lambda r: r[3])
    return EventBatch.from_columns(
        kind=[int(r[0]) for r in rows],
        user=[r[1] for r in rows],
        post=[r[2] for r in rows],
        ts=[r[3] for r in rows],
        value=[r[4] for r in rows],
    )


def test_outcomes_per_person_with_known_answers() -> None:
    s, w = packaged_settings().experiments, packaged_settings().wellbeing
    users = np.array([1, 2, 3])
    t0 = np.array([T0, T0, T0 + 9 * DAY])  # 1 and 2 exposed 10 days before "now", 3 one day before
    now = T0 + 10 * DAY
    rows = []
    # person 1: before exposure 4 impressions (1 liked); after: a page of 4 at t0 (2 liked, one divisive post seen,
    # one see-less), a page 5 minutes later, then a new session two days later (returned); a yes and a no answer
    rows += [(K.IMPRESSION, 1, p, T0 - DAY, np.nan) for p in (1, 2, 3, 4)] + [(K.LIKE, 1, 1, T0 - DAY + 1, np.nan)]
    rows += [(K.IMPRESSION, 1, p, T0, np.nan) for p in (1, 2, 3, 9)]
    rows += [(K.LIKE, 1, 2, T0 + 10, np.nan), (K.REPOST, 1, 3, T0 + 11, np.nan), (K.SEE_LESS, 1, 9, T0 + 12, np.nan)]
    rows += [(K.IMPRESSION, 1, 5, T0 + 300, np.nan), (K.IMPRESSION, 1, 6, T0 + 2 * DAY, np.nan)]
    rows += [(K.WORTH_IT, 1, -1, T0 + 20, 1.0), (K.WORTH_IT, 1, -1, T0 + 2 * DAY + 5, 0.0)]
    # person 2: one page at exposure, nothing after (did not return), no history
    rows += [(K.IMPRESSION, 2, p, T0, np.nan) for p in (1, 2)] + [(K.REPORT, 2, 2, T0 + 3, np.nan)]
    # person 3: exposed a day ago; a like after the window's end does not count
    rows += [(K.IMPRESSION, 3, 1, T0 + 9 * DAY, np.nan), (K.LIKE, 3, 1, now + 50, np.nan)]
    # someone not exposed
    rows += [(K.IMPRESSION, 4, 1, T0, np.nan)]
    ev = batch(rows)
    divisive = ev.post == 9
    out = person_outcomes(users, t0, now, now, ev, divisive, s, w)

    assert out["impressions"].y.tolist() == [6, 2, 1]
    assert out["engagement"].y.tolist() == pytest.approx([2 / 6, 0, 0])
    assert out["engagement"].x.tolist()[0] == pytest.approx(1 / 4) and out["engagement"].x_ok.tolist() == [1, 0, 0]
    assert out["divisive_share"].y.tolist() == pytest.approx([1 / 6, 0, 0])
    assert out["see_less_rate"].y.tolist() == pytest.approx([1 / 6, 0, 0])
    assert out["report_rate"].y.tolist() == pytest.approx([0, 1 / 2, 0])
    assert out["worth_it"].y[0] == 0.5 and out["worth_it"].ok.tolist() == [True, False, False]
    assert out["sessions"].y.tolist() == [2, 1, 1]
    usage = Usage(keep_s=30 * DAY)  # the wellbeing usage's own count of the same pages
    usage.apply(np.array([1, 1, 1]), np.array([T0, T0 + 300, T0 + 2 * DAY]))
    secs = usage.seconds(1, T0, now, w.session_gap_min * 60, w.page_min * 60)
    assert out["time_minutes"].y[0] == pytest.approx(secs / 60) == pytest.approx(5 + 2 * w.page_min)
    assert out["retention"].y.tolist() == [1, 0, 0]
    assert out["retention"].ok.tolist() == [True, True, False]  # person 3: exposed less than 7 days ago
    assert out["retention"].x.tolist() == [1, 0, 0]  # active in the pre-period


def test_the_window_ends_at_the_stop() -> None:
    s, w = packaged_settings().experiments, packaged_settings().wellbeing
    ev = batch([(K.IMPRESSION, 1, 1, T0, np.nan), (K.IMPRESSION, 1, 2, T0 + DAY, np.nan)])
    out = person_outcomes(np.array([1]), np.array([T0]), T0 + 100, T0 + 2 * DAY, ev, np.zeros(2, bool), s, w)
    assert out["impressions"].y.tolist() == [1]
    assert out["retention"].y.tolist() == [1]  # returning is measured over its own 7 days, not the arm's window
