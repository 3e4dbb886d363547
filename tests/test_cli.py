"""CLI: generate writes a network through the Ingestor; errors are one stderr line and a non-zero exit."""

from __future__ import annotations

import shutil

import orjson
import typer.main
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
    users = st.load_users()
    assert len(users["interests"][users["id"].index("u0")]) == 3
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


# ------------------------------------------------------------------ settings at the edge (--config, environment)
def test_bad_config_file_is_one_clear_line(tmp_path):
    cfg = tmp_path / "glassfeed.toml"
    cfg.write_text("[serving]\nclok = 'data'\n")
    r = runner.invoke(app, ["--config", str(cfg), "stats", "--db", str(tmp_path / "s.db")])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and f"{cfg}: [serving] clok: unknown key" in lines[0]
    gone = runner.invoke(app, ["--config", str(tmp_path / "nope.toml"), "policy", "list"])
    assert gone.exit_code == 2 and len(gone.output.strip().splitlines()) == 1
    assert "nope.toml: settings file not found" in gone.output


def test_mistyped_clock_in_the_environment_is_one_clear_line(tmp_path):
    r = runner.invoke(app, ["stats", "--db", str(tmp_path / "s.db")], env={"GLASSFEED_SERVING__CLOCK": "wal"})
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1
    assert "environment variable GLASSFEED_SERVING__CLOCK: [serving] clock:" in r.output


def test_config_file_names_the_store_and_db_overrides_it(tmp_path):
    cfg = tmp_path / "glassfeed.toml"
    cfg.write_text(f'[store]\npath = "{tmp_path / "from-config.db"}"\nsynchronous = "normal"\n')
    for name in ("from-config.db", "flag.db"):  # read commands refuse a store that does not exist
        open_store(tmp_path / name).close()
    r = runner.invoke(app, ["--config", str(cfg), "stats"])
    assert r.exit_code == 0, r.output
    assert "from-config.db" in r.output and (tmp_path / "from-config.db").exists()
    r = runner.invoke(app, ["--config", str(cfg), "stats", "--db", str(tmp_path / "flag.db")])
    assert r.exit_code == 0 and "flag.db" in r.output and "from-config.db" not in r.output


def test_every_command_group_is_registered():
    names = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert {
        "generate",
        "import",
        "import-dataset",
        "serve",
        "demo",
        "stats",
        "train",
        "feed",
        "policy",
        "simulate",
        "evaluate",
        "evaluate-pipeline",
        "audit",
        "bluesky",
    } <= names


def test_evaluate_pipeline_refuses_an_unknown_import_recipe_by_name():
    r = runner.invoke(app, ["evaluate-pipeline", "--recipe", "nope"])
    assert r.exit_code == 2
    assert "--recipe: unknown import recipe 'nope'; expected one of protocol, faithful, aligned" in r.output


def test_state_section_of_the_config_reaches_the_cli_feed(trained_feed, tmp_path):
    """``glassfeed --config`` with a ``[state]`` half-life prints other scores for the same store and models
    (the feed command logs no impressions, so both runs read the same store)."""
    svc, _ = trained_feed
    db = tmp_path / "feed.db"
    svc.store.backup(db)
    shutil.copytree(svc.models_folder, tmp_path / "feed.db.models")
    fast = tmp_path / "fast.toml"
    fast.write_text("[state]\ncounter_half_life_h = 0.5\n")
    args = ["feed", "u0", "--db", str(db), "--policy", "engagement", "--limit", "10"]
    default = runner.invoke(app, args)
    again = runner.invoke(app, args)
    changed = runner.invoke(app, ["--config", str(fast), *args])
    assert default.exit_code == 0 and changed.exit_code == 0, default.output + changed.output

    def page(r):  # the table, without the "next page: --cursor ..." line (a new paging session each run)
        return [line for line in r.output.splitlines() if not line.startswith("next page:")]

    assert page(default) == page(again) and page(changed) != page(default)


def test_bluesky_ingest_refuses_a_stream_url_that_is_not_a_websocket(tmp_path):
    db = tmp_path / "s.db"
    r = runner.invoke(app, ["bluesky", "ingest", "--db", str(db), "--url", "https://example.org/subscribe"])
    assert r.exit_code == 1
    assert "must be ws:// or wss://" in r.output and "https://example.org/subscribe" in r.output
    assert not db.exists()  # refused before a store is made
