"""The notification simulator: the same stream under each policy through the real lever; its measurable promises
(batched never pushes in sleep hours, a digest is one push, minimal pushes only replies and mentions) and a
deterministic result for a seed."""

from __future__ import annotations

import numpy as np

from glassfeed.notifications.candidates import aggregate
from glassfeed.notifications.policy import KIND_CODE, load_notification_policies
from glassfeed.notifications.schedule import PUSH, schedule
from glassfeed.sim.generate import generate_network
from glassfeed.sim.notify import StreamParams, _first_seen, _stream, simulate_notifications


def test_policies_differ_as_they_promise():
    r = simulate_notifications(users=200, days=5, seed=3)
    out = {o["policy"]: o for o in r["outcomes"]}
    assert r["stream"]["candidates"] > 200 * 5  # a social app's volume, more than one notification a day
    assert out["engagement_push"]["pushes_in_sleep_per_day"] > 0
    assert out["batched"]["pushes_in_sleep_per_day"] == 0 and out["minimal"]["pushes_in_sleep_per_day"] == 0
    assert out["batched"]["pushes_per_day"] < out["engagement_push"]["pushes_per_day"]
    for o in out.values():
        total = o["worth_minutes_per_day"] + o["regretted_minutes_per_day"]
        assert abs(total - o["minutes_per_day"]) < 1e-9
        assert 0 <= o["opted_out_share"] <= 1 and o["sessions_per_day"] >= o["notification_sessions_per_day"]
    assert simulate_notifications(users=200, days=5, seed=3) == r  # deterministic for a seed


def test_minimal_pushes_only_replies_and_mentions():
    net = generate_network(150, 4, 5)
    cands, _ = _stream(net, StreamParams(), 5)
    pol = load_notification_policies()["minimal"]
    n = _first_seen(aggregate(cands, pol.aggregate_window_h))
    s = schedule(n, dict.fromkeys(range(1, 151), pol), np.full(len(n), 0.5))
    pushed = set(n.kind[s.decision == PUSH].tolist())
    assert pushed and pushed <= {KIND_CODE["reply"], KIND_CODE["mention"]}
