"""CLI: generate writes a network through the Ingestor; errors are one stderr line and a non-zero exit."""

from __future__ import annotations

import orjson
from typer.testing import CliRunner

from glassfeed.cli import app
from glassfeed.store import open_store

runner = CliRunner()


def test_generate_then_stats(tmp_path):
    db = tmp_path / "g.db"
    r = runner.invoke(app, ["generate", "--users", "300", "--days", "3", "--seed", "2", "--db", str(db)])
    assert r.exit_code == 0, r.output
    st = open_store(db)
    n_users, n_posts, n_events = st.count("users"), st.count("posts"), st.count("events")
    assert n_users == 300 and n_posts > 100 and n_events > 1000 and st.count("follows") > 300
    assert st.query("SELECT interests FROM users WHERE id = 'u0'")[0][0].count(",") == 2
    st.close()
    r = runner.invoke(app, ["stats", "--db", str(db)])
    assert r.exit_code == 0 and f"{n_events:,}" in r.output
    again = runner.invoke(app, ["generate", "--users", "10", "--days", "1", "--db", str(db)])
    assert again.exit_code == 1 and "already has users" in again.output


def test_import_bad_file_is_one_line_and_nonzero(tmp_path):
    db = tmp_path / "i.db"
    path = tmp_path / "ev.jsonl"
    path.write_bytes(orjson.dumps({"kind": "like", "user": "ghost", "post": "p"}) + b"\n")
    r = runner.invoke(app, ["import", str(path), "--db", str(db)])
    assert r.exit_code == 1
    assert "ev.jsonl:1: user: unknown user 'ghost'" in r.output
    missing = runner.invoke(app, ["import", str(tmp_path / "nope.jsonl"), "--db", str(db)])
    assert missing.exit_code == 1 and "file not found" in missing.output
    users = tmp_path / "u.jsonl"
    users.write_bytes(orjson.dumps({"id": "a"}) + b"\n" + orjson.dumps({"id": "b"}) + b"\n")
    ok = runner.invoke(app, ["import", str(users), "--kind", "users", "--db", str(db)])
    assert ok.exit_code == 0 and "imported 2 users" in ok.output


def test_import_dataset_unknown_name(tmp_path):
    r = runner.invoke(app, ["import-dataset", "imdb", "--db", str(tmp_path / "d.db")])
    assert r.exit_code == 1 and "unknown dataset 'imdb'" in r.output
