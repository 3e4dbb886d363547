"""Ads in the simulated feeds (``glassfeed simulate-ads``, sim/ads.py): the cascade with ads against the plain one,
the ad-load spacing, and on a small society the real lever at three ad loads: no ads at 0%, more ads and revenue
as the load rises, shorter sessions, no page breaking the load, clicks billed through the lever, caps and
targeting kept."""

from __future__ import annotations

import itertools
import json
from collections import Counter

import numpy as np
import pytest
from typer.testing import CliRunner

from glassfeed.ads.placement import ad_places
from glassfeed.cli import app
from glassfeed.feed.policy import AdLoad
from glassfeed.sim.ads import (
    AD,
    AdArm,
    AdBehaviour,
    AdWorld,
    arm_load,
    arms_for,
    load_violations,
    make_market,
    respond_with_ads,
    run_ad_simulation,
)
from glassfeed.sim.loop import SimConfig, prepare_base, run_simulation
from glassfeed.sim.population import Population, PostTable, respond
from glassfeed.store import open_store

LOADS = (0.0, 0.1, 0.25)


# ---------------------------------------------------------------------- the cascade
def _society(n_users: int = 40, n_posts: int = 200, seed: int = 3) -> tuple[Population, PostTable]:
    rng = np.random.default_rng(seed)
    pop = Population.sample(n_users, rng)
    posts = PostTable.from_arrays(
        rng.integers(0, n_users, n_posts).astype(np.int32),
        np.zeros(n_posts),
        rng.integers(0, len(pop.topics), n_posts).astype(np.int16),
        rng.random(n_posts).astype(np.float32),
        (0.5 * rng.random(n_posts)).astype(np.float32),
    )
    return pop, posts


def _pages(n: int, L: int, n_posts: int, seed: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pages = np.stack([rng.choice(n_posts, L, replace=False) for _ in range(n)])
    pages[: n // 4, L - 3 :] = -1  # some short pages
    return pages


def test_with_no_ad_on_the_pages_the_cascade_is_respond_draw_for_draw():
    pop_a, posts = _society()
    pop_b, _ = _society()
    users = np.arange(0, 40, 2)
    pages = _pages(len(users), 12, posts.n)
    opos = np.where(pages >= 0, np.arange(12)[None, :], -1)
    plain = respond(pages, users, 1000.0, np.random.default_rng(9), pop_a, posts)
    zeros = np.zeros(pages.shape)
    res, out = respond_with_ads(
        pages, opos, 12, zeros.astype(np.int64), zeros, zeros, users, 1000.0, np.random.default_rng(9),
        np.random.default_rng(10), pop_b, posts,
    )  # fmt: skip
    for col in ("kind", "user", "post", "target_user", "ts", "value", "position"):
        assert np.array_equal(getattr(res.events, col), getattr(plain.events, col), equal_nan=True), col
    for name in ("time_spent", "n_seen", "satisfaction", "regret", "examined", "clicked"):
        assert np.array_equal(getattr(res, name), getattr(plain, name), equal_nan=True), name
    assert np.array_equal(pop_a.fatigue, pop_b.fatigue)
    assert not out.seen.any() and not out.clicked.any()


def _with_ads(pages: np.ndarray, places: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's organic page with ads inserted at ``places`` (places on the merged page)."""
    s, L = pages.shape
    W = L + len(places)
    merged = np.full((s, W), -1, np.int64)
    opos = np.full((s, W), -1, np.int64)
    organic = [m for m in range(W) if m not in places]
    merged[:, places] = AD
    merged[:, organic] = pages
    opos[:, organic] = np.where(pages >= 0, np.arange(L)[None, :], -1)
    return merged, opos


def test_irrelevant_ads_take_time_and_their_annoyance_ends_sessions_sooner():
    pop, posts = _society()
    users = np.arange(40)
    pages = _pages(40, 16, posts.n, seed=5)
    merged, opos = _with_ads(pages, [3, 7, 11])
    # every ad on each person's least interesting topic: irrelevance near 1
    worst = np.argmin(pop.interests, axis=1)
    topic = np.broadcast_to(worst[:, None], merged.shape).astype(np.int64)
    q = np.full(merged.shape, 0.6)
    d = np.full(merged.shape, 0.05)

    def run(ap: AdBehaviour):
        p = Population(**{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(pop).items()})
        return respond_with_ads(
            merged, opos, 16, topic, q, d, users, 1000.0, np.random.default_rng(1), np.random.default_rng(2), p, posts,
            ads=ap,
        )  # fmt: skip

    calm, _ = run(AdBehaviour(annoyance_hazard=0.0))
    annoyed, out = run(AdBehaviour(annoyance_hazard=0.3))
    # the same draws, a higher quit hazard after each scanned ad: never more scanned, and fewer in all
    assert (annoyed.n_seen <= calm.n_seen).all() and annoyed.n_seen.sum() < calm.n_seen.sum()
    assert annoyed.time_spent.sum() < calm.time_spent.sum()
    assert out.seen.any() and (out.irrelevance[out.seen] > 0.5).all()
    # an ad is regretted more than a post of the same quality: regret over everything scanned rises with ads
    no_ads, _ = respond_with_ads(
        np.where(merged == AD, -1, merged), opos, 16, topic, q, d, users, 1000.0, np.random.default_rng(1),
        np.random.default_rng(2), pop, posts,
    )  # fmt: skip
    assert np.nanmean(annoyed.regret) > np.nanmean(no_ads.regret)


def test_clicks_follow_interest_and_hides_irrelevance():
    ap = AdBehaviour()
    m = np.array([0.0, 0.5, 1.0])
    assert np.all(np.diff(ap.click_prob(m)) > 0) and np.all(np.diff(ap.hide_prob(m)) < 0)


# ---------------------------------------------------------------------- the ad load
def test_each_load_spaces_its_ads_evenly_and_keeps_its_share():
    base = AdLoad(first_position=4, min_gap=6, max_share=0.1)
    counts = []
    for share in (0.0, 0.05, 0.1, 0.15, 0.2, 0.25):
        load = arm_load(base, share)
        places = ad_places(20, load, 100)
        counts.append(len(places))
        is_ad = np.zeros((1, 20 + len(places)), bool)
        is_ad[0, places] = True
        assert load_violations(is_ad, ~is_ad, load) == 0
        assert len(places) / (20 + len(places)) <= share + 1e-9
    assert counts == [0, 1, 2, 3, 5, 6]
    assert arm_load(base, 0.25, min_gap=6).min_gap == 6  # a fixed gap on request (caps a 20-post page at 3)


def test_the_load_checker_finds_each_broken_rule():
    load = AdLoad(first_position=3, min_gap=2, max_share=0.25)

    def bad(row: str) -> int:  # "A" an ad, "p" a post
        is_ad = np.array([[c == "A" for c in row]])
        return load_violations(is_ad, ~is_ad, load)

    assert bad("ppApppApp") == 0
    assert bad("pAppppApp") == 1  # above the first position
    assert bad("ppAppAppp") == 0
    assert bad("ppApAppp") == 1  # a gap of one post
    assert bad("ppAppApA") == 1  # no post below the last ad (and too many)
    assert bad("ppAppAppApp") == 1  # 3 of 11 places > 25%


# ---------------------------------------------------------------------- the real lever, small society
@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """engagement at 0%, 10% and 25% ad load (12 two-hour steps, 150 people, 3 sessions a day), the pages each
    world served recorded, and the plain engagement world on the same base."""
    folder = tmp_path_factory.mktemp("simads")
    cfg = SimConfig(
        users=150, steps=12, step_hours=2.0, active_prob=0.25, seed=11, history_days=2, retrain_every=0,
        train_rows=20_000, homog_every=0, policies=("engagement",),
    )  # fmt: skip
    base = prepare_base(cfg, folder / "base")
    plain = run_simulation(cfg, folder / "plain", base=base)
    served: dict[str, list[tuple[np.ndarray, AdLoad]]] = {}
    place = AdWorld._place_ads

    def recording(self, active, pages, t_sess, k):
        got = place(self, active, pages, t_sess, k)
        served.setdefault(self.arm.name, []).append((got[0], self.load))
        return got

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(AdWorld, "_place_ads", recording)
        res = run_ad_simulation(cfg, arms_for(["engagement"], LOADS), folder / "ads", base=base)
    return cfg, base, plain, res, served, folder / "ads"


def _arm(res, load):
    return res.final[AdArm("engagement", load).name]


def test_no_ad_load_no_ads_no_revenue_and_the_plain_world(sim):
    cfg, _, plain, res, served, folder = sim
    f = _arm(res, 0.0)
    assert f["ad_impressions"] == 0 and f["revenue"] == 0 and f["ads_seen"] == 0 and f["ad_places"] == 0
    assert all(not (m == AD).any() for m, _ in served[AdArm("engagement", 0.0).name])
    st = open_store(folder / f"{AdArm('engagement', 0.0).name}.db")
    try:
        assert st.ad_log(0) == [] and len(st.ad_campaigns()) == len(make_market(cfg.seed, cfg.users))
    finally:
        st.close()
    # with no ads the arm is the plain policy's world: every metric of the loop, step by step
    mine = res.series[AdArm("engagement", 0.0).name]
    for k, v in plain.series["engagement"].items():
        if k != "rank_seconds":
            assert json.dumps(mine[k]) == json.dumps(v), k


def test_more_ad_load_more_ads_per_session_and_more_revenue(sim):
    _, _, _, res, _, _ = sim
    f = [_arm(res, a) for a in LOADS]
    per = [x["impressions_per_session"] for x in f]
    assert per[0] == 0 < per[1] < per[2]
    assert f[0]["revenue"] == 0 < f[1]["revenue"] < f[2]["revenue"]
    # CPM is billed on every ad served: it rises with the load whatever the few clicks of a small run do
    assert 0 < f[1]["revenue_cpm"] < f[2]["revenue_cpm"]
    assert f[0]["revenue_per_1k_sessions"] < f[1]["revenue_per_1k_sessions"] < f[2]["revenue_per_1k_sessions"]
    assert f[2]["ads_seen"] > 0 and f[2]["ads_seen"] <= f[2]["ad_impressions"]  # scanned: at most those served


def test_annoyance_shortens_sessions(sim):
    _, _, _, res, _, _ = sim
    none, full = _arm(res, 0.0), _arm(res, 0.25)
    assert full["time_spent_s"] < none["time_spent_s"]  # seconds per session, ads included
    assert full["organic_seen_per_session"] < none["organic_seen_per_session"]
    assert full["sessions"] <= none["sessions"]  # the grudge only ever keeps people away


def test_no_served_page_breaks_its_ad_load(sim):
    """The test's own reading of the rules on every page the worlds served: no ad above the first position, at
    least min_gap posts between two ads, at most max_share of the places, a post below every ad."""
    _, _, _, res, served, _ = sim
    pages = 0
    for arm, steps in served.items():
        assert res.final[arm]["load_violations"] == 0
        for merged, load in steps:
            for row in merged.tolist():
                ads = [m for m, x in enumerate(row) if x == AD]
                posts_above = [sum(1 for x in row[:m] if x >= 0) for m in ads]
                n_posts = sum(1 for x in row if x >= 0)
                if not ads:
                    continue
                pages += 1
                assert posts_above[0] >= load.first_position - 1
                assert all(b - a >= load.min_gap for a, b in itertools.pairwise(posts_above))
                assert len(ads) / (len(ads) + n_posts) <= load.max_share + 1e-9
                assert posts_above[-1] < n_posts
    assert pages > 100


def test_the_lever_billed_logged_capped_and_targeted(sim):
    """What the ad log of the 25% arm holds: every click the people made (through ``AdService.interact``), CPM
    billed when served and CPC when clicked, revenue = the billed prices, at most 3 impressions of a campaign per
    person and day, topic-targeted campaigns shown only to people with that interest."""
    cfg, base, _, res, _, folder = sim
    f = _arm(res, 0.25)
    market = {a.campaign: a for a in make_market(cfg.seed, cfg.users)}
    st = open_store(folder / f"{AdArm('engagement', 0.25).name}.db")
    try:
        rows = st.ad_log(0)
        uid = {v: k for k, v in st.user_ids().items()}
    finally:
        st.close()
    kinds = Counter(r.kind for r in rows)
    assert kinds["impression"] == f["ad_impressions"] > 0 and kinds["click"] == f["ad_clicks"]
    assert sum(r.price for r in rows) / 1e6 == pytest.approx(f["revenue"])
    for r in rows:
        cpm = market[r.campaign].objective == "reach"
        if r.kind == "impression":
            assert (r.price > 0) == cpm
        elif r.kind == "click":
            assert r.price == 0 if cpm else r.price > 0
    caps = Counter((r.user, r.campaign, int(r.ts // 86400)) for r in rows if r.kind == "impression")
    assert max(caps.values()) <= 3
    top3 = np.argsort(-base.net.user_interests, axis=1)[:, :3]
    for r in rows:
        a = market[r.campaign]
        if r.kind == "impression" and a.targeted:
            person = int(uid[r.user][1:])
            assert a.topic in {base.net.topics[t] for t in top3[person]}


def test_cli_writes_the_curve_and_refuses_bad_loads(tmp_path):
    out = tmp_path / "ads"
    r = CliRunner().invoke(
        app,
        ["simulate-ads", "--users", "120", "--days", "0.5", "--policies", "engagement", "--ad-loads", "0,0.2",
         "--history-days", "2", "--out", str(out)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    report = (out / "report.md").read_text()
    assert "revenue (EUR) / 1,000 sessions" in report and "glassfeed simulate-ads --users 120" in report
    data = json.loads((out / "results.json").read_text())
    assert set(data["mean"]) == {"engagement+ads0", "engagement+ads20"}
    assert not (out / "stores").exists()
    (out / "report.md").unlink()
    again = CliRunner().invoke(app, ["simulate-ads", "--report-from", str(out / "results.json")])
    assert again.exit_code == 0, again.output
    assert (out / "report.md").read_text() == report  # rebuilt from results.json alone
    bad = CliRunner().invoke(app, ["simulate-ads", "--ad-loads", "0,0.7", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "ad-loads" in bad.output
