"""Operations (issue 12, item 4): /metrics, /readyz, request ids and JSON log lines."""

from __future__ import annotations

import json
import logging
import re
import time

import pytest
from fastapi.testclient import TestClient

from glassfeed.api.app import create_app
from glassfeed.api.observability import REQUEST_ID, JsonFormatter
from glassfeed.ingest import Ingestor
from glassfeed.settings import load_settings
from glassfeed.store import open_store

KEY = {"X-API-Key": "ops-key"}


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture()
def app_and_db(tmp_path):
    db = tmp_path / "ops.db"
    settings = load_settings(
        store={"path": db}, api={"key": "ops-key", "ready_max_lag_events": 0}, serving={"tail_interval_ms": 0}
    )  # no tail thread: the test decides when the state catches up
    app = create_app(settings)
    with TestClient(app) as c:
        now = time.time()
        c.post("/v1/users", json=[{"id": f"u{i}"} for i in range(3)], headers=KEY)
        c.post("/v1/posts", json=[{"id": f"p{i}", "author": "u1", "created_at": now - 60 * i} for i in range(5)],
               headers=KEY)  # fmt: skip
        yield c, db


def test_metrics_count_requests_by_route_template_and_feed_pages(app_and_db) -> None:
    c, _ = app_and_db
    for uid in ("u0", "u2", "no-such-user"):
        c.get(f"/v1/users/{uid}/feed", headers=KEY)
    c.get("/v1/feed")
    c.get("/not/a/route/12345")
    text = c.get("/metrics").text
    route = "/v1/users/{user_id}/feed"
    assert _sample(text, "glassfeed_http_requests_total", method="GET", route=route, status="200") == 2
    assert _sample(text, "glassfeed_http_requests_total", method="GET", route=route, status="404") == 1
    assert _sample(text, "glassfeed_http_requests_total", route="unmatched", status="404") == 1  # no raw paths
    assert "12345" not in text
    assert _sample(text, "glassfeed_http_request_duration_seconds_count", method="GET", route=route) == 3
    pages = sum(_sample(text, "glassfeed_feed_pages_total", policy=p) for p in ("engagement",))
    assert pages == 3  # two personal pages and the anonymous one (engagement is the default policy)
    assert _sample(text, "glassfeed_feed_candidates_count") == 3
    assert _sample(text, "glassfeed_model_info", version="untrained") == 1
    assert _sample(text, "glassfeed_ingest_lag_events") == 0
    assert "glassfeed_impression_queue_depth" in text


def test_feed_pages_name_their_model_version(app_and_db) -> None:
    c, _ = app_and_db
    page = c.get("/v1/users/u0/feed", headers=KEY).json()
    assert page["model_version"] == "untrained" and "fallback" in page


def test_readyz_reports_each_check_and_fails_while_the_state_lags(app_and_db) -> None:
    c, db = app_and_db
    r = c.get("/readyz")
    assert r.status_code == 200 and r.json()["ready"] is True
    assert set(r.json()["checks"]) == {"store", "state", "models"}
    # events committed by another process (another store handle) are not yet in this server's state
    other = open_store(db)
    Ingestor(other).ingest_events([{"kind": "like", "user": "u0", "post": "p1"}])
    other.close()
    r = c.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["state"] == {"ok": False, "lag_events": 1, "max_lag_events": 0}
    assert _sample(c.get("/metrics").text, "glassfeed_ingest_lag_events") == 1
    assert c.app.state.feed.catch_up() == 1  # what the tail thread does every [serving] tail_interval_ms
    assert c.get("/readyz").status_code == 200


def test_request_ids_are_echoed_when_well_formed_and_made_otherwise(app_and_db) -> None:
    c, _ = app_and_db
    assert c.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    for bad in (b"x" * 65, b"a b", "é".encode()):
        rid = c.get("/healthz", headers={"X-Request-ID": bad}).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
    assert c.get("/nope").headers["x-request-id"]  # errors carry one too


def test_json_log_lines_carry_the_request_id_and_extra_fields() -> None:
    token = REQUEST_ID.set("rid-7")
    try:
        rec = logging.LogRecord("glassfeed.access", logging.INFO, __file__, 1, "GET %s", ("/x",), None)
        rec.status = 200
        out = json.loads(JsonFormatter().format(rec))
    finally:
        REQUEST_ID.reset(token)
    assert out["msg"] == "GET /x" and out["request_id"] == "rid-7" and out["status"] == 200
    assert out["level"] == "info" and out["logger"] == "glassfeed.access"
