"""Fixtures shared across test modules."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# The HTTP server compiles the heads' trees whenever it loads a model version ([serving] compiled_trees,
# feed/compiled.py): seconds a load, and the suite loads trained models many times. Servers made from the environment
# in tests (create_app, `glassfeed serve` subprocesses) keep LightGBM's predict unless a test asks for compiled trees;
# tests/test_compiled.py checks that compiled trees give the same predictions and pages.
os.environ.setdefault("GLASSFEED_SERVING__COMPILED_TREES", "false")


@pytest.fixture(scope="session", autouse=True)
def store_backend():
    """Stores opened by path are SQLite files, or PostgreSQL schemas with ``GLASSFEED_TEST_STORE=postgresql``
    (``pg_support.stores_on_postgres_if_asked``; unreachable: skip, or fail under ``CI=true``)."""
    from pg_support import stores_on_postgres_if_asked

    with stores_on_postgres_if_asked():
        yield


@pytest.fixture(scope="session")
def trained_feed(tmp_path_factory):
    """(FeedService, SyntheticNetwork): 300 users x 6 days, models trained. Tests must not mutate it."""
    from feed_support import build_service

    return build_service(tmp_path_factory.mktemp("trained_feed"))


@pytest.fixture()
def fresh_feed(trained_feed, tmp_path):
    """A copy of ``trained_feed`` on its own store, free to mutate."""
    from feed_support import clone_service

    return clone_service(trained_feed[0], tmp_path), trained_feed[1]
