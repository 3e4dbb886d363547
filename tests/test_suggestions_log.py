"""Logged suggestions (issue 19 item 1): serving a list logs one ``suggestion_impression`` per account (through the
feed's impression writer), the kind round-trips through the events API, a follow within the label window after an
impression is a positive label and none a negative, and ``train`` switches from the graph holdout to the log once
enough impressions are logged, and says so."""

from __future__ import annotations

import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from glassfeed.api.app import create_app
from glassfeed.domain import EventBatch, EventKind
from glassfeed.settings import load_settings
from glassfeed.suggest import generators as gen
from glassfeed.suggest.model import HOLDOUT, LOGGED, FollowModel, follow_labels, logged_examples
from glassfeed.suggest.policy import ModelSettings, load_model_settings
from glassfeed.suggest.service import SURFACE, SuggestionService

KEY = "test-service-key"
H = {"Authorization": f"Bearer {KEY}"}
HOUR = 3600.0
N = 24  # people p0..p23 in two communities; each follows the next three (a ring), so friends of friends exist
T0 = time.time() - 20 * 24 * HOUR  # the history: follows at T0, suggestions shown at T0 + 2 days


def _ring() -> list[tuple[str, str]]:
    return [(f"p{i}", f"p{(i + d) % N}") for i in range(N) for d in (1, 2, 3)]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = load_settings(store={"path": tmp_path_factory.mktemp("sugglog") / "s.db"}, api={"key": KEY})
    with TestClient(create_app(settings)) as c:
        r = c.post("/v1/users", json={"users": [{"id": f"p{i}", "community": i % 2} for i in range(N)]}, headers=H)
        assert r.status_code in (200, 201), r.text
        c.tokens = {u["id"]: u["token"] for u in r.json()["users"]}
        events = [{"kind": "follow", "user": u, "target_user": v, "ts": T0} for u, v in _ring()]
        assert c.post("/v1/events", json=events, headers=H).status_code == 200
        yield c


def _logged(client: TestClient) -> tuple[EventBatch, list[str | None], list[str | None]]:
    """Every logged suggestion impression (after a flush of the impression writer), with its request ids and
    surfaces."""
    client.app.state.feed.flush_impressions()  # type: ignore[attr-defined]
    ev = client.app.state.store.events_in_window(  # type: ignore[attr-defined]
        kinds=[EventKind.SUGGESTION_IMPRESSION], object_columns=True
    )
    none: list[str | None] = [None] * len(ev)
    rids = none if ev.request_id is None else ev.request_id.tolist()
    return ev, rids, none if ev.surface is None else ev.surface.tolist()


def test_serving_logs_one_suggestion_impression_per_item(client):
    store = client.app.state.store
    before = len(_logged(client)[0])
    tok = {"Authorization": f"Bearer {client.tokens['p0']}"}
    body = client.get("/v1/users/p0/suggestions?limit=4", headers=tok).json()
    assert body["request_id"].startswith("s:growth:") and len(body["items"]) == 4
    ev, rids, surfaces = _logged(client)
    new = np.arange(before, len(ev))
    assert len(new) == 4  # one per item, after the flush
    assert ev.user[new].tolist() == [store.user_idx("p0")] * 4
    assert ev.target_user[new].tolist() == [store.user_idx(i["user"]) for i in body["items"]]
    assert ev.position[new].tolist() == [0, 1, 2, 3]
    assert [rids[i] for i in new] == [body["request_id"]] * 4 and [surfaces[i] for i in new] == [SURFACE] * 4
    again = client.get("/v1/users/p0/suggestions?limit=4&policy=bridging", headers=H).json()
    assert again["request_id"].startswith("s:bridging:") and again["request_id"] != body["request_id"]
    assert len(_logged(client)[0]) == before + 4 + len(again["items"])


def test_suggestion_impression_round_trips_through_the_events_api(client):
    ok = {"kind": "suggestion_impression", "user": "p1", "target_user": "p9", "position": 2,
          "request_id": "s:growth:abc", "surface": "suggestions", "id": "client-si-1"}  # fmt: skip
    r = client.post("/v1/events", json=[ok], headers=H)
    assert r.status_code == 200, r.text
    ev = client.app.state.store.events_in_window(kinds=[EventKind.SUGGESTION_IMPRESSION], object_columns=True)
    i = ev.id.tolist().index("client-si-1")
    assert ev.target_user[i] == client.app.state.store.user_idx("p9") and ev.position[i] == 2
    bad = {k: v for k, v in ok.items() if k not in ("target_user", "id")}
    r = client.post("/v1/events", json=[bad], headers=H)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert [(d["index"], d["field"]) for d in detail] == [(0, "target_user")]
    assert "suggestion_impression" in detail[0]["reason"]
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    variant = next(
        v for v in body["oneOf"][0]["items"]["oneOf"] if v["properties"]["kind"]["const"] == "suggestion_impression"
    )
    assert variant["required"] == ["kind", "target_user", "user"]  # documented as the server checks it


def test_follow_within_the_window_is_positive_and_none_is_negative():
    w = 72 * HOUR
    # impressions: (1 -> 2) followed 1 h later; (1 -> 3) followed 4 days later; (1 -> 4) never; (2 -> 1) followed
    # before it was shown (then shown again: that earlier follow is not a label); (3 -> 5) shown twice, the follow
    # between the two showings labels the first only
    user = np.array([1, 1, 1, 2, 3, 3])
    shown = np.array([2, 3, 4, 1, 5, 5])
    ts = np.array([100.0, 100.0, 100.0, 100.0, 100.0, 200.0])
    f_user, f_target = np.array([1, 1, 2, 3, 4]), np.array([2, 3, 1, 5, 1])
    f_ts = np.array([100.0 + HOUR, 100.0 + 4 * 24 * HOUR, 50.0, 150.0, 120.0])
    y = follow_labels(user, shown, ts, f_user, f_target, f_ts, w)
    assert y.tolist() == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert follow_labels(user, shown, ts, f_user[:0], f_target[:0], f_ts[:0], w).tolist() == [0.0] * 6


def _small(min_logged: int) -> ModelSettings:
    ms = load_model_settings()
    fast = ms.lightgbm.model_copy(update={"rounds": 5, "min_data_in_leaf": 2, "num_threads": 1})
    t = ms.training.model_copy(update={"min_logged_impressions": min_logged, "snapshot_hours": 24.0})
    return ms.model_copy(update={"lightgbm": fast, "training": t})


def test_training_switches_to_logged_suggestions_past_the_threshold(client):
    store = client.app.state.store
    shown_at = T0 + 2 * 24 * HOUR
    # every person was shown the three people two to four places past their last follow (friends of friends);
    # people with an even number followed the first within an hour, the others followed nobody
    imps: list[dict[str, object]] = []
    follows: list[dict[str, object]] = []
    for i in range(N):
        rid = f"s:growth:t{i}"
        for pos, d in enumerate((4, 5, 6)):
            imps.append(
                {"kind": "suggestion_impression", "user": f"p{i}", "target_user": f"p{(i + d) % N}",
                 "position": pos, "request_id": rid, "surface": "suggestions", "ts": shown_at}
            )  # fmt: skip
        if i % 2 == 0:
            follows.append(
                {"kind": "follow", "user": f"p{i}", "target_user": f"p{(i + 4) % N}", "surface": "suggestions",
                 "request_id": rid, "ts": shown_at + HOUR}
            )  # fmt: skip
    assert client.post("/v1/events", json=imps + follows, headers=H).status_code == 200
    feed = client.app.state.feed
    feed.flush_impressions()
    n_logged = store.count_events(EventKind.SUGGESTION_IMPRESSION)  # with those of the other tests (all older)
    assert n_logged >= 3 * N

    few = SuggestionService(feed, settings=_small(min_logged=n_logged + 1))
    info = few.retrain()
    assert info["trained_on"] == HOLDOUT and info["logged_impressions"] == 3 * N
    assert f"fewer than {n_logged + 1}" in info["why"]

    svc = SuggestionService(feed, settings=_small(min_logged=3 * N))
    info = svc.retrain()
    assert info["trained_on"] == LOGGED and info["examples"] == 3 * N and info["positives"] == N // 2
    assert info["open_impressions"] == n_logged - 3 * N  # served just now: their windows are still open
    saved = FollowModel.load(svc.folder)
    assert saved is not None and saved.trained_on_ == LOGGED
    _, ranked_by = svc.rank(np.array([store.user_idx("p1")]), svc.policy("growth"), 5)
    assert ranked_by == f"learned P(follow | suggested), trained on {LOGGED}"

    # point in time: the label's own follow (p0 -> p4, made after the impression) is not in p0's features
    X, y, _ = logged_examples(store, svc.graph(), svc.settings.training, now=feed.now())
    p0, p4 = store.user_idx("p0"), store.user_idx("p4")
    ev = store.events_in_window(kinds=[EventKind.SUGGESTION_IMPRESSION])
    keep = ev.ts + 72 * HOUR <= feed.now()
    row = np.flatnonzero((ev.user[keep] == p0) & (ev.target_user[keep] == p4))[0]
    assert y[row] == 1.0
    assert X[row, gen.FEATURES.index("your_following")] == 3  # p1..p3, not p4 as well (4 now)
    assert svc.graph().out_degree[p0] == 4
