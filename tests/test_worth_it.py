"""The worth_it head: labelled by people's answers to "was this worth your time?" on the impressions of the page
they answered about, and left unlabelled (NaN) elsewhere, so it learns from answered pages only."""

from __future__ import annotations

import numpy as np

from glassfeed.domain import EventBatch, EventKind
from glassfeed.feed.features import FEATURES
from glassfeed.feed.heads import EngagementHeads
from glassfeed.feed.policy import HEADS, load_policies
from glassfeed.feed.train import _labels, _worth_it_keys, auc
from glassfeed.ingest import Ingestor
from glassfeed.store import open_store

W = HEADS.index("worth_it")


def test_answers_label_the_impressions_of_their_page(tmp_path):
    store = open_store(tmp_path / "w.db")
    ing = Ingestor(store, clock=lambda: 2e9)
    ing.create_users([{"id": "a"}, {"id": "b"}])
    ing.create_posts([{"id": f"p{i}", "author": "b", "text": "x", "created_at": 1e9} for i in range(4)])
    a = store.user_idx("a")
    p = [store.post_idx(f"p{i}") for i in range(4)]
    imp = int(EventKind.IMPRESSION)
    ing.ingest_batch(
        EventBatch.from_columns(
            kind=[imp] * 4 + [int(EventKind.WORTH_IT)] * 2,
            user=[a] * 6,
            ts=[1e9 + i for i in range(6)],
            post=[p[0], p[1], p[2], p[3], -1, -1],
            value=[np.nan] * 4 + [1.0, 0.0],
            request_id=np.array(["r1", "r1", "r2", "r3", "r1", "r2"], object),  # r3 was never answered
        )
    )
    n = 10
    answered, yes = _worth_it_keys(store, n)
    keys = np.array([a * n + x for x in p])
    assert set(answered.tolist()) == set(keys[:3].tolist()) and set(yes.tolist()) == set(keys[:2].tolist())
    Y = _labels(keys, {h: (yes if h == "worth_it" else np.zeros(0, np.int64)) for h in HEADS}, answered)
    assert Y[:3, W].tolist() == [1.0, 1.0, 0.0] and np.isnan(Y[3, W])
    assert not np.isnan(np.delete(Y, W, axis=1)).any()  # the other heads label every example


def test_the_head_learns_from_answered_examples_only():
    rng = np.random.default_rng(1)
    n = 6000
    X = rng.normal(size=(n, len(FEATURES)))
    Y = (rng.random((n, len(HEADS))) < 0.1).astype(np.float32)
    answered = rng.random(n) < 0.3
    p_yes = 1 / (1 + np.exp(-3 * X[:, 0]))  # answers follow the first feature
    Y[:, W] = np.where(answered, (rng.random(n) < p_yes).astype(np.float32), np.nan)
    heads = EngagementHeads(n_estimators=60).fit(X[:4000], Y[:4000], X[4000:5000], Y[4000:5000])
    assert "worth_it" in heads.boosters
    P = heads.predict(X[5000:])
    test = answered[5000:]
    assert auc(Y[5000:, W][test], P[test, W]) > 0.8
    assert 0.3 < heads.base_rate["worth_it"] < 0.7  # the share of yes among answers, not among all examples


def test_stated_preference_weighs_it_within_bounds():
    pol = load_policies()["stated_preference"]
    assert pol.weights["worth_it"] > 0 and pol.bounds["worth_it"] == (0.0, 5.0)
    assert "worth_it" not in load_policies()["engagement"].weights  # engagement ranking ignores what people say
