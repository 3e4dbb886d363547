"""The learned notification heads: point-in-time features (future events move nothing), and on a log where opens
follow a known rule the open head beats the policy's per-kind prior on later pushes."""

from __future__ import annotations

import numpy as np
import pytest

from glassfeed.domain import EventBatch, EventKind
from glassfeed.ingest import Ingestor
from glassfeed.notifications.model import FEATURES, NotificationModel, examples, train_notification_model
from glassfeed.notifications.policy import load_notification_policies
from glassfeed.settings import load_settings
from glassfeed.store import NotificationRow, open_store

T0 = 1_780_000_000.0  # a Monday, 00:53 UTC
SETTINGS = load_settings().notifications
POLICY = load_notification_policies()["engagement_push"]


def _log(tmp_path, n_people=40, days=20, seed=0):
    """People get pushes at random hours; a reply is opened often by day and rarely at night, a like rarely."""
    rng = np.random.default_rng(seed)
    store = open_store(tmp_path / "log.db")
    ing = Ingestor(store, clock=lambda: T0 + (days + 1) * 86400)
    ing.create_users([{"id": f"u{i}", "created_at": T0 - 86400} for i in range(n_people)])
    rows, opens = [], []
    for d in range(days):
        for u in range(1, n_people + 1):
            for _ in range(3):
                t = T0 + d * 86400 + rng.uniform(0, 86400)
                kind = "reply" if rng.random() < 0.5 else "like"
                rows.append((u, t, kind))
    rows.sort(key=lambda r: r[1])
    with store.transaction() as tx:
        ids = store.upsert_notifications(
            tx,
            [
                NotificationRow(0, u, f"k{i}", kind, None, [1], [i], t, t, None, t, "immediate", 0.1, t)
                for i, (u, t, kind) in enumerate(rows)
            ],
        )
    for nid, (u, t, kind) in zip(ids, rows):
        hour = ((t - T0) % 86400) / 3600 + 0.9  # local hour in UTC, near enough
        p = (0.8 if 8 <= hour % 24 <= 21 else 0.1) if kind == "reply" else 0.08
        if rng.random() < p:
            opens.append((u, t + rng.uniform(60, 6 * 3600), nid))  # opened minutes to hours later
    opens.sort(key=lambda o: o[1])
    b = EventBatch.from_columns(
        kind=[int(EventKind.NOTIFICATION_OPEN)] * len(opens),
        user=[o[0] for o in opens],
        ts=[o[1] for o in opens],
        request_id=np.array([f"n{o[2]}" for o in opens], object),
    )
    ing.ingest_batch(b)
    return store, ing, dict.fromkeys(range(1, n_people + 1), POLICY)


def test_features_are_point_in_time(tmp_path):
    store, _, policy_of = _log(tmp_path, n_people=8, days=6)
    full = examples(store, T0 + 30 * 86400, policy_of, SETTINGS)
    assert len(full.ids) > 100 and full.X.shape[1] == len(FEATURES)
    assert full.X[:, FEATURES.index("prior_opens")].max() > 0  # history matters: a vacuous check would pass anyway
    for i in range(len(full.ids)):
        # the same example as seen by a training run that knew nothing after its push
        seen_then = examples(store, float(full.push_at[i]), policy_of, SETTINGS)
        j = int(np.flatnonzero(seen_then.ids == full.ids[i])[0])
        assert np.allclose(seen_then.X[j], full.X[i]), (i, FEATURES)


@pytest.mark.slow
def test_open_head_beats_the_prior_on_later_pushes(tmp_path):
    store, _, policy_of = _log(tmp_path)
    model, report = train_notification_model(store, SETTINGS, policy_of, until=T0 + 30 * 86400)
    head = report["heads"]["open"]
    assert report["examples"] == 40 * 20 * 3
    assert head["holdout_auc"] > 0.8 and head["holdout_auc"] > head["prior_auc"] + 0.05, report
    assert report["heads"]["off"]["holdout_auc"] is None  # nobody turned anything off: one class, no model
    folder = model.save(tmp_path / "models")
    again = NotificationModel.load(folder)
    assert again is not None and again.models_["off"] is None
    X = examples(store, T0 + 30 * 86400, policy_of, SETTINGS).X[:20]
    assert np.allclose(again.predict(X)["open"], model.predict(X)["open"])
