"""``glassfeed audit``'s intervals and small-sample flags on constructed logs with known effects: a cluster bootstrap
over viewers (seeded), cells with too few viewers flagged, comparisons that include no effect flagged, and only the
rest stated as findings."""

from __future__ import annotations

import numpy as np
import pytest

from glassfeed.audit import bootstrap as B
from glassfeed.audit.logs import AuditReport, LogData, audit
from glassfeed.settings import AuditSettings, SettingsError, load_settings, packaged_settings

N_CREATORS = 10  # users 0-4 (community 0) write calm posts, users 5-9 (community 1) divisive ones
N_POSTS = 40  # post j: by user j % 10, divisive (0.9) when its author is in community 1, else 0.1; topic j % 4


def _settings(**changes: object) -> AuditSettings:
    return packaged_settings().replace(audit={"bootstrap_reps": 400, **changes}).audit


def _log(arms: list[tuple[str, int, int, float, float]], seed: int = 7) -> LogData:
    """A pooled log of disjoint arms (as the simulator's one store per policy): each arm is (policy, viewers,
    impressions per viewer, P(divisive post), P(engaged)); every viewer is a new user."""
    rng = np.random.default_rng(seed)
    author = np.arange(N_POSTS) % N_CREATORS
    divisive = author >= 5
    users, posts, pol, keys = [], [], [], []
    next_user = N_CREATORS
    for k, (_, viewers, per, p_div, p_eng) in enumerate(arms):
        u = np.repeat(np.arange(next_user, next_user + viewers), per)
        next_user += viewers
        pick_div = rng.random(len(u)) < p_div
        p = np.where(
            pick_div, rng.choice(np.flatnonzero(divisive), len(u)), rng.choice(np.flatnonzero(~divisive), len(u))
        )
        users.append(u)
        posts.append(p)
        pol.append(np.full(len(u), k))
        eng = rng.random(len(u)) < p_eng
        keys.append(u[eng] * N_POSTS + p[eng])
    n_users = next_user
    community = np.full(n_users, -1)
    community[:N_CREATORS] = (np.arange(N_CREATORS) >= 5).astype(int)
    return LogData(
        imp_user=np.concatenate(users),
        imp_post=np.concatenate(posts),
        imp_policy=np.concatenate(pol),
        policies=[a[0] for a in arms],
        engaged_keys=np.unique(np.concatenate(keys)),
        post_author=author,
        post_div=np.where(divisive, 0.9, 0.1),
        post_topic=np.arange(N_POSTS) % 4,
        user_community=community,
        n_users=n_users,
        n_posts=N_POSTS,
    )


def _comparison(rep: AuditReport, policy: str, metric: str) -> dict:
    (c,) = [c for c in rep.comparisons if c["policy"] == policy and c["metric"] == metric]
    return c


ARMS = [
    ("chronological", 300, 10, 0.2, 0.10),
    ("engagement", 300, 10, 0.6, 0.10),  # more divisive, same engagement per impression
    ("bridging", 6, 10, 0.1, 0.30),  # 6 viewers: too few to tell anything
]


def test_a_cell_with_six_viewers_is_flagged_and_never_a_finding():
    rep = audit(_log(ARMS), _settings())
    assert rep.flags["bridging"] == "too few viewers to tell (6 viewers; at least 30 needed)"
    assert rep.flags["engagement"] is None and rep.flags["chronological"] is None
    lo, hi = rep.intervals["bridging"]["engagement_rate"]
    assert lo is not None and hi is not None and lo <= rep.rows["bridging"]["engagement_rate"] <= hi  # still shown
    mine = [c for c in rep.comparisons if c["policy"] == "bridging"]
    assert mine and all(c["flag"] == "too few viewers to tell (bridging: 6 viewers; at least 30 needed)" for c in mine)
    assert not any(f.startswith("bridging") for f in rep.findings)
    # enough impressions matter too: 300 viewers x 10 = 3,000 impressions, below a minimum of 5,000
    few = audit(_log(ARMS), _settings(min_impressions=5000))
    assert few.flags["engagement"] == "too few impressions to tell (3,000 impressions; at least 5,000 needed)"
    assert few.findings == []


def test_a_real_difference_with_many_viewers_is_a_finding_with_an_interval_that_excludes_no_effect():
    rep = audit(_log(ARMS), _settings())
    d = _comparison(rep, "engagement", "divisive_share")
    assert d["flag"] is None and 0 < d["low"] < d["estimate"] < d["high"]
    assert d["estimate"] == pytest.approx(
        rep.rows["engagement"]["divisive_share"] - rep.rows["chronological"]["divisive_share"]
    )
    assert 0.3 < d["estimate"] < 0.5  # 0.6 vs 0.2 by construction
    assert d["statement"] in rep.findings and f"{d['low']:+.3f} to {d['high']:+.3f}" in d["statement"]
    # community 1 writes the divisive posts: more engagement viewers reach it than chronological ones
    a = _comparison(rep, "engagement", "community 1")
    assert a["kind"] == "amplification" and a["flag"] is None and a["low"] > 0
    assert a["estimate"] == pytest.approx(rep.amplification["engagement"]["community 1"])
    assert "reach" in a["statement"] and "more viewers than under chronological" in a["statement"]
    # each per-policy number sits inside its own interval
    for name in ("engagement", "chronological"):
        for metric, (lo, hi) in rep.intervals[name].items():
            assert lo <= rep.rows[name][metric] <= hi, (name, metric)


def test_a_null_difference_is_flagged_as_not_distinguishable():
    rep = audit(_log(ARMS), _settings())
    e = _comparison(rep, "engagement", "engagement_rate")  # both arms engage with 10% of impressions
    assert e["low"] < 0 < e["high"]
    assert e["flag"] == "not distinguishable from no effect (the interval includes 0)"
    assert "statement" not in e and not any("engagement per impression" in f for f in rep.findings)
    # every finding is an unflagged comparison, and every unflagged comparison is a finding
    assert rep.findings == [c["statement"] for c in rep.comparisons if c["flag"] is None]


def test_the_bootstrap_is_deterministic_under_its_seed_and_batch_size():
    log = _log(ARMS)
    one = audit(log, _settings(seed=3))
    assert audit(log, _settings(seed=3)) == one
    batched = audit(log, _settings(seed=3, batch_values=1))  # one replicate per batch: the same draws
    for name, metrics in one.intervals.items():
        for metric, bounds in metrics.items():
            assert batched.intervals[name][metric] == pytest.approx(bounds, rel=1e-12), (name, metric)
    assert audit(log, _settings(seed=4)).intervals != one.intervals
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    strata = np.array([0, 0, 0, 1, 1])
    w = B.bootstrap_weights(strata, 50, rng_a)
    np.testing.assert_array_equal(
        w, np.vstack([B.bootstrap_weights(strata, 20, rng_b), B.bootstrap_weights(strata, 30, rng_b)])
    )
    np.testing.assert_array_equal(w[:, :3].sum(axis=1), 3)  # each stratum keeps its size in every replicate
    np.testing.assert_array_equal(w[:, 3:].sum(axis=1), 2)


def test_clustering_by_viewer_widens_the_interval_when_one_viewer_dominates():
    """50 viewers; one of them has 500 impressions and engages with all of them, the rest see 10 each and engage
    with 1 in 10. The rate is mostly that one person: resampling viewers sees that, resampling impressions does not."""
    rng = np.random.default_rng(0)
    per_viewer = np.r_[500, np.full(49, 10)]
    engaged = np.r_[500, rng.binomial(10, 0.1, 49)].astype(float)
    cfg = _settings()
    viewers = np.zeros(50, np.int64)  # one stratum
    w = B.bootstrap_weights(viewers, cfg.bootstrap_reps, np.random.default_rng(cfg.seed))
    lo_c, hi_c, _ = B.percentile_interval(B.weighted_ratio(w, engaged, per_viewer), cfg.confidence)
    # naive: every impression its own unit
    hit = np.concatenate([np.r_[np.ones(int(e)), np.zeros(int(n - e))] for e, n in zip(engaged, per_viewer)])
    w_naive = B.bootstrap_weights(np.zeros(len(hit), np.int64), cfg.bootstrap_reps, np.random.default_rng(cfg.seed))
    lo_n, hi_n, _ = B.percentile_interval(B.weighted_ratio(w_naive, hit, np.ones(len(hit))), cfg.confidence)
    point = engaged.sum() / per_viewer.sum()
    assert lo_c <= point <= hi_c and lo_n <= point <= hi_n
    assert hi_c - lo_c > 3 * (hi_n - lo_n)


def test_a_viewer_under_two_policies_keeps_one_weight_in_both():
    """Strata are the sets of policies seen: a comparison within the same people keeps their correlation, so a
    policy against itself (every viewer under both tags, identical impressions) has a difference of exactly 0 in
    every replicate."""
    log = _log([("chronological", 60, 10, 0.3, 0.2)])
    twice = LogData(
        imp_user=np.r_[log.imp_user, log.imp_user],
        imp_post=np.r_[log.imp_post, log.imp_post],
        imp_policy=np.r_[log.imp_policy, np.ones_like(log.imp_policy)],
        policies=["chronological", "copy"],
        engaged_keys=log.engaged_keys,
        post_author=log.post_author,
        post_div=log.post_div,
        post_topic=log.post_topic,
        user_community=log.user_community,
        n_users=log.n_users,
        n_posts=log.n_posts,
    )
    rep = audit(twice, _settings())
    d = _comparison(rep, "copy", "divisive_share")
    assert d["estimate"] == d["low"] == d["high"] == 0.0 and d["flag"].startswith("not distinguishable")
    assert rep.rows["copy"]["users_in_both_arms"] == 60


def test_audit_settings_are_a_validated_section():
    s = load_settings(environ={})
    assert (s.audit.min_viewers, s.audit.confidence, s.audit.bootstrap_reps) == (30, 0.95, 1000)
    assert load_settings(environ={"GLASSFEED_AUDIT__MIN_VIEWERS": "5"}).audit.min_viewers == 5
    with pytest.raises(SettingsError, match=r"GLASSFEED_AUDIT__CONFIDENCE: \[audit\] confidence"):
        load_settings(environ={"GLASSFEED_AUDIT__CONFIDENCE": "1.5"})


def test_percentile_interval_keeps_infinite_bounds_and_counts_undefined_replicates():
    lo, hi, undefined = B.percentile_interval(np.r_[np.linspace(0.1, 1, 90), np.full(10, np.inf), np.nan], 0.9)
    assert 0.1 < lo < 0.2 and hi == np.inf and undefined == 1
    # replicates that all run above the estimate (as a Gini's do): the interval keeps their spread around it
    lo, hi, _ = B.percentile_interval(np.linspace(0.62, 0.64, 101), 0.9, estimate=0.615)
    assert lo < 0.615 < hi and hi - lo == pytest.approx(0.018, abs=1e-3)
    rep = AuditReport(intervals={"x": {"m": [0.1, float("inf")]}})
    assert rep.to_json()["intervals"] == {"x": {"m": [0.1, None]}}  # strict JSON


def test_weighted_reach_amplification_is_the_amplification_of_the_resampled_users():
    """A weight of 2 counts a user twice: the same ratio as ``amplification_ratio`` on a log with that user copied."""
    from glassfeed.audit import metrics as M

    seen_t = np.array([[1, 0], [1, 1], [0, 0]], bool)
    seen_c = np.array([[0, 1], [1, 0]], bool)
    w_t, w_c = np.array([[2.0, 1.0, 0.0]]), np.array([[1.0, 3.0]])
    got = M.reach_amplification(seen_t, seen_c, w_t, w_c)
    # users 0, 0', 1 treated; 3, 4, 4', 4'' control; group 0 and group 1 exposures as above
    users = np.array([0, 1, 2, 2, 3, 4, 5, 6])
    groups = np.array([0, 0, 0, 1, 1, 0, 0, 0])
    treated = np.array([True, True, True, False, False, False, False])
    np.testing.assert_allclose(got[0], M.amplification_ratio(users, groups, treated, n_groups=2))
    np.testing.assert_allclose(got[0], [(3 / 3) / (3 / 4) - 1, (1 / 3) / (1 / 4) - 1])
