"""The suggestion service on a generated network (the shared trained feed, copied): the head trains on the newest
follows and then orders suggestions; batch ranking keeps every rule for every person; bridging keeps its share."""

from __future__ import annotations

import numpy as np

from glassfeed.suggest.generators import candidates
from glassfeed.suggest.model import FollowModel
from glassfeed.suggest.policy import load_model_settings
from glassfeed.suggest.service import SuggestionService


def test_head_trains_on_newest_follows_and_ranks_a_batch(fresh_feed):
    feed, _ = fresh_feed
    ms = load_model_settings()
    fast = ms.lightgbm.model_copy(update={"rounds": 20, "num_threads": 1})  # the shipped 300 rounds take ~10 s here
    svc = SuggestionService(feed, settings=ms.model_copy(update={"lightgbm": fast}))
    assert svc.model is None
    info = svc.retrain()
    assert info["positives"] > 0 and info["examples"] > info["positives"]
    assert FollowModel.load(svc.folder) is not None and svc.model is not None

    users = np.arange(1, min(feed.state.n_users, 60) + 1)
    growth, ranked_by = svc.rank(users, svc.policy("growth"), 10)
    assert ranked_by.startswith("learned")
    g = svc.graph()
    for u, items in zip(users.tolist(), growth):
        follows = set(feed.state.graph.following(u))
        hidden = set(feed.state.graph.hidden(u))
        got = [s.user for s in items]
        assert len(got) == len(set(got)) <= 10
        assert u not in got and not (set(got) & (follows | hidden))
        assert all(s.reasons and s.found_by for s in items)
        assert [s.score for s in items] == sorted((s.score for s in items), reverse=True)

    bridging, _ = svc.rank(users, svc.policy("bridging"), 10)
    depth = svc.policy("bridging").candidates.depth()
    for u, b in zip(users.tolist(), bridging):
        if g.community[u] < 0:
            continue
        c = candidates(g, np.array([u]), depth)
        available = int(((g.community[c.cand] >= 0) & (g.community[c.cand] != g.community[u])).sum())
        assert sum(s.cross_community for s in b) >= min(3, available)  # ceil(0.3 x 10) places kept
