"""Retention (``[store] retention_days``, ``glassfeed prune``): old posts and the events on them go in one
transaction, the totals stay in the meta table, and a serving worker tailing the store drops what another process
pruned (through the change log, as for an author's erasure)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from glassfeed.cli import app
from glassfeed.feed.service import FeedService
from glassfeed.ingest import Ingestor
from glassfeed.settings import packaged_settings
from glassfeed.store import ERASED_LABEL, open_store
from glassfeed.store.retention import DAY_S, PRUNED_META_KEY, prune, pruned_totals
from pg_support import store_location

MIN = 60.0


def make_store(db: Path, now: float) -> None:
    """u0..u5 (u1..u5 follow u0); p0..p9 by u0, p<i> ``i`` hours old; u1 liked p8 and p2; u2 saw p9."""
    store = open_store(db)
    ing = Ingestor(store)
    ing.create_users([{"id": f"u{i}"} for i in range(6)])
    ing.create_posts(
        [{"id": f"p{i}", "author": "u0", "text": f"post {i}", "created_at": now - i * 60 * MIN} for i in range(10)]
    )
    ing.ingest_events([{"kind": "follow", "user": f"u{i}", "target_user": "u0"} for i in range(1, 6)])
    ing.ingest_events(
        [
            {"kind": "like", "user": "u1", "post": "p8"},
            {"kind": "like", "user": "u1", "post": "p2"},
            {"kind": "impression", "user": "u2", "post": "p9"},
        ]
    )
    store.close()


def test_prune_keeps_running_totals_and_refuses_a_zero_window(tmp_path):
    now = time.time()
    make_store(tmp_path / "t.db", now)
    store = open_store(tmp_path / "t.db")
    report = prune(store, 7.5 * 60 * MIN / DAY_S, now=now)  # 7.5 hours: p8 and p9 go
    assert report.posts == 2 and report.events == {"impression": 1, "like": 1} and report.events_total == 2
    assert report.before == pytest.approx(now - 7.5 * 60 * MIN)
    totals = pruned_totals(store)
    assert (totals["runs"], totals["posts"], totals["events"]) == (1, 2, {"impression": 1, "like": 1})
    assert totals["last"]["at"] == now and totals["last"]["posts"] == 2
    again = prune(store, 7.5 * 60 * MIN / DAY_S, now=now)
    assert again.posts == 0 and again.events == {} and pruned_totals(store) == totals  # nothing new: unchanged
    later = prune(store, 1.5 * 60 * MIN / DAY_S, now=now)  # p2..p7; the like on p2
    assert later.posts == 6 and later.events == {"like": 1}
    totals = json.loads(store.get_meta(PRUNED_META_KEY) or "{}")
    assert (totals["runs"], totals["posts"], totals["events"]) == (2, 8, {"impression": 1, "like": 2})
    assert store.count_events() == 5  # the follows stay
    with pytest.raises(ValueError):
        prune(store, 0)
    store.close()


def test_a_serving_worker_tailing_the_store_drops_what_another_process_pruned(tmp_path):
    now = time.time()
    db = tmp_path / "w.db"
    make_store(db, now)
    settings = packaged_settings().replace(serving={"tail_interval_ms": 0})
    svc = FeedService(Ingestor(open_store(db)), settings)
    other = open_store(db)  # the pruning process (glassfeed prune, or the Jetstream consumer)
    try:
        before = [it["post"] for it in svc.feed("u3", policy="chronological", limit=50)["items"]]
        assert {"p0", "p5", "p6"} <= set(before)
        assert prune(other, 5.5 * 60 * MIN / DAY_S, now=now).posts == 4  # p6..p9
        svc.catch_up()
        after = [it["post"] for it in svc.feed("u3", policy="chronological", limit=50)["items"]]
        assert set(after) == set(before) - {"p6", "p7", "p8", "p9"} and "p5" in after
        p6 = svc.store.post_idx("p6")
        assert p6 is not None and svc.state.posts.labels_of(p6) == [ERASED_LABEL]
    finally:
        svc.close()
        other.close()


def test_cli_prune_uses_the_setting_or_days_and_refuses_zero(tmp_path, monkeypatch):
    now = time.time()
    db = tmp_path / "c.db"
    make_store(db, now)
    loc = store_location(db)  # the file, or its PostgreSQL schema (GLASSFEED_TEST_STORE=postgresql)
    r = CliRunner().invoke(app, ["prune", "--db", loc])
    assert r.exit_code == 1 and "retention_days is 0" in r.output
    r = CliRunner().invoke(app, ["prune", "--db", loc, "--days", str(8.5 * 60 * MIN / DAY_S)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["posts"] == 1  # p9
    monkeypatch.setenv("GLASSFEED_STORE__RETENTION_DAYS", str(6.5 * 60 * MIN / DAY_S))
    r = CliRunner().invoke(app, ["prune", "--db", loc])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["posts"] == 2  # p7, p8
    r = CliRunner().invoke(app, ["prune", "--db", str(tmp_path / "missing.db"), "--days", "1"])
    assert r.exit_code != 0 and not (tmp_path / "missing.db").exists()  # never creates a store
