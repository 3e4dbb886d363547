"""The ad ranker's model (glassfeed.ads.model) on a small synthetic ad log where people click and engage with ads of
their own topics far more often: it beats the campaigns' smoothed rates on the newest impressions and is calibrated;
the features of an impression at training equal the ad service's at serving for the same person, campaign and time
(the serving side built from the log before that time only); a save/load round trip; and the ad service ranks by it
when one is saved, saying so in "why this ad"."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from glassfeed.ads.campaigns import Campaign, CampaignSpec
from glassfeed.ads.model import AD_FEATURES, AF, AdModel, examples, first_place, train_ad_model
from glassfeed.ads.placement import ad_places
from glassfeed.ads.policy import load_ad_policy
from glassfeed.ads.service import RATES_FROM_CAMPAIGN, RATES_FROM_MODEL, AdService
from glassfeed.ads.targeting import person
from glassfeed.feed.policy import AdLoad, builtin_policies
from glassfeed.feed.service import FeedService
from glassfeed.ingest import Ingestor
from glassfeed.store import AdCampaignRow, AdLogRow, models_dir, open_store

POLICY = load_ad_policy()
TOPICS = ("cooking", "cycling", "gardening", "chess", "jazz")
OBJECTIVE = ("clicks", "clicks", "engagement", "reach", "clicks")
BASE_CLICK = (0.02, 0.03, 0.04, 0.02, 0.05)  # each campaign's click rate among people without its topic
LIFT = 6.0  # ... times this among people with it
T0 = 1_700_000_000.0
DAYS = 8
END = T0 + DAYS * 86400.0
T_MID = T0 + 5 * 86400.0  # PARITY impressions all happen at exactly this time
N_USERS = 200
OPTED_OUT = 10  # u0..u9 turned off interest-based ads
N_IMPRESSIONS = 9000
PARITY = 24


def _topics_of(i: int) -> list[str]:
    return [TOPICS[i % 5]] + ([TOPICS[(i + 2) % 5]] if i % 3 == 0 else [])


def _world(folder: Path, cutoff: float | None = None) -> Ingestor:
    """The synthetic network, campaigns and ad log (only what happened before ``cutoff``, when given); the same
    draws whatever the cutoff, so that the users, posts and campaigns get the same idx and ids."""
    rng = np.random.default_rng(7)
    keep = (lambda t: True) if cutoff is None else (lambda t: t < cutoff)
    store = open_store(folder / "ads.db")
    ing = Ingestor(store, clock=lambda: END + 60.0)
    users = [{"id": f"u{i}", "created_at": T0 - 10 * 86400.0, "interests": _topics_of(i)} for i in range(N_USERS)] + [
        {"id": f"brand{k}", "created_at": T0 - 10 * 86400.0} for k in range(5)
    ]
    ing.create_users(users, with_tokens=False)
    for i in range(OPTED_OUT):
        ing.set_prefs(f"u{i}", {"ads": {"personalised": False}})
    ing.create_posts(
        [
            {"id": f"ad{k}", "author": f"brand{k}", "text": f"#{TOPICS[k]} try it", "created_at": T0 - 3600.0}
            for k in range(5)
        ]
    )
    for k in range(5):
        spec = CampaignSpec(
            name=f"campaign {k}",
            on_behalf_of=f"Brand {k}",
            paid_by=f"Brand {k}",
            objective=OBJECTIVE[k],
            bid=1.0,
            daily_budget=1e6,
            lifetime_budget=1e7,
            start=T0 - 86400.0,
            creatives=[f"ad{k}"],
        )
        body = spec.model_dump(mode="json")
        body["targeting"] = {}
        ing.put_ad_campaign(AdCampaignRow(f"c{k}", f"brand{k}", body, T0 - 86400.0, T0 - 86400.0))
    events = []
    for i in range(N_USERS):
        k = i % 5
        if rng.random() < 0.4:  # follows its topic's brand, some of them unfollow again later
            t = float(rng.uniform(T0 - 2 * 86400.0, END))
            events.append({"kind": "follow", "user": f"u{i}", "target_user": f"brand{k}", "ts": t})
            if rng.random() < 0.3:
                t2 = float(rng.uniform(t, END))
                events.append({"kind": "unfollow", "user": f"u{i}", "target_user": f"brand{k}", "ts": t2})
        for kind, p in (("like", 0.3), ("repost", 0.1), ("reply", 0.1)):
            if rng.random() < p:
                events.append({"kind": kind, "user": f"u{i}", "post": f"ad{k}", "ts": float(rng.uniform(T0, END))})
    # two people of the PARITY impressions: one followed the brand before T_MID and unfollowed after it, one
    # followed only after it (their follow state at T_MID is not today's)
    a, b = f"u{OPTED_OUT}", f"u{OPTED_OUT + 1}"
    events += [
        {"kind": "follow", "user": a, "target_user": "brand0", "ts": T_MID - 3600.0},
        {"kind": "unfollow", "user": a, "target_user": "brand0", "ts": T_MID + 3600.0},
        {"kind": "follow", "user": b, "target_user": "brand3", "ts": T_MID + 3600.0},
    ]
    events = [e for e in events if keep(e["ts"])]
    if events:
        ing.ingest_events(events)
    rows: list[AdLogRow] = []

    def impression(t: float, u: int, k: int, request: str) -> None:
        rows.append(AdLogRow(0, "impression", t, f"c{k}", u + 1, k + 1, 0, request, None, None))
        match = TOPICS[k] in _topics_of(u)
        p = BASE_CLICK[k] * (LIFT if match else 1.0)
        if rng.random() < p:
            rows.append(AdLogRow(0, "click", t + 3.0, f"c{k}", u + 1, k + 1, 0, request, None, None))
        if rng.random() < 0.8 * p:
            rows.append(AdLogRow(0, "engagement", t + 7.0, f"c{k}", u + 1, k + 1, 0, request, None, None))
        if k == 4 and rng.random() < 0.02:
            rows.append(AdLogRow(0, "hide", t + 9.0, f"c{k}", u + 1, k + 1, 0, request, None, None))

    times = np.sort(rng.uniform(T0, END, N_IMPRESSIONS))
    for j, t in enumerate(times.tolist()):
        u, k = int(rng.integers(N_USERS)), int(rng.integers(5))
        impression(t, u, k, f"engagement:s{j}.1")
        if rng.random() < 0.1:  # a second ad on the page: another campaign, at the policy's second ad place
            impression(t, u, (k + 1) % 5, f"engagement:s{j}.1")
    for j in range(PARITY):
        impression(T_MID, OPTED_OUT + j, (3 * j) % 5, f"engagement:m{j}.1")
    rows = sorted((r for r in rows if keep(r.ts)), key=lambda r: r.ts)
    ing.append_ad_log(rows)
    return ing


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    ing = _world(tmp_path_factory.mktemp("ads_model"))
    yield ing
    ing.store.close()


@pytest.fixture(scope="module")
def trained(world):
    return train_ad_model(world.store, POLICY, END + 3600.0, holdout=0.2, model=AdModel(trees=200, seed=0))


def test_the_model_beats_the_campaigns_rates_and_is_calibrated(trained) -> None:
    model, report = trained
    assert report["examples"] > 0.85 * N_IMPRESSIONS and report["holdout"] == pytest.approx(
        0.2 * report["examples"], abs=1
    )
    assert report["people"] == N_USERS - OPTED_OUT  # people who turned personalisation off are not trained on
    for head in ("click", "engagement"):
        h = report["heads"][head]
        assert h["trained"] and h["holdout_positives"] >= 50, head
        assert h["model"]["auc"] > h["baseline"]["auc"] + 0.1, (head, h)
        assert h["model"]["log_loss"] < h["baseline"]["log_loss"], (head, h)
        # calibrated: the mean prediction is the holdout's observed rate within three standard errors of the noise
        # of the two samples involved (the calibration slice it was fitted on, the holdout it is compared with),
        # and so is each fifth of the holdout by predicted probability, which also tells the fifths apart
        rate, n_hold = h["observed_rate"], report["holdout"]
        n_cal = (report["examples"] - n_hold) - round((report["examples"] - n_hold) * 0.8)
        se = np.sqrt(rate * (1 - rate) * (1 / n_hold + 1 / n_cal))
        assert abs(h["model"]["mean_predicted"] - rate) < 3 * se, (head, h, se)
        bins = h["model"]["reliability"]
        for b in bins:
            q = max(b["observed_rate"], b["mean_predicted"])
            assert abs(b["mean_predicted"] - b["observed_rate"]) < 3 * np.sqrt(q * (1 - q) / b["n"]) + 0.01, (head, b)
        assert bins[-1]["observed_rate"] > 3 * bins[0]["observed_rate"], (head, bins)
    assert set(model.boosters_) == {"click", "engagement"} and model.n_examples_ == report["examples"]


def test_labels_follow_the_same_request_and_the_place_its_ad_load(world) -> None:
    ex = examples(world.store, POLICY, END + 3600.0)
    log = world.store.ad_log()
    clicked = {(r.user, r.campaign, r.request_id) for r in log if r.kind == "click"}
    imps = {r.seq: r for r in log if r.kind == "impression"}
    want = [(imps[s].user, imps[s].campaign, imps[s].request_id) in clicked for s in ex.seq.tolist()]
    assert ex.y_click.tolist() == want and ex.y_click.any()
    load = builtin_policies()["engagement"].ads
    places = set(ex.X[:, AF["place"]].tolist())
    assert places == {float(p) for p in ad_places(50, load, 2)}  # first and second ads of a page
    assert np.all(np.diff(ex.ts) >= 0)  # time order: the holdout and calibration slices are the newest


def test_first_place_is_the_placement_rule() -> None:
    for load in (
        AdLoad(first_position=4, min_gap=6, max_share=0.1),
        AdLoad(first_position=1, min_gap=1, max_share=0.5),
    ):
        assert [first_place(load, j) for j in range(3)] == ad_places(100, load, 3)


def _service_at(folder: Path, now: float) -> AdService:
    ing = _world(folder, cutoff=now)
    feed = FeedService(ing, clock="data")
    return AdService(feed, install=False)


def test_features_at_training_equal_features_at_serving(world, tmp_path) -> None:
    """The impressions at T_MID: their training rows (from the whole log, later rows included) equal the rows the
    ad service computes on a store holding only what happened before T_MID."""
    ex = examples(world.store, POLICY, END + 3600.0)
    at = np.flatnonzero(ex.ts == T_MID)
    assert len(at) == PARITY
    svc = _service_at(tmp_path, T_MID)
    try:
        st = svc.feed.state
        place = ad_places(20, svc.feed.policies["engagement"].ads, 1)[0]
        follows = 0.0
        for i in at.tolist():
            u, cid = int(ex.users[i]), str(ex.campaigns[i])
            camp = svc.campaigns[cid]
            post = svc.store.post_idx(camp.creatives[0])
            assert post is not None
            who = person(st, u, POLICY, T_MID)
            mine = svc.person_stats.get(u)
            assert mine is not None  # each has seen ads before T_MID
            row = svc.ranker.features(st, who, [camp], [post], [svc.stats[cid]], mine, T_MID, place)[0]
            assert row.tolist() == ex.X[i].tolist(), dict(zip(AD_FEATURES, zip(row.tolist(), ex.X[i].tolist())))
            follows += row[AF["follows_author"]]
        assert 0 < follows < PARITY  # the rewound follow graph is exercised both ways
        first, second = (np.flatnonzero(ex.users[at] == OPTED_OUT + j + 1)[0] for j in range(2))
        assert ex.campaigns[at][first] == "c0" and ex.campaigns[at][second] == "c3"
        assert ex.X[at][first, AF["follows_author"]] == 1.0 and ex.X[at][second, AF["follows_author"]] == 0.0
        assert ex.X[at][:, AF["creative_topic_match"]].any() and not ex.X[at][:, AF["creative_topic_match"]].all()
    finally:
        svc.close()
        svc.feed.close()
        svc.store.close()


def test_save_and_load_round_trip(trained, world, tmp_path) -> None:
    model, _ = trained
    X = examples(world.store, POLICY, END + 3600.0).X[-500:]
    model.save(tmp_path / "ads")
    back = AdModel.load(tmp_path / "ads")
    assert back is not None and back.get_params() == model.get_params()
    for a, b in zip(model.predict(X), back.predict(X)):
        assert np.array_equal(a, b)
    assert AdModel.load(tmp_path / "nothing") is None
    meta = json.loads((tmp_path / "ads" / "ad_model.json").read_text())
    meta["features"] = meta["features"][:-1]
    (tmp_path / "ads" / "ad_model.json").write_text(json.dumps(meta))
    assert AdModel.load(tmp_path / "ads") is None  # made for other features: not used


def test_an_untrained_head_predicts_the_campaigns_smoothed_rate() -> None:
    rng = np.random.default_rng(1)
    X = rng.random((400, len(AD_FEATURES)))
    m = AdModel(trees=5).fit(X, np.zeros(400), (rng.random(400) < 0.3).astype(float))
    assert set(m.boosters_) == {"engagement"}
    p_click, _ = m.predict(X)
    assert np.array_equal(p_click, X[:, AF["campaign_ctr"]])


def _page(svc: AdService, user: int, now: float) -> list[dict]:
    pol = svc.feed.policies["engagement"]
    items = [{"post": f"x{i}"} for i in range(20)]
    return [it for it in svc.place(user, pol, items, now, f"engagement:t{user}.1", np.zeros(0, np.int64)) if "ad" in it]


def test_the_ad_service_ranks_by_the_model_when_one_is_saved(trained, tmp_path) -> None:
    model, _ = trained
    now = END + 600.0
    svc = _service_at(tmp_path, now)
    try:
        ads = _page(svc, 50, now)
        assert ads and all(a["ad"]["why"]["rates_from"] == RATES_FROM_CAMPAIGN for a in ads)
        model.save(svc.feed.models_folder / "ads")
        assert svc.feed.models_folder == models_dir(svc.store.path)
        svc.close()
        svc = AdService(svc.feed, install=False)
        assert svc.ranker.model is not None
        ads = _page(svc, 51, now)
        assert ads and all(a["ad"]["why"]["rates_from"] == RATES_FROM_MODEL for a in ads)
        # the auction's P(click) is the model's for this person, campaign and time, at the page's first ad place
        st = svc.feed.state
        who = person(st, 51, POLICY, now)
        first = ads[0]["ad"]
        camp: Campaign = svc.campaigns[first["campaign"]]
        post = svc.store.post_idx(camp.creatives[0])
        assert post is not None
        place = ad_places(20, svc.feed.policies["engagement"].ads, 1)[0]
        X = svc.ranker.features(st, who, [camp], [post], [svc.stats[camp.id]], svc.person_stats[51], now, place)
        p_click, p_eng = model.predict(X)
        assert first["why"]["auction"]["p_click"] == round(float(p_click[0]), 5)
        assert first["why"]["auction"]["p_engagement"] == round(float(p_eng[0]), 5)
        # a person who turned off interest-based ads is not ranked by the model, and is told so
        off = _page(svc, 1, now)
        assert off and all(
            a["ad"]["why"]["rates_from"].startswith(RATES_FROM_CAMPAIGN)
            and "turned off interest-based ads" in a["ad"]["why"]["rates_from"]
            for a in off
        )
    finally:
        svc.close()
        svc.feed.close()
        svc.store.close()


def test_the_cli_trains_reports_and_describes(world) -> None:
    from typer.testing import CliRunner

    from glassfeed.cli import app

    db = Path(world.store.path)
    r = CliRunner().invoke(app, ["ads", "train", "--db", str(db), "--until", str(END + 3600.0)])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout[: r.stdout.rindex("}") + 1])
    assert report["examples"] > 0 and set(report["heads"]) == {"click", "engagement"}
    assert {"auc", "log_loss"} <= set(report["heads"]["click"]["baseline"])
    assert AdModel.load(models_dir(db) / "ads") is not None
    d = CliRunner().invoke(app, ["ads", "describe"])
    assert d.exit_code == 0 and d.stdout.startswith(f"# {POLICY.title}")
