"""One Settings object: defaults.toml, a glassfeed.toml, GLASSFEED_* variables and overrides, each validated with
the source and key named; and a [state] section in a user's file reaching what the served feed computes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from glassfeed.api.app import create_app
from glassfeed.feed.service import FeedService
from glassfeed.settings import SettingsError, load_settings, packaged_settings
from glassfeed.web.routes import demo_mode, find_report

KEY = "settings-test-key"


def _toml(tmp_path: Path, text: str, name: str = "glassfeed.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_packaged_defaults_are_the_defaults_file():
    s = load_settings(environ={})
    assert s == packaged_settings()
    assert s.state.counter_half_life_h == 72.0 and s.serving.clock == "wall" and s.store.synchronous == "FULL"
    assert s.api_key is None and s.state.affinity_weights["report"] == -5.0


def test_file_then_environment_then_overrides(tmp_path):
    cfg = _toml(
        tmp_path,
        '[state]\ncounter_half_life_h = 12.0\n[serving]\nclock = "data"\n[state.affinity_weights]\nlike = 4.0\n',
    )
    s = load_settings(cfg, environ={})
    assert s.state.counter_half_life_h == 12.0 and s.serving.clock == "data"
    assert s.state.affinity_weights["like"] == 4.0 and s.state.affinity_weights["report"] == -5.0  # merged
    env = {"GLASSFEED_STATE__COUNTER_HALF_LIFE_H": "24", "GLASSFEED_DB": "x/y.db", "GLASSFEED_CONFIG": "ignored"}
    s = load_settings(cfg, environ=env)
    assert s.state.counter_half_life_h == 24.0 and s.store.path == "x/y.db" and s.serving.clock == "data"
    s = load_settings(cfg, environ=env, state={"counter_half_life_h": 6.0}, store={"path": tmp_path / "z.db"})
    assert s.state.counter_half_life_h == 6.0 and s.store.path == str(tmp_path / "z.db")


def test_config_path_from_the_environment(tmp_path):
    cfg = _toml(tmp_path, "[state]\ntrending_half_life_h = 2.0\n")
    assert load_settings(environ={"GLASSFEED_CONFIG": str(cfg)}).state.trending_half_life_h == 2.0


def test_environment_variable_types_and_aliases():
    s = load_settings(
        environ={
            "GLASSFEED_WEB_DEMO": "yes",
            "GLASSFEED_BSKY_FEEDS": "engagement, bridging",
            "GLASSFEED_SERVING__IMPRESSION_FLUSH_MS": "5",
            "GLASSFEED_API_KEY": "k",
        }
    )
    assert s.web.demo is True and s.bluesky.feeds == ("engagement", "bridging")
    assert s.serving.impression_flush_ms == 5.0 and s.api_key == "k"


def test_unknown_key_in_the_file_is_refused_naming_file_and_key(tmp_path):
    cfg = _toml(tmp_path, "[state]\ncounter_half_life = 12.0\n")
    with pytest.raises(SettingsError) as e:
        load_settings(cfg, environ={})
    assert str(e.value).startswith(f"{cfg}: [state] counter_half_life: unknown key")


def test_unknown_section_is_refused(tmp_path):
    cfg = _toml(tmp_path, "[sate]\ncounter_half_life_h = 12.0\n")
    with pytest.raises(SettingsError, match=r"\[sate\]: unknown section"):
        load_settings(cfg, environ={})


def test_unknown_environment_key_is_refused_naming_the_variable():
    with pytest.raises(
        SettingsError,
        match=r"^environment variable GLASSFEED_STATE__HALF_LIFE: \[state\] "
        r"half_life: unknown key",
    ):
        load_settings(environ={"GLASSFEED_STATE__HALF_LIFE": "3"})


@pytest.mark.parametrize("where", ["file", "env", "override"])
def test_mistyped_serving_clock_is_refused(tmp_path, where):
    if where == "file":
        cfg = _toml(tmp_path, '[serving]\nclock = "wal"\n')
        kw: dict = {"config_path": cfg, "environ": {}}
        source = str(cfg)
    elif where == "env":
        kw, source = {"environ": {"GLASSFEED_SERVING__CLOCK": "wal"}}, "environment variable GLASSFEED_SERVING__CLOCK"
    else:
        kw, source = {"environ": {}, "serving": {"clock": "wal"}}, "overrides"
    with pytest.raises(SettingsError) as e:
        load_settings(**kw)
    assert str(e.value).startswith(f"{source}: [serving] clock: ") and "'wall' or 'data'" in str(e.value)


def test_bad_values_are_refused():
    with pytest.raises(SettingsError, match=r"\[state\] counter_half_life_h: Input should be greater than 0"):
        load_settings(environ={"GLASSFEED_STATE__COUNTER_HALF_LIFE_H": "0"})
    with pytest.raises(SettingsError, match=r"\[state\] affinity_weights"):
        load_settings(environ={}, state={"affinity_weights": {"smile": 1.0}})
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(environ={"GLASSFEED_CONFIG": __file__})
    with pytest.raises(SettingsError, match="settings file not found"):
        load_settings("/nonexistent/glassfeed.toml", environ={})


def test_feed_service_refuses_a_mistyped_clock(fresh_feed):
    svc, _ = fresh_feed
    with pytest.raises(SettingsError, match=r"\[serving\] clock"):
        FeedService(svc.ingestor, clock="dat")


# ------------------------------------------------------------------ a [state] section reaches the served feed
def _copy_store(svc: FeedService, folder: Path) -> Path:
    """A copy of the trained store and its models (each app below gets its own, so logged impressions of one
    cannot change the other's page)."""
    folder.mkdir()
    db = folder / "feed.db"
    svc.store.backup(db)
    shutil.copytree(svc.models_folder, folder / "feed.db.models")
    return db


def _page(config: Path, db: Path, user: str) -> list[tuple[str, float]]:
    app = create_app(load_settings(config, environ={}, store={"path": db}, api={"key": KEY}))
    with TestClient(app) as client:
        r = client.get(
            f"/v1/users/{user}/feed",
            params={"policy": "engagement", "limit": 20},
            headers={"Authorization": f"Bearer {KEY}"},
        )
    assert r.status_code == 200, r.text
    return [(it["post"], it["score"]) for it in r.json()["items"]]


def test_state_section_in_the_users_file_changes_the_served_page(trained_feed, tmp_path):
    """The decayed engagement counters the heads read are computed with the file's half-life: the same store,
    models and clock give other scores once ``[state] counter_half_life_h`` is set in glassfeed.toml (before,
    ``StateConfig.from_defaults`` read only the packaged defaults and the page did not change)."""
    svc, _ = trained_feed
    user = "u0"
    serving = '[serving]\nclock = "data"\ncompiled_trees = false\n'  # compiling costs seconds a load, changes no score
    base = _toml(tmp_path, serving, "default.toml")
    fast = _toml(tmp_path, serving + "[state]\ncounter_half_life_h = 0.5\n", "fast.toml")
    default_page = _page(base, _copy_store(svc, tmp_path / "a"), user)
    again = _page(base, _copy_store(svc, tmp_path / "b"), user)
    fast_page = _page(fast, _copy_store(svc, tmp_path / "c"), user)
    assert default_page and default_page == again  # the page is a function of store, models, clock and settings
    assert fast_page != default_page


def test_web_flags_come_from_the_settings_not_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("GLASSFEED_WEB_DEMO", raising=False)
    report = tmp_path / "report.html"
    report.write_text("<h1>r</h1>")
    on = create_app(
        load_settings(
            environ={"GLASSFEED_WEB_DEMO": "1", "GLASSFEED_AUDIT_REPORT": str(report)},
            store={"path": tmp_path / "on.db"},
        )
    )
    off = create_app(load_settings(environ={}, store={"path": tmp_path / "off.db"}))
    monkeypatch.setenv("GLASSFEED_WEB_DEMO", "1")  # read when settings are built, never by the routes
    monkeypatch.chdir(tmp_path / "..")
    with TestClient(on), TestClient(off):
        assert demo_mode(on) and not demo_mode(off)
        assert find_report(on) == report and find_report(off, root=tmp_path / "empty") is None
