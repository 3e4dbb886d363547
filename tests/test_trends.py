"""Trends: a coordinated burst does not trend while an organic topic of the same volume does (issue 19), each
anti-manipulation rule on its own (account age, accounts created together, lockstep text, one post per account),
every trend and held-back term explained, per-community trends that differ from the global ones, the rules file's
refusals naming the key, and GET /v1/trends with its 422s naming the field."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from glassfeed.api.app import create_app
from glassfeed.feed.policy import PolicyError
from glassfeed.ingest import Ingestor
from glassfeed.settings import load_settings
from glassfeed.state import ServingState
from glassfeed.store import open_store
from glassfeed.trends.compute import TrendList, compute_trends
from glassfeed.trends.index import TermIndex, normalise_text
from glassfeed.trends.policy import describe, load_trend_policy, parse_trend_policy

NOW = 1772366400.0  # 2026-03-01 12:00 UTC
DAY, HOUR = 86400.0, 3600.0
POLICY = load_trend_policy()


class World:
    """A small network written through the Ingestor (hashtags parsed from the text as in production): 400
    established accounts created over the last two years in communities 0 and 1, and a steady #news topic."""

    def __init__(self, folder: Path, seed: int = 1) -> None:
        self.store = open_store(folder / "trends.db")
        self.ingestor = Ingestor(self.store, clock=lambda: NOW)
        self.rng = np.random.default_rng(seed)
        self.users: list[dict[str, Any]] = []
        self.posts: list[dict[str, Any]] = []
        self.n_posts = 0
        created = NOW - self.rng.uniform(30, 730, 400) * DAY
        self.established = self.accounts("u", created, community=[i % 2 for i in range(400)])
        for j in range(160):  # ~20 a day over 8 days: the usual rate of a steady topic
            self.post(self.pick(self.established), NOW - self.rng.uniform(0, 8 * DAY), f"today in #news, item {j}")

    def accounts(self, prefix: str, created: Any, community: Any = 0) -> list[str]:
        n = len(created)
        comm = community if isinstance(community, list) else [community] * n
        ids = [f"{prefix}{i}" for i in range(n)]
        for i, c in enumerate(created):
            self.users.append({"id": ids[i], "created_at": float(c), "community": comm[i]})
        return ids

    def pick(self, ids: list[str], n: int | None = None) -> Any:
        if n is None:
            return ids[int(self.rng.integers(len(ids)))]
        return [ids[i] for i in self.rng.choice(len(ids), n, replace=False)]

    def post(self, author: str, ts: float, text: str) -> None:
        self.n_posts += 1
        self.posts.append({"id": f"p{self.n_posts}", "author": author, "created_at": float(ts), "text": text})

    def organic(self, tag: str = "eclipse", n: int = 50) -> None:
        """``n`` established accounts, each its own words, spread over the last 5.5 hours."""
        for j, a in enumerate(self.pick(self.established[100:], n)):
            self.post(
                a, NOW - self.rng.uniform(0, 5.5 * HOUR), f"watching the #{tag} from spot {j}, {j * 7 % 13} clouds"
            )

    def burst(self, authors: list[str], tag: str = "buynow", same_text: bool = False) -> None:
        """One post each, all within one hour (45 minutes ago to 15 minutes ago... well inside the window)."""
        for j, a in enumerate(authors):
            text = f"Great deal!! #{tag}" if same_text else f"deal number {j}: {j * 31 % 97} off #{tag}"
            self.post(a, NOW - HOUR + j * (HOUR / len(authors)), text)

    def state(self) -> ServingState:
        self.ingestor.create_users(self.users, with_tokens=False)
        self.users = []
        self.ingestor.create_posts(sorted(self.posts, key=lambda p: p["created_at"]))
        self.posts = []
        return ServingState.from_store(self.store, clock=lambda: NOW)


def trends_of(state: ServingState, community: int | None = None, policy: Any = POLICY) -> TrendList:
    return compute_trends(state, TermIndex(), policy, NOW, community)


def names(items: list[dict[str, Any]]) -> list[str]:
    return [t["term"] for t in items]


def by_term(items: list[dict[str, Any]], term: str) -> dict[str, Any]:
    return next(t for t in items if t["term"] == term)


# --------------------------------------------------------------------------- the must-show test
@pytest.mark.parametrize(
    ("created_days_ago", "caught_by"),
    [(2.0, "account_age"), (400.0, "cohort")],
    ids=["accounts-created-two-days-ago", "accounts-created-the-same-day-long-ago"],
)
def test_a_coordinated_burst_does_not_trend_while_an_organic_topic_of_the_same_volume_does(
    tmp_path, created_days_ago, caught_by
):
    w = World(tmp_path)
    w.organic("eclipse", 50)
    same_day = NOW - created_days_ago * DAY + np.arange(50) * 300.0  # 50 accounts, one UTC day, 5 minutes apart
    w.burst(w.accounts("bot", same_day), "buynow")
    res = trends_of(w.state())

    assert "eclipse" in names(res.trends)
    assert "buynow" not in names(res.trends)
    eclipse, held = by_term(res.trends, "eclipse"), by_term(res.held_back, "buynow")
    assert eclipse["posts"] == held["posts"] == 50  # the same volume
    assert eclipse["counted_accounts"] == 50 and eclipse["discounted"] == []
    assert [d["rule"] for d in held["discounted"]] == [caught_by]
    if caught_by == "cohort":
        day = "2025-01-25"  # 400 days before 2026-03-01
        assert held["discounted"][0]["reason"] == f"50 posts from 50 accounts created on {day} counted as 1"
        assert held["counted_posts"] == held["counted_accounts"] == 1
    else:
        assert held["counted_posts"] == 0
        assert "younger than 7 days" in held["discounted"][0]["reason"]
    assert any("accounts counted after the rules; at least 10 needed" in r for r in held["held_back_because"])
    assert "news" not in names(res.trends)  # a steady topic at its usual rate


def test_accounts_posting_the_same_text_in_lockstep_count_once(tmp_path):
    w = World(tmp_path)
    w.organic("eclipse", 50)
    w.burst(w.pick(w.established[:100], 50), "voteyes", same_text=True)  # established accounts, created apart
    res = trends_of(w.state())
    assert "eclipse" in names(res.trends) and "voteyes" not in names(res.trends)
    held = by_term(res.held_back, "voteyes")
    (lock,) = held["discounted"]
    assert lock["rule"] == "lockstep" and lock["posts"] == lock["accounts"] == 50 and lock["counted_as"] == 1
    assert lock["reason"].startswith("50 posts with the same text from 50 accounts within ")
    assert normalise_text("Great deal!! #voteyes https://x.example/a @bob") == "great deal voteyes"


def test_an_account_counts_once_per_window_however_often_it_posts(tmp_path):
    w = World(tmp_path)
    loud = w.established[:20]
    for k in range(60):  # 20 accounts, 3 posts each
        w.post(loud[k % 20], NOW - k * 60.0, f"buy #spamtag number {k}")
    for k in range(60):  # 5 accounts, 12 posts each: 60 posts, but only 5 accounts
        w.post(w.established[20 + k % 5], NOW - k * 60.0, f"see #fivetag number {k}")
    res = trends_of(w.state())
    spam = by_term(res.trends, "spamtag")
    assert spam["posts"] == 60 and spam["counted_posts"] == spam["counted_accounts"] == 20
    assert spam["discounted"] == [
        {
            "rule": "posts_per_account",
            "posts": 40,
            "accounts": None,
            "counted_as": 0,
            "reason": "40 further posts by accounts that had already posted it not counted (each account counts at "
            "most 1 per 6 hours)",
        }
    ]
    assert "fivetag" not in names(res.trends + res.held_back)  # 5 accounts are too few, however loud


def test_every_trend_and_held_back_term_explains_itself(tmp_path):
    w = World(tmp_path)
    w.organic("eclipse", 50)
    w.organic("marathon", 30)
    w.burst(w.accounts("bot", NOW - 400 * DAY + np.arange(50) * 60.0), "buynow")
    res = trends_of(w.state())
    assert len(res.trends) >= 2 and res.held_back
    for t in res.trends + res.held_back:
        words = t["explanation"]
        assert words.startswith(f"{t['display']}: {t['posts']} posts from {t['accounts']} accounts in the last 6 hours")
        assert "x its usual rate" in words and "mentioned since 2026-03-01" in words
        assert t["since"] <= NOW and t["expected"] >= POLICY.windows.min_expected
        for d in t["discounted"]:
            assert d["reason"][0].upper() + d["reason"][1:] in words
    eclipse = by_term(res.trends, "eclipse")
    assert eclipse["kind"] == "hashtag" and eclipse["display"] == "#eclipse" and eclipse["new"]
    assert [t["rank"] for t in res.trends] == list(range(1, len(res.trends) + 1))
    assert all(a["score"] >= b["score"] for a, b in zip(res.trends, res.trends[1:]))
    assert (
        "Held back: 1 accounts counted after the rules; at least 10 needed"
        in by_term(res.held_back, "buynow")["explanation"]
    )


def test_a_term_is_measured_against_its_own_usual_rate(tmp_path):
    w = World(tmp_path)
    # #news runs at ~20 a day (5 per window); 30 more accounts now is 7x its usual rate: it trends
    for a in w.pick(w.established, 30):
        w.post(a, NOW - w.rng.uniform(0, 5 * HOUR), "more on the #news tonight")
    res = trends_of(w.state())
    news = by_term(res.trends, "news")
    assert 3.0 < news["expected"] < 8.0 and news["baseline_posts"] > 0 and not news["new"]
    assert news["ratio"] == pytest.approx(news["counted_posts"] / news["expected"], rel=1e-3)


def test_per_community_trends_differ_from_the_global_ones(tmp_path):
    w = World(tmp_path)
    comm0 = [u for i, u in enumerate(w.established) if i % 2 == 0]
    comm1 = [u for i, u in enumerate(w.established) if i % 2 == 1]
    for j in range(640):  # community 0 talks about #derby all week: ~20 per 6 hours
        w.post(w.pick(comm0), NOW - 6 * HOUR - w.rng.uniform(0, 8 * DAY), f"#derby chat {j}")
    for j, a in enumerate(w.pick(comm0, 20)):  # ... and now, at its usual rate
        w.post(a, NOW - w.rng.uniform(0, 5 * HOUR), f"#derby today {j}")
    for j, a in enumerate(w.pick(comm1, 15)):  # community 1 never did: now 15 of its accounts do
        w.post(a, NOW - w.rng.uniform(0, 5 * HOUR), f"first time watching the #derby, {j}")
    state = w.state()
    index = TermIndex()
    glob = compute_trends(state, index, POLICY, NOW)
    one = compute_trends(state, index, POLICY, NOW, community=1)
    zero = compute_trends(state, index, POLICY, NOW, community=0)
    assert "derby" not in names(glob.trends) and "derby" not in names(zero.trends)
    derby = by_term(one.trends, "derby")
    assert derby["counted_accounts"] == 15 and derby["expected"] == POLICY.windows.min_expected
    assert "in community 1" in derby["explanation"] and one.scope == "community" and one.community == 1
    empty = compute_trends(state, index, POLICY, NOW, community=7)
    assert empty.trends == [] and empty.notice == "no accounts in community 7"


def test_posts_added_later_are_indexed_once_and_counted(tmp_path):
    w = World(tmp_path)
    state = w.state()
    index = TermIndex()
    assert "eclipse" not in names(compute_trends(state, index, POLICY, NOW).trends)
    w.organic("eclipse", 40)
    w.ingestor.create_posts(sorted(w.posts, key=lambda p: p["created_at"]))
    state.add_posts_from_store(w.store)
    assert index.update(state) == 40 and index.update(state) == 0
    assert by_term(compute_trends(state, index, POLICY, NOW).trends, "eclipse")["posts"] == 40


# --------------------------------------------------------------------------- the rules file
def _packaged() -> dict[str, Any]:
    return tomllib.loads(resources.files("glassfeed").joinpath("policies/trends/default.toml").read_text("utf-8"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["cohorts"].update(min_acounts=3), "x.toml: [cohorts] min_acounts: unknown key; expected one of"),
        (lambda d: d.update(extra=1), "x.toml: extra: unknown key"),
        (lambda d: d["score"].update(min_z=-1), "x.toml: [score] min_z: Input should be greater than or equal to 0"),
        (lambda d: d["lockstep"].pop("max_gap_s"), "x.toml: [lockstep] max_gap_s: Field required"),
        (lambda d: d.pop("windows"), "x.toml: [windows]: Field required"),
        (lambda d: d["publish"].update(default_limit=99), "x.toml: [publish]: default_limit 99 is above max_limit 50"),
        (lambda d: d["authors"].update(max_posts_per_window="one"), "[authors] max_posts_per_window: Input should be"),
    ],
)
def test_the_rules_file_refuses_bad_keys_naming_them(change, message):
    body = _packaged()
    change(body)
    with pytest.raises(PolicyError) as e:
        parse_trend_policy(body, "x.toml")
    assert message in str(e.value)


def test_the_rules_file_loads_from_a_path_and_says_what_it_does(tmp_path):
    p = tmp_path / "strict.toml"
    p.write_text(
        resources.files("glassfeed")
        .joinpath("policies/trends/default.toml")
        .read_text("utf-8")
        .replace("min_authors = 10", "min_authors = 25")
    )
    assert load_trend_policy(p).score.min_authors == 25
    bad = tmp_path / "bad.toml"
    bad.write_text("name = ")
    with pytest.raises(PolicyError, match=r"bad\.toml: not valid TOML"):
        load_trend_policy(bad)
    with pytest.raises(PolicyError, match="no such trend rules file"):
        load_trend_policy(tmp_path / "missing.toml")
    words = describe(POLICY)
    assert "at least 10 accounts" in words and "younger than 7 days" in words and "same day (UTC)" in words


# --------------------------------------------------------------------------- the API
def test_the_trends_api_is_public_and_refuses_bad_parameters_naming_the_field(tmp_path):
    w = World(tmp_path)
    w.organic("eclipse", 50)
    w.state()  # written to the store
    w.store.close()
    settings = load_settings(
        store={"path": tmp_path / "trends.db"}, api={"key": "svc"}, serving={"clock": "data"}, trends={"refresh_s": 60}
    )
    with TestClient(create_app(settings)) as c:
        r = c.get("/v1/trends", params={"limit": 3})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["scope"] == "global" and body["policy"] == "default" and len(body["trends"]) <= 3
        assert by_term(body["trends"], "eclipse")["explanation"].startswith("#eclipse: 50 posts from 50 accounts")
        assert c.get("/v1/trends", params={"community": 1}).json()["scope"] == "community"
        for params, field in [
            ({"limit": 0}, "limit"),
            ({"limit": 51}, "limit"),
            ({"limit": "x"}, "limit"),
            ({"community": -1}, "community"),
            ({"community": 70000}, "community"),
        ]:
            r = c.get("/v1/trends", params=params)
            assert r.status_code == 422, (params, r.text)
            assert r.json()["detail"][0]["field"] == field
        rules = c.get("/v1/trends/rules")
        assert rules.status_code == 200 and "Poisson z-score" in rules.text


def test_the_trends_page_lists_each_trend_with_its_explanation_and_the_held_back_terms(tmp_path):
    """The /trends page without a browser (no Chromium test yet): server-rendered from GET /v1/trends."""
    w = World(tmp_path)
    w.organic("eclipse", 50)
    w.burst(w.accounts("bot", NOW - 400 * DAY + np.arange(50) * 60.0), "buynow")
    w.state()
    w.store.close()
    settings = load_settings(store={"path": tmp_path / "trends.db"}, serving={"clock": "data"})
    with TestClient(create_app(settings)) as c:
        page = c.get("/trends")
        assert page.status_code == 200 and 'data-term="eclipse"' in page.text
        assert "#eclipse: 50 posts from 50 accounts in the last 6 hours" in page.text
        assert 'id="trends-held-back"' in page.text and "counted as 1" in page.text
        assert 'href="/trends"' in c.get("/").text  # linked from the feed page's footer
        bad = c.get("/trends", params={"community": "x"})
        assert bad.status_code == 422 and 'id="trends-err-community"' in bad.text
