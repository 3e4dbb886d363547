"""Real-dataset importers (skipped when ../shared/data is absent) and the synthetic network writer."""

from __future__ import annotations

import numpy as np
import pytest

from glassfeed.domain import EventKind
from glassfeed.importers import DATASETS, import_dataset
from glassfeed.importers.synthetic import write_network
from glassfeed.ingest import Ingestor
from glassfeed.settings import packaged_settings
from glassfeed.sim.generate import generate_network
from glassfeed.store import open_store


def _need(name: str) -> None:
    data_dir = packaged_settings().data_dir  # where import_dataset looks when given no folder
    if not (data_dir / DATASETS[name][2]).is_dir():
        pytest.skip(f"dataset {name} not present under {data_dir}")


@pytest.fixture()
def ing(tmp_path):
    st = open_store(tmp_path / "imp.db")
    yield Ingestor(st)
    st.close()


@pytest.mark.data
def test_ml100k(ing):
    _need("ml-100k")
    res = import_dataset("ml-100k", ing)
    st = ing.store
    assert res["events"] == st.count("events")
    assert st.count_events(EventKind.IMPRESSION) == 100_000  # every rating is an impression
    # ratings >= 4 in ml-100k: 34,174 (4 stars) + 21,201 (5 stars)
    assert st.count_events(EventKind.LIKE) == 55_375
    posts = st.load_posts()
    m1 = posts["id"].index("ml:m1")
    assert posts["text"][m1] == "Toy Story (1995)" and set(posts["topics"][m1]) == {"animation", "children's", "comedy"}
    assert st.count("users") == 944 and st.count("posts") == 1682
    with pytest.raises(ValueError, match="already"):
        import_dataset("ml-100k", ing)


@pytest.mark.data
def test_lastfm(ing):
    _need("lastfm")
    res = import_dataset("lastfm", ing)
    st = ing.store
    assert res["likes"] == 92_834
    src, dst, _ = st.load_edges("follows")
    pairs = set(zip(src.tolist(), dst.tolist()))
    assert len(pairs) == res["follows"] and all((b, a) in pairs for a, b in pairs)  # mutual
    assert st.count("posts") == 17_632


@pytest.mark.data
def test_text_posts(ing):
    _need("tweets")
    _need("reddit")
    tw = import_dataset("tweets", ing)
    rd = import_dataset("reddit", ing)
    st = ing.store
    assert tw["users"] == 2 and tw["posts"] > 6000 and rd["posts"] > 40_000
    posts, users = st.load_posts(), st.load_users()
    assert not any(i.startswith("tw:") and "&amp;" in t for i, t in zip(posts["id"], posts["text"]))  # decoded
    name = dict(zip(users["idx"].tolist(), users["id"]))
    author = next(
        name[a]
        for i, a, tp in zip(posts["id"], posts["author"].tolist(), posts["topics"])
        if i.startswith("reddit:") and tp == ["science"]
    )
    assert author == "r/science"


def test_write_network_round_trip(ing):
    net = generate_network(200, 2, seed=3)
    res = write_network(net, ing)
    st = ing.store
    assert (st.count("users"), st.count("posts")) == (200, net.n_posts)
    assert st.count("events") == len(net.follow_src) + net.n_events
    assert st.count("follows") == len(np.unique(net.follow_src.astype(np.int64) * 200 + net.follow_dst)) + int(
        (net.events.kind == EventKind.FOLLOW).sum()
    ) - _refollows(net)
    # replies point at the right parent, and an event's post resolves to the same external id
    child = int(np.flatnonzero(net.post_reply_to >= 0)[0])
    posts = st.load_posts()
    parent_idx = posts["reply_to"][posts["id"].index(f"p{child}")]
    assert parent_idx == st.post_idx(f"p{int(net.post_reply_to[child])}")
    likes = np.flatnonzero(net.events.kind == EventKind.LIKE)
    assert len(likes) > 0 and res.first_token
    target = st.post_idx(f"p{int(net.events.post[likes[0]])}")
    got = int((st.events_in_window(kinds=[EventKind.LIKE]).post == target).sum())
    assert got == int((net.events.post[likes] == net.events.post[likes[0]]).sum())


def _refollows(net) -> int:
    """FOLLOW events whose edge was already in the initial graph (stored once)."""
    init = set((net.follow_src.astype(np.int64) * 200 + net.follow_dst).tolist())
    f = net.events.kind == EventKind.FOLLOW
    keys = (net.events.user[f].astype(np.int64) * 200 + net.events.target_user[f]).tolist()
    return sum(k in init for k in keys)
