"""The ad lever's pure parts on hand-made cases: the generalised second-price auction (prices, quality, ties, one
bidder, reserve), the ad load (first place, gaps, share, never two in a row), the spend ledger (atomic: a budget
is overspent by at most one price under concurrent charges, in this process and across workers in Redis), and
pacing (a daily budget spread over the day)."""

from __future__ import annotations

import itertools
import threading
import uuid

import numpy as np
import pytest
import redis

from glassfeed.ads.auction import gsp
from glassfeed.ads.book import CampaignBook
from glassfeed.ads.campaigns import Campaign
from glassfeed.ads.ledger import LocalLedger, RedisLedger, paced_allowance
from glassfeed.ads.placement import ad_places, max_ads
from glassfeed.ads.policy import load_ad_policy
from glassfeed.feed.policy import AdLoad, builtin_policies
from glassfeed.store import AdCampaignRow
from pg_support import require_redis

CPM = 1 / 1000.0


# ---------------------------------------------------------------------- auction
def test_gsp_each_winner_pays_the_next_score_over_its_own_rate_and_quality() -> None:
    r = gsp(np.array([5.0, 3.0, 2.0]), np.full(3, CPM), np.ones(3), reserve=0.5 * CPM, slots=2)
    assert r.winners.tolist() == [0, 1]
    assert r.prices == pytest.approx([3.0, 2.0])  # CPM bids: the next bid
    assert r.scores == pytest.approx([5 * CPM, 3 * CPM])


def test_quality_can_beat_a_higher_bid_and_lowers_what_the_better_ad_pays() -> None:
    # A bids 4 with quality 0.5 (score 2), B bids 3 with quality 1 (score 3): B wins and pays 2 / 1 = 2;
    # A, second, pays the reserve over its quality: 1 / 0.5 = 2 (per 1,000)
    r = gsp(np.array([4.0, 3.0]), np.full(2, CPM), np.array([0.5, 1.0]), reserve=1.0 * CPM, slots=2)
    assert r.winners.tolist() == [1, 0]
    assert r.prices == pytest.approx([2.0, 2.0])


def test_cpc_bids_compete_through_their_predicted_click_rate() -> None:
    # 1.00 per click at P(click) 0.01 is worth 10 per 1,000 impressions: it beats a CPM bid of 8 and pays
    # 8 / 1000 / 0.01 = 0.80 per click
    r = gsp(np.array([1.0, 8.0]), np.array([0.01, CPM]), np.ones(2), reserve=0.0, slots=1)
    assert r.winners.tolist() == [0] and r.prices == pytest.approx([0.8])


def test_ties_go_to_the_lower_index_and_the_winner_pays_its_own_bid() -> None:
    r = gsp(np.array([2.0, 2.0, 2.0]), np.full(3, CPM), np.ones(3), reserve=0.0, slots=2)
    assert r.winners.tolist() == [0, 1] and r.prices == pytest.approx([2.0, 2.0])


def test_one_bidder_pays_the_reserve_and_a_bid_below_it_never_wins() -> None:
    one = gsp(np.array([5.0]), np.array([CPM]), np.ones(1), reserve=0.5 * CPM, slots=3)
    assert one.winners.tolist() == [0] and one.prices == pytest.approx([0.5])
    low = gsp(np.array([0.4, 0.3]), np.full(2, CPM), np.ones(2), reserve=0.5 * CPM, slots=2)
    assert low.winners.tolist() == [] and len(low.prices) == 0
    # a bidder below the reserve still loses to one above it, who pays the reserve (not the loser's score)
    mixed = gsp(np.array([3.0, 0.2]), np.full(2, CPM), np.ones(2), reserve=0.5 * CPM, slots=2)
    assert mixed.winners.tolist() == [0] and mixed.prices == pytest.approx([0.5])


def test_gsp_refuses_mismatched_or_negative_inputs() -> None:
    with pytest.raises(ValueError, match="one value per bidder"):
        gsp(np.ones(2), np.ones(3), np.ones(2), 0.0, 1)
    with pytest.raises(ValueError, match="negative"):
        gsp(np.array([-1.0]), np.ones(1), np.ones(1), 0.0, 1)


# ---------------------------------------------------------------------- the ad load
def test_ad_places_respect_the_first_place_the_gap_and_the_share() -> None:
    load = AdLoad(first_position=4, min_gap=6, max_share=0.10)
    assert max_ads(50, load) == 5  # 5 / 55 <= 10%, 6 / 56 > 10%
    places = ad_places(50, load, available=10)
    assert places == [3, 10, 17, 24, 31]
    assert np.all(np.diff(places) - 1 >= load.min_gap)  # posts between two ads
    assert ad_places(50, load, available=2) == [3, 10]  # fewer winners than places
    assert ad_places(3, load, available=5) == []  # the page ends before the first place
    assert ad_places(50, load.replace(max_share=0.0), available=5) == []
    tight = AdLoad(first_position=1, min_gap=1, max_share=0.5)
    got = ad_places(6, tight, available=10)
    assert got == [0, 2, 4, 6, 8, 10][: max_ads(6, tight)] and max_ads(6, tight) == 6
    assert all(b - a >= 2 for a, b in itertools.pairwise(got))  # never two ads in a row


def test_every_packaged_feed_policy_carries_an_ad_load() -> None:
    for name, pol in builtin_policies().items():
        assert 0 < pol.ads.max_share <= 0.5 and pol.ads.min_gap >= 1, name


def test_the_packaged_ad_policy_lists_every_special_category_of_art_26_3() -> None:
    pol = load_ad_policy()
    assert set(pol.special_categories) == {
        "health",
        "religion",
        "politics",
        "sexual_orientation",
        "ethnic_origin",
        "trade_union",
    }
    assert pol.sensitive_topic("#Health") == "health" and pol.sensitive_topic("cooking") is None
    assert pol.sensitive_field("religion") == "religion" and pol.sensitive_field("countries") is None


# ---------------------------------------------------------------------- the ledger
def _hammer(ledger, threads: int, tries: int, price: int, daily: int, lifetime: int) -> int:
    charged = []
    start = threading.Barrier(threads)

    def run() -> None:
        start.wait()
        n = 0
        for _ in range(tries):
            n += ledger.try_charge("c", 7, price, daily, lifetime)
        charged.append(n)

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(charged)


def test_local_ledger_never_overspends_by_more_than_one_price_under_concurrent_charges() -> None:
    ledger = LocalLedger({}, 7)
    n = _hammer(ledger, threads=8, tries=200, price=300, daily=10_000, lifetime=50_000)
    day, total = ledger.spent("c", 7)
    assert day == total == n * 300
    assert 10_000 <= day < 10_000 + 300  # the charge that crossed the budget was the last
    assert not ledger.try_charge("c", 7, 1, 10_000, 50_000)
    assert ledger.try_charge("c", 8, 300, 10_000, 50_000)  # a new day, the lifetime budget still open
    assert ledger.charge_many([("d", 6, 10, 10), ("d", 6, 10, 10), ("d", 6, 10, 10)], 8) == [True, True, False]
    assert ledger.spent_many(["d", "c"], 8) == [(12, 12), (300, day + 300)]
    ledger.count_seen(1, ["c", "d"], 8)
    assert ledger.seen(1, ["d", "c", "x"], 8) == [1, 1, 0]


def test_a_ledger_starts_from_what_the_ad_log_billed() -> None:
    ledger = LocalLedger({"c": (9_900, 49_900)}, 7)
    assert ledger.try_charge("c", 7, 500, 10_000, 50_000)  # below both: charged, crossing the budgets
    assert not ledger.try_charge("c", 7, 500, 10_000, 50_000)
    assert not ledger.try_charge("c", 8, 500, 10_000, 50_000)  # lifetime spent


def test_redis_ledger_shared_by_two_workers_overspends_by_at_most_one_price() -> None:
    url = require_redis()
    prefix = f"gft:{uuid.uuid4().hex[:12]}:"
    client = redis.Redis.from_url(url)
    try:
        a = RedisLedger(redis.Redis.from_url(url), prefix, {"c": (1_000, 1_000)}, 7)
        b = RedisLedger(redis.Redis.from_url(url), prefix, {"c": (1_000, 1_000)}, 7)

        class Both:  # each thread charges through one of the two workers' ledgers, alternately
            i = 0

            def try_charge(self, *args: object) -> bool:
                Both.i += 1
                return (a if Both.i % 2 else b).try_charge(*args)  # type: ignore[arg-type]

        n = _hammer(Both(), threads=6, tries=100, price=700, daily=20_000, lifetime=90_000)
        day, total = a.spent("c", 7)
        assert (day, total) == b.spent("c", 7) == (1_000 + 700 * n, 1_000 + 700 * n)
        assert 20_000 <= day < 20_000 + 700
        a.count_seen(3, ["c"], 7)
        b.count_seen(3, ["c", "e"], 7)
        assert a.seen(3, ["c", "d", "e"], 7) == [2, 0, 1]
        assert a.spent_many(["c", "d"], 7) == [(day, total), (0, 0)]
        assert b.charge_many([("d", 5, 10, 10), ("d", 5, 10, 10), ("d", 5, 10, 10)], 7) == [True, True, False]
    finally:
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)


# ---------------------------------------------------------------------- pacing
def _spend_over_a_day(slack: float, daily: int, price: int, requests_per_hour: int) -> np.ndarray:
    """Spend by the end of each hour of one day of evenly spread requests, each wanting one impression."""
    ledger = LocalLedger({}, 0)
    by_hour = np.zeros(24)
    for h in range(24):
        for k in range(requests_per_hour):
            now = h * 3600 + k * 3600 / requests_per_hour
            spent, _ = ledger.spent("c", 0)
            if spent < paced_allowance(daily, now, slack):
                ledger.try_charge("c", 0, price, daily, 10 * daily)
        by_hour[h] = ledger.spent("c", 0)[0]
    return by_hour


def test_pacing_spreads_a_daily_budget_over_the_day_instead_of_the_first_hours() -> None:
    daily, price = 100_000, 100  # traffic for 24x the budget
    unpaced = _spend_over_a_day(1.0, daily, price, requests_per_hour=1000)
    paced = _spend_over_a_day(0.05, daily, price, requests_per_hour=1000)
    assert unpaced[0] >= daily  # without pacing the first hour spends it all
    assert paced[-1] >= daily * 0.99 and paced[-1] < daily + price  # paced: still spent by the day's end
    hours = np.arange(1, 25) / 24
    assert np.all(paced <= daily * np.minimum(1, hours + 0.05) + price)  # never ahead of even + slack
    assert paced[11] == pytest.approx(daily * (0.5 + 0.05), rel=0.02)  # half the day: about half the budget


# ---------------------------------------------------------------------- the campaign book (placement's arrays)
def _campaign(cid: str, advertiser: str, targeting: dict, **kw) -> Campaign:
    body = {
        "name": cid,
        "on_behalf_of": advertiser,
        "paid_by": advertiser,
        "objective": kw.pop("objective", "reach"),
        "bid": kw.pop("bid", 2.0),
        "daily_budget": 10.0,
        "lifetime_budget": 100.0,
        "start": kw.pop("start", 0.0),
        "end": kw.pop("end", None),
        "creatives": kw.pop("creatives", ["a", "b"]),
        "status": kw.pop("status", "active"),
        "targeting": targeting,
    }
    return Campaign.from_row(AdCampaignRow(cid, advertiser, body, 0.0, 0.0))


def test_the_book_groups_campaigns_by_targeting_so_each_distinct_targeting_is_matched_once() -> None:
    camps = [
        _campaign("c3", "zed", {"countries": ["DE", "FR"]}),
        _campaign("c1", "acme", {}),
        _campaign("c2", "acme", {"countries": ["DE", "FR"]}),
        _campaign("c4", "bolt", {}),
        _campaign("c5", "bolt", {"lookalike_of": "brand"}),
        _campaign("c6", "bolt", {"lookalike_of": "brand"}),
        _campaign("c7", "zed", {"countries": ["DE"]}),
    ]
    book = CampaignBook.build(camps, {"a": 7, "b": 9}.get)
    assert book.ids == ["c1", "c2", "c3", "c4", "c5", "c6", "c7"]  # id order
    g = dict(zip(book.ids, book.group))
    assert g["c1"] == g["c4"] == 0  # untargeted
    assert g["c2"] == g["c3"] != 0  # same targeting, one group
    assert len({g["c5"], g["c6"], g["c2"], g["c7"]}) == 4  # a lookalike audience is per campaign
    assert book.creatives.tolist() == [7, 9] * 7 and book.starts.tolist() == list(range(0, 14, 2))


def test_the_book_runs_schedules_and_keeps_each_advertisers_best_by_name_ties_to_the_earlier_id() -> None:
    camps = [
        _campaign("a1", "zed", {}, start=100.0),
        _campaign("a2", "zed", {}, end=50.0),
        _campaign("a3", "acme", {}, status="paused"),
        _campaign("a4", "acme", {}),
        _campaign("a5", "acme", {}),
        _campaign("a6", "zed", {}),
        _campaign("a7", "bolt", {}),
    ]
    book = CampaignBook.build(camps, {"a": 1, "b": 2}.get)
    assert [book.ids[r] for r in book.running(60.0)] == ["a4", "a5", "a6", "a7"]
    assert [book.ids[r] for r in book.running(120.0)] == ["a1", "a4", "a5", "a6", "a7"]
    rows = book.running(120.0)
    value = np.array([1.0, 2.0, 2.0, 3.0, 0.5])  # a1 a4 a5 a6 a7
    # acme: a4 and a5 tie at 2.0 -> a4 (earlier id); bolt: a7; zed: a6 (3.0 beats a1's 1.0); by advertiser name
    assert [book.ids[r] for r in book.best_per_advertiser(rows, value)] == ["a4", "a7", "a6"]
    rates = book.action_rate(np.full(7, 0.02), np.full(7, 0.05))
    assert rates.tolist() == [CPM] * 7
    mixed = CampaignBook.build([_campaign("x", "a", {}, objective="clicks"), _campaign("y", "a", {})], {}.get)
    assert mixed.action_rate(np.array([0.02, 0.02]), np.array([0.05, 0.05])).tolist() == [0.02, CPM]
