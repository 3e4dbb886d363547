"""The serving state's compact structures (issue 12 item 6: halve the bytes per stored event) answer as the Python
dicts, sets and lists they replaced, and the post retention window (``[state] post_retention_days``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from glassfeed.domain import EventBatch, EventKind
from glassfeed.feed.service import FeedService
from glassfeed.ingest import Ingestor
from glassfeed.settings import load_settings, packaged_settings
from glassfeed.state import ServingState
from glassfeed.state._columns import Strings
from glassfeed.state.counters import LIKES, REPOSTS, Counters
from glassfeed.state.graph import SocialGraph
from glassfeed.state.pairs import PairTable, pair_codes
from glassfeed.store import open_store

DAY = 86400.0


# ---------------------------------------------------------------------------------------------- PairTable
def test_pair_table_matches_a_dict_of_dicts_bit_for_bit() -> None:
    """Random additions, scalings and erasures: every value equals the dict-of-dicts reference exactly (the same
    float operations in the same order), across merges of the small dict into the arrays."""
    rng = np.random.default_rng(5)
    table, ref = PairTable(merge_at=16), {}
    for step in range(300):
        users = rng.integers(1, 40, 12)
        keys = rng.integers(1, 3_000_000_000, 12) if step % 7 == 0 else rng.integers(1, 60, 12)
        vals = rng.normal(size=12)
        uniq, inv = np.unique(pair_codes(users, keys), return_inverse=True)
        add = np.bincount(inv, weights=vals)
        table.add(uniq, add)
        for c, v in zip(uniq.tolist(), add.tolist()):
            row = ref.setdefault(c >> 32, {})
            row[c & 0xFFFFFFFF] = row.get(c & 0xFFFFFFFF, 0.0) + v
        if step % 50 == 49:
            f = math.exp(-0.37)
            table.scale(f)
            for row in ref.values():
                for k in row:
                    row[k] *= f
        if step == 150:
            table.forget_user(7)
            ref.pop(7, None)
    assert len(table) == sum(map(len, ref.values())) and table.nbytes() > 0
    pu = np.array([u for u, row in ref.items() for _ in row] + [7, 999])
    pk = np.array([k for row in ref.values() for k in row] + [1, 1])
    want = [ref.get(u, {}).get(k, 0.0) for u, k in zip(pu.tolist(), pk.tolist())]
    assert table.lookup(pu, pk).tolist() == want  # exact, not approximately
    keys, vals = table.row(3)
    assert keys.tolist() == sorted(ref[3]) and vals.tolist() == [ref[3][k] for k in sorted(ref[3])]
    table.compact()
    assert table.lookup(pu, pk).tolist() == want


def test_pair_table_reads_pairs_waiting_to_be_merged() -> None:
    table = PairTable(merge_at=1_000)
    table.add(pair_codes(np.array([2, 2]), np.array([5, 9])), np.array([1.5, -2.0]))
    table.compact()
    table.add(pair_codes(np.array([2, 3]), np.array([5, 4])), np.array([1.0, 7.0]))  # 2->5 in place, 3->4 waits
    assert table.lookup(np.array([2, 2, 3, 3]), np.array([5, 9, 4, 5])).tolist() == [2.5, -2.0, 7.0, 0.0]
    assert table.row(3)[0].tolist() == [4]
    table.forget_user(3)
    assert table.lookup(np.array([3]), np.array([4])).tolist() == [0.0]


# ---------------------------------------------------------------------------------------------- Strings
def test_strings_column_packs_rows_and_rewrites_them() -> None:
    col = Strings()
    col.set([1, 2, 5], ["héllo", "", "wörld"])
    assert [col.get(i) for i in range(7)] == [None, "héllo", "", None, None, "wörld", None]
    assert col.text(3) == "" and col.text(1) == "héllo"
    col = Strings()
    col.set([1, 2, 3], ["aaaa", "b" * 10, "cc"])
    n0 = col.nbytes()
    col.drop(np.array([3]))
    col.drop(np.array([1]))  # 6 bytes dropped, 10 kept: the buffer stays
    assert col.nbytes() == n0 and col.get(1) is None and col.get(2) == "b" * 10
    col.set([2], ["x"])  # a rewritten row points at new bytes
    col.drop(np.array([4]))  # now 16 bytes are dropped and 1 kept: the buffer is rewritten
    assert col.get(2) == "x" and col.get(3) is None and col.nbytes() == n0 - 15


# ---------------------------------------------------------------------------------------------- graph
def test_follows_as_sorted_arrays_match_sets_and_keep_follower_counts() -> None:
    g, ref = SocialGraph(), {u: set() for u in range(8)}
    g.ensure_users(8)
    g._add_follows(np.array([3, 1, 3, 1]), np.array([2, 5, 7, 2]))
    for s, d in ((3, 2), (1, 5), (3, 7), (1, 2)):
        ref[s].add(d)
    rng = np.random.default_rng(2)
    for _ in range(200):
        u, v = (int(x) for x in rng.integers(1, 8, 2))
        kind = int(EventKind.FOLLOW) if rng.random() < 0.6 else int(EventKind.UNFOLLOW)
        g.apply(kind, u, v)
        (ref[u].add if kind == int(EventKind.FOLLOW) else ref[u].discard)(v)
    g.forget_user(4)
    ref[4] = set()
    users = np.arange(1, 8)
    for u in users.tolist():
        assert g.following(u) == ref[u]
    counts = [sum(v in ref[u] for u in ref) for v in users.tolist()]
    assert g.follower_count(users).tolist() == counts
    assert g.following_count(users).tolist() == [len(ref[u]) for u in users.tolist()]
    row, followee = g.follow_pairs(users)
    assert followee.dtype == np.int64
    assert sorted(zip(row.tolist(), followee.tolist())) == sorted(
        (i, v) for i, u in enumerate(users.tolist()) for v in ref[u]
    )


# ---------------------------------------------------------------------------------------------- counters
def test_recent_actions_keep_the_newest_per_user_in_order() -> None:
    cfg = packaged_settings().state.model_copy(update={"recent_actions_per_user": 3})
    c = Counters(cfg)
    c.ensure_users(10)
    c.ensure_posts(100)
    kind = np.array([int(EventKind.LIKE)] * 4 + [int(EventKind.REPOST)])
    user = np.array([2, 5, 2, 2, 2])
    post = np.array([10, 11, 12, 13, 14])
    ts = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    c.apply(kind, user, post, ts, np.zeros(5, np.int32))
    c.apply(np.array([int(EventKind.LIKE)]), np.array([2]), np.array([15]), np.array([6.0]), np.zeros(1, np.int32))
    posts, times = c.recent_actions(LIKES, 2)
    assert posts.tolist() == [12, 13, 15] and times.tolist() == [3.0, 4.0, 6.0] and posts.dtype == np.int64
    assert c.recent_actions(REPOSTS, 2)[0].tolist() == [14] and c.recent_actions(LIKES, 9)[0].tolist() == []
    assert c.totals(np.array([12]))[0].dtype == np.int64
    c.forget_user(2)
    assert c.recent_actions(LIKES, 2)[0].tolist() == []


# ---------------------------------------------------------------------------------------------- retention window
def _world(tmp_path, retention_days: float):
    """A store with posts 20, 5, 1 and 0 days older than the newest (stored oldest first, as posts arrive), two
    likes on each, and its state."""
    now = 100 * DAY
    store = open_store(tmp_path / "s.db")
    clock = {"now": now}
    ing = Ingestor(store, clock=lambda: clock["now"])
    ing.create_users([{"id": u} for u in ("a", "b", "c")])
    ages = {"p20": 20.0, "p5": 5.0, "p1": 1.0, "new": 0.0}
    ing.create_posts(
        [
            {"id": p, "author": "a", "text": f"Text {p}", "topics": ["t"], "created_at": now - d * DAY}
            for p, d in ages.items()
        ]
    )
    ing.ingest_events([{"kind": "like", "user": u, "post": p, "ts": now - 60.0} for p in ages for u in ("b", "c")])
    cfg = load_settings(state={"post_retention_days": retention_days}).state
    return store, ing, ServingState.from_store(store, cfg), clock


def test_a_retention_window_drops_old_posts_and_their_events_at_build(tmp_path) -> None:
    store, _, st, clock = _world(tmp_path, retention_days=7.0)
    now = clock["now"]
    idx = {p: store.post_idx(p) for p in ("new", "p1", "p5", "p20")}
    assert st.post_cutoff() == pytest.approx(now - 7 * DAY)
    assert st.posts.text_of(idx["p20"]) == "" and st.posts.topics_of(idx["p20"]) == []
    assert st.posts.text_of(idx["p5"]) == "Text p5"
    old = np.array([idx["p20"]])
    assert st.counters.totals(old).sum() == 0  # its likes were not applied
    assert int(st.counters.totals(np.array([idx["p5"]])).sum()) == 2
    posts, _ = st.posts.by_authors(np.array([store.user_idx("a")]), 0.0, now)
    assert sorted(posts.tolist()) == sorted(idx[p] for p in ("new", "p1", "p5"))
    assert st.posts.id_of(idx["p20"]) == "p20"  # ids stay: exports still name the post
    # its row is gone from every column: it reads as a post never loaded; the others as stored
    assert st.posts.created(old).tolist() == [0.0] and st.posts.author(old).tolist() == [0]
    kept = np.array([idx[p] for p in ("p5", "p1", "new")])
    assert st.posts.created(kept).tolist() == [now - 5 * DAY, now - DAY, now]
    assert st.posts.author(kept).tolist() == [store.user_idx("a")] * 3
    assert st.posts.created_between(0.0, now).tolist() == kept.tolist()
    full = ServingState.from_store(store)  # no window: every post and event, as before
    assert full.post_cutoff() == 0.0 and full.posts.text_of(idx["p20"]) == "Text p20"
    assert int(full.counters.totals(old).sum()) == 2 and full.posts.created(old).tolist() == [now - 20 * DAY]
    for name in ("author", "created", "topic", "text_len", "is_reply", "divisiveness"):
        assert getattr(st.posts, name)(kept).tolist() == getattr(full.posts, name)(kept).tolist(), name
    assert st.counters.totals(kept).tolist() == full.counters.totals(kept).tolist()


def test_posts_age_out_of_the_window_as_time_passes(tmp_path) -> None:
    store, ing, st, clock = _world(tmp_path, retention_days=3.0)
    now = clock["now"]
    p1, p5 = store.post_idx("p1"), store.post_idx("p5")
    assert st.posts.text_of(p1) == "Text p1" and st.posts.text_of(p5) == ""
    later = clock["now"] = now + 2.5 * DAY  # p1 is now 3.5 days old
    ing.create_posts([{"id": "newer", "author": "b", "text": "x", "created_at": later}])
    st.catch_up(store)
    assert st.post_cutoff() == pytest.approx(later - 3 * DAY)
    assert st.posts.text_of(p1) == "" and st.posts.text_of(store.post_idx("newer")) == "x"
    before = int(st.counters.totals(np.array([p1])).sum())
    st.apply_events(  # an event on a post older than the window is not held
        EventBatch.from_columns(kind=[int(EventKind.LIKE)], user=[store.user_idx("a")], ts=[later], post=[p1])
    )
    assert int(st.counters.totals(np.array([p1])).sum()) == before
    # what is still held reads as in a state rebuilt now with the same window
    rebuilt = ServingState.from_store(store, load_settings(state={"post_retention_days": 3.0}).state)
    kept = np.array([store.post_idx("new"), store.post_idx("newer")])
    for name in ("author", "created", "topic", "text_len"):
        assert getattr(st.posts, name)(kept).tolist() == getattr(rebuilt.posts, name)(kept).tolist(), name
    assert st.counters.totals(kept).tolist() == rebuilt.counters.totals(kept).tolist()
    assert st.counters.decayed(kept, later).tolist() == rebuilt.counters.decayed(kept, later).tolist()
    assert st.posts.created(np.array([p1, p5])).tolist() == [0.0, 0.0]  # their rows are gone


def test_a_policy_older_than_the_post_retention_is_refused(tmp_path) -> None:
    """The built-in policies serve posts up to 168 h old: a 5-day window would hide posts they may serve."""
    settings = load_settings(store={"path": tmp_path / "s.db"}, state={"post_retention_days": 5.0})
    store = open_store(settings.store.path)
    with pytest.raises(ValueError, match="post_retention_days"):
        FeedService(Ingestor(store), settings)
    store.close()
    ok = load_settings(store={"path": tmp_path / "t.db"}, state={"post_retention_days": 7.0})
    svc = FeedService(Ingestor(open_store(ok.store.path)), ok)
    svc.close()
