"""Browser fixtures: Debian's chromium via Playwright, a real uvicorn server on a free 127.0.0.1 port over a
small generated + trained store (built once per session). Skips with a message when chromium is missing."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from live_server import start_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
API_KEY = "browser-test-service-key"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session", autouse=True)
def _need_chromium():
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.skip("chromium not installed: apt-get install chromium")
    pytest.importorskip("playwright.sync_api", reason="the Python 'playwright' package is not installed")


def build_store(folder: Path, n_users: int = 300, days: int = 5, seed: int = 7) -> Path:
    """A generated network written through the Ingestor and trained; returns the db path (store closed)."""
    from glassfeed.feed.service import FeedService
    from glassfeed.importers.synthetic import write_network
    from glassfeed.ingest import Ingestor
    from glassfeed.sim.generate import generate_network
    from glassfeed.store import open_store

    net = generate_network(n_users, days, seed)
    end = max(float(net.events.ts.max()), float(net.post_created.max())) + 60.0
    db = folder / "web.db"
    store = open_store(db, "NORMAL")
    ing = Ingestor(store, clock=lambda: end)
    write_network(net, ing)
    t0 = time.perf_counter()
    FeedService(ing, clock="data").retrain(max_rows=100_000)
    print(f"\nweb test store: {n_users} users x {days} days, trained in {time.perf_counter() - t0:.1f} s")
    store.close()
    return db


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """(base_url, app): uvicorn serving create_app + the web page in a thread, data clock, demo sign-in on."""
    from glassfeed.api.app import create_app
    from glassfeed.settings import load_settings
    from glassfeed.web.routes import install

    folder = tmp_path_factory.mktemp("web")
    db = build_store(folder)
    cfg = folder / "glassfeed.toml"
    cfg.write_text('[serving]\nclock = "data"\n[web]\ndemo = true\n')
    app = create_app(load_settings(cfg, store={"path": db}, api={"key": API_KEY}))
    install(app)
    base, stop = start_server(app)
    yield base, app
    stop()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    pg = ctx.new_page()
    pg.set_default_timeout(10_000)
    blocked: list[str] = []  # the page must work under the server's Content-Security-Policy (no inline script)
    pg.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    yield pg
    ctx.close()
    assert not blocked, blocked


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
