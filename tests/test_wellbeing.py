"""Wellbeing: time in the app from served pages, the daily budget (bounded) and its stopping cue in the person's
day, and the "was this worth your time?" prompt answered by a worth_it event."""

from __future__ import annotations

import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from glassfeed.api.app import create_app
from glassfeed.settings import load_settings
from glassfeed.state.usage import Usage

KEY = "test-service-key"
H = {"Authorization": f"Bearer {KEY}"}


def test_usage_counts_sessions_from_page_times():
    u = Usage(keep_s=2 * 86400)
    t0 = 1_780_000_000.0
    pages = [t0, t0 + 60, t0 + 120, t0 + 3600, t0 + 3630]  # two sessions: 2 min + 0.5 min of gaps
    u.apply(np.array([7] * len(pages) * 3), np.repeat(pages, 3))  # three impressions per page
    assert u.seconds(7, t0, t0 + 7200, 600.0, 60.0) == pytest.approx(120 + 30 + 2 * 60)
    assert u.seconds(7, t0 + 3000, t0 + 7200, 600.0, 60.0) == pytest.approx(30 + 60)
    u.apply(np.array([7]), np.array([t0 + 3 * 86400]))  # two days later: the old pages are forgotten
    assert u.seconds(7, 0, t0 + 3 * 86400, 600.0, 60.0) == pytest.approx(60)
    assert u.seconds(8, 0, t0, 600.0, 60.0) == 0.0


@pytest.fixture()
def client(tmp_path):
    settings = load_settings(store={"path": tmp_path / "w.db"}, api={"key": KEY}, wellbeing={"survey_every_pages": 2})
    with TestClient(create_app(settings)) as c:
        c.post("/v1/users", json={"users": [{"id": "alice"}, {"id": "bob"}]}, headers=H)
        now = time.time()
        posts = [{"id": f"p{i}", "author": "bob", "text": f"post {i}", "created_at": now - 100 - i} for i in range(8)]
        c.post("/v1/posts", json=posts, headers=H)
        yield c


def test_budget_is_bounded_and_the_stopping_cue_appears_once_reached(client):
    r = client.put("/v1/users/alice/prefs", json={"daily_minutes": 601}, headers=H)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "daily_minutes"
    assert client.put("/v1/users/alice/prefs", json={"daily_minutes": 5}, headers=H).status_code == 200
    page = client.get("/v1/users/alice/feed", params={"limit": 2}, headers=H).json()
    assert page["stopping_cue"] is None  # a minute so far
    now = time.time()
    midnight = now - now % 86400  # alice has no time zone set: UTC
    spent = [t for t in (now - 540, now - 300, now - 60) if t > midnight]
    if len(spent) < 3:
        pytest.skip("too close to UTC midnight for a ten-minute session today")
    rows = [{"kind": "impression", "user": "alice", "post": "p0", "ts": t} for t in spent]
    assert client.post("/v1/events", json=rows, headers=H).status_code == 200
    cue = client.get("/v1/users/alice/feed", params={"limit": 2}, headers=H).json()["stopping_cue"]
    assert cue is not None and cue["budget_minutes"] == 5 and cue["used_minutes"] >= 9
    assert "good place to stop" in cue["message"]
    client.put("/v1/users/alice/prefs", json={"daily_minutes": 0}, headers=H)  # removed
    assert client.get("/v1/users/alice/feed", params={"limit": 2}, headers=H).json()["stopping_cue"] is None


def test_worth_it_prompt_every_nth_page_and_its_answer(client):
    first = client.get("/v1/users/alice/feed", params={"limit": 2}, headers=H).json()
    assert first["survey"] is None
    second = client.get("/v1/users/alice/feed", params={"limit": 2, "cursor": first["cursor"]}, headers=H).json()
    survey = second["survey"]
    assert survey["question"] == "Was this worth your time?" and survey["answer"]["request_id"] == second["request_id"]
    answer = {"kind": "worth_it", "user": "alice", "request_id": survey["answer"]["request_id"], "value": 1}
    assert client.post("/v1/events", json=[answer], headers=H).status_code == 200
    assert client.get("/v1/feed", params={"limit": 2}).json()["survey"] is None  # nobody to ask
