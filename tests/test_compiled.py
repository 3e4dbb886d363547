"""Compiled trees (feed/compiled.py): the heads' forests as native code give LightGBM's predictions to rounding and
the same pages; a head that does not compile stays on LightGBM; the HTTP server compiles when
``[serving] compiled_trees`` is on (the suite turns it off by default, tests/conftest.py)."""

from __future__ import annotations

import dataclasses
import logging

import lightgbm as lgb
import numpy as np
import pytest
from fastapi.testclient import TestClient

from glassfeed.feed.compiled import CompiledForest, compile_forests
from glassfeed.feed.features import FEATURES, pair_context, pair_features
from glassfeed.feed.heads import EngagementHeads
from glassfeed.feed.pipeline import candidates, rank
from glassfeed.feed.policy import HEADS

pytest.importorskip("lleaves", reason="lleaves (compiled trees) is not installed")

TOL = 1e-12  # the trees' sum in another order: measured differences are a few 1e-15


@pytest.fixture(scope="module")
def compiled(trained_feed) -> EngagementHeads:
    """A copy of the trained heads (the shared fixture is not touched) with its trees compiled, once per module:
    compiling takes about a second a head."""
    return dataclasses.replace(trained_feed[0].models.heads, compiled={}).compile_trees()


def _forest(seed: int = 0, trees: int = 40) -> tuple[lgb.Booster, np.ndarray]:
    """A small binary forest with missing values in its data, and query rows (float32, some missing)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2000, 8))
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(scale=0.5, size=2000) > 0).astype(int)
    X[rng.random(X.shape) < 0.1] = np.nan
    b = lgb.train({"objective": "binary", "num_leaves": 15, "verbose": -1}, lgb.Dataset(X, y), trees)
    Q = rng.normal(size=(300, 8)).astype(np.float32)
    Q[rng.random(Q.shape) < 0.1] = np.nan
    return b, Q


def _request_rows(svc, n_users: int = 20) -> np.ndarray:
    """Feature rows of real candidates (all of them, not only those the light ranker keeps), float32 as served."""
    st, now = svc.state, svc.now()
    users = np.array([u for u in range(1, st.n_users + 1) if st.graph.following(u)][:n_users])
    pol = svc.policy_for(0, "engagement")
    c = candidates(st, svc.models, users, pol, now)
    ctx = pair_context(st, users, c.row, c.post, c.extra)
    return pair_features(st, ctx, now, scorer=svc.models.scorer)


def test_compiled_forest_equals_lightgbm_raw_and_probability():
    """Both output kinds, on data with missing values, for a forest with enough depth to matter."""
    b, Q = _forest()
    raw, prob = CompiledForest(b, raw_score=True), CompiledForest(b, raw_score=False)
    assert np.abs(raw.predict(Q) - b.predict(Q, raw_score=True)).max() <= TOL
    assert np.abs(prob.predict(Q) - b.predict(Q)).max() <= TOL
    assert np.ptp(prob.predict(Q)) > 0.5  # the forest separates: a constant would not test much


def test_heads_predict_the_same_compiled(trained_feed, compiled):
    svc, _ = trained_feed
    heads = svc.models.heads
    X = _request_rows(svc)
    assert len(X) > 1000 and X.dtype == np.float32
    fast = compiled
    assert set(fast.compiled) == set(heads.boosters) and heads.boosters  # every trained head compiled
    assert not heads.compiled  # the shared fixture is untouched
    a, b = fast.predict(X), heads.predict(X)
    assert a.shape == (len(X), len(HEADS))
    assert np.abs(a - b).max() <= TOL
    assert np.abs(fast.predict(X, calibrated=False) - heads.predict(X, calibrated=False)).max() <= TOL


def test_heads_with_an_offset_predict_the_same_compiled(trained_feed):
    """Residual heads read the trees' raw score (compiled with raw_score=True) on top of their offset."""
    svc, _ = trained_feed
    X = _request_rows(svc, 10)
    name = next(iter(svc.models.heads.boosters))
    heads = dataclasses.replace(
        svc.models.heads, offsets={name: (0.7, -1.2, -2.0)}, offset_feature="collab_gap", compiled={}
    )
    fast = dataclasses.replace(heads, compiled=compile_forests({name: heads.boosters[name]}, {name: True}))
    h = HEADS.index(name)
    assert np.abs(fast.predict(X)[:, h] - heads.predict(X)[:, h]).max() <= TOL


def test_pages_are_the_same_with_compiled_trees(trained_feed, compiled):
    svc, _ = trained_feed
    st, now = svc.state, svc.now()
    models = dataclasses.replace(svc.models, heads=compiled)
    users = [u for u in range(1, st.n_users + 1) if len(st.graph.following(u)) >= 3][:30]
    served = 0
    for name in ("engagement", "stated_preference", "bridging"):
        for u in users:
            pol = svc.policy_for(u, name)
            a = rank(st, models, np.array([u]), pol, now, 30)
            b = rank(st, svc.models, np.array([u]), pol, now, 30)
            assert np.array_equal(a.post, b.post), (name, u)
            assert np.allclose(a.score, b.score, rtol=0, atol=1e-12) and np.allclose(a.probs, b.probs, atol=1e-12)
            served += len(a.post)
    assert served > 1000


def test_a_head_that_does_not_compile_stays_on_lightgbm(trained_feed, compiled, monkeypatch, caplog):
    good, _ = _forest(1, trees=10)
    bad, _ = _forest(2, trees=10)
    real = CompiledForest.__init__

    def init(self, booster, raw_score):
        if booster is bad:
            raise RuntimeError("no code for you")
        real(self, booster, raw_score)

    monkeypatch.setattr(CompiledForest, "__init__", init)
    with caplog.at_level(logging.WARNING, logger="glassfeed.feed.compiled"):
        out = compile_forests({"like": good, "dwell": bad}, {"like": False, "dwell": False})
    assert set(out) == {"like"}
    assert "head dwell stays on LightGBM" in caplog.text and "no code for you" in caplog.text
    # a set of heads with one left out predicts that one with LightGBM: the same numbers
    svc, _ = trained_feed
    heads, left_out = svc.models.heads, next(iter(compiled.compiled))
    partial = dataclasses.replace(heads, compiled={k: v for k, v in compiled.compiled.items() if k != left_out})
    X = _request_rows(svc, 5)
    assert np.abs(partial.predict(X) - heads.predict(X)).max() <= TOL


def test_the_server_compiles_when_asked(trained_feed, tmp_path):
    """``[serving] compiled_trees`` on: the app's heads are compiled, and a page equals the uncompiled one."""
    from feed_support import clone_service
    from glassfeed.api.app import create_app
    from glassfeed.settings import load_settings

    svc = clone_service(trained_feed[0], tmp_path)
    db, user = svc.store.path, svc.state.users.id_of(1)
    page = svc.feed(user, limit=20, log_impressions=False)
    svc.close()
    settings = load_settings(
        environ={}, store={"path": db}, api={"key": "k"}, serving={"clock": "data", "compiled_trees": True}
    )
    with TestClient(create_app(settings)) as c:
        heads = c.app.state.feed.models.heads
        assert heads.boosters and set(heads.compiled) == set(heads.boosters)
        r = c.get(f"/v1/users/{user}/feed", params={"limit": 20}, headers={"X-API-Key": "k"})
        assert r.status_code == 200
        assert [i["post"] for i in r.json()["items"]] == [i["post"] for i in page["items"]]
        metrics = c.get("/metrics").text
        assert f"glassfeed_heads_compiled {float(len(heads.boosters))}" in metrics
        assert c.get("/readyz").json()["checks"]["models"]["compiled_heads"] == sorted(heads.boosters)
    assert len(FEATURES) == heads.boosters[next(iter(heads.boosters))].num_feature()
