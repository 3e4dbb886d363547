"""The "why" cache keeps a bounded number of pages per person and of people (its memory does not grow with
traffic), and answers for every post on the pages it keeps."""

from __future__ import annotations

import shutil

import pytest

from glassfeed.feed.service import FeedError, FeedService
from glassfeed.ingest import Ingestor
from glassfeed.settings import packaged_settings
from glassfeed.store import open_store


@pytest.fixture()
def small_cache(trained_feed, tmp_path):
    svc, _ = trained_feed
    svc.store.backup(tmp_path / "feed.db")
    shutil.copytree(svc.models_folder, tmp_path / "feed.db.models")
    now = svc.now()
    settings = packaged_settings().replace(serving={"explained_pages_per_user": 2, "explained_users": 3})
    return FeedService(Ingestor(open_store(tmp_path / "feed.db"), clock=lambda: now), settings, clock="data")


def test_why_answers_for_the_kept_pages_only(small_cache: FeedService) -> None:
    svc = small_cache
    first = svc.feed("u1", limit=5)
    second = svc.feed("u1", limit=5, cursor=first["cursor"])
    third = svc.feed("u1", limit=5, cursor=second["cursor"])
    assert all(len(page["items"]) == 5 for page in (first, second, third))  # otherwise the loops prove nothing
    for page in (second, third):  # the last two pages are kept, every item on them explained
        for item in page["items"]:
            assert svc.why("u1", item["post"])["post"] == item["post"]
    for item in first["items"]:  # the oldest page was dropped (pages never repeat a post within a session)
        with pytest.raises(FeedError):
            svc.why("u1", item["post"])
    assert len(svc.explanations[svc.user_idx("u1")]) == 2


def test_least_recently_served_people_are_dropped(small_cache: FeedService) -> None:
    svc = small_cache
    pages = {u: svc.feed(u, limit=3) for u in ("u1", "u2", "u3", "u4")}
    assert all(page["items"] for page in pages.values())
    assert len(svc.explanations) == 3
    with pytest.raises(FeedError, match="not served"):
        svc.why("u1", pages["u1"]["items"][0]["post"])
    assert svc.why("u4", pages["u4"]["items"][0]["post"])["post"] == pages["u4"]["items"][0]["post"]
    svc.why("u2", pages["u2"]["items"][0]["post"])  # still kept
