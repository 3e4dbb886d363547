"""``glassfeed experiments``: the packaged example TOML created, started, listed and reported on a small store; a bad
file refused in one line naming the field."""

from __future__ import annotations

import json
import time
from importlib import resources

from typer.testing import CliRunner

from glassfeed.cli import app
from glassfeed.ingest import Ingestor
from glassfeed.store import open_store

runner = CliRunner()
EXAMPLE = resources.files("glassfeed").joinpath("policies/experiments/bridging_vs_engagement.toml")


def test_create_start_list_report_and_refuse(tmp_path) -> None:
    db = tmp_path / "cli.db"
    ing = Ingestor(open_store(db))
    ing.create_users([{"id": f"u{i}"} for i in range(10)])
    ing.create_posts([{"id": "p1", "author": "u1", "text": "hello", "created_at": time.time() - 60}])
    ing.store.close()
    r = runner.invoke(app, ["experiments", "create", str(EXAMPLE), "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert "bridging-vs-engagement" in r.output and "draft" in r.output
    r = runner.invoke(app, ["experiments", "start", "bridging-vs-engagement", "--db", str(db)])
    assert r.exit_code == 0 and "buckets 0-5000" in r.output, r.output
    r = runner.invoke(app, ["experiments", "list", "--db", str(db)])
    assert r.exit_code == 0 and "bridging-vs-engagement  feed  running  control 50%, bridging 50%" in r.output
    page = tmp_path / "report.html"
    r = runner.invoke(app, ["experiments", "report", "bridging-vs-engagement", "--db", str(db), "--html", str(page)])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["exposed"] == {"control": 0, "bridging": 0} and rep["srm"] is None
    assert [g["metric"] for g in rep["experiment"]["guardrails"]] == ["divisive_share", "engagement", "retention"]
    assert "bridging-vs-engagement" in page.read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE.read_text().replace('policy = "bridging"', 'policy = "nope"'))
    r = runner.invoke(app, ["experiments", "create", str(bad), "--db", str(db)])
    assert r.exit_code != 0 and "arms.1.policy" in r.output and "unknown feed policy 'nope'" in r.output
    r = runner.invoke(app, ["experiments", "stop", "bridging-vs-engagement", "--db", str(db)])
    assert r.exit_code == 0 and "stopped" in r.output
