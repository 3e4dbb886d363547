"""The ``Store`` contract: behaviour every backend must show, as a reusable test class.

A backend's test module subclasses ``StoreContract`` and provides one fixture, ``make_store``: a factory
``make_store(name="main") -> Store`` that opens (creating and migrating) a store; calling it again with the same
name opens the same data again (after the earlier handle was closed), a new name gives an empty store. The
factory owns cleanup. ``assert_implements_store`` checks a backend class against the protocol's signatures.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from glassfeed.domain import EVENT_COLUMNS, EventBatch, EventKind
from glassfeed.store import ENTITIES, ERASED_LABEL, RESERVED_META_KEYS, Store, StoredEvent, UserSummary
from glassfeed.store.base import (
    CHANGE_KINDS,
    AdCampaignRow,
    AdLogRow,
    Delivery,
    ExperimentRow,
    ExposureRow,
    ModerationRecord,
    NotificationRow,
    PageSourcesRow,
)

T0 = 1_700_000_000.0
K = EventKind

MakeStore = Callable[..., Store]


def protocol_members() -> list[str]:
    """The public members the ``Store`` protocol declares."""
    return sorted(n for n in vars(Store) if not n.startswith("_"))


def assert_implements_store(store: object) -> None:
    """``store`` has every member of ``Store``: each method callable with the protocol's parameters (same names,
    kinds and defaults, in order) and each property readable."""
    assert isinstance(store, Store)  # runtime_checkable: every member is present
    name_of = type(store).__name__
    for name in protocol_members():
        want = inspect.getattr_static(Store, name)
        got = getattr(store, name)  # raises when missing
        if isinstance(want, property):
            assert not callable(got), f"{name_of}.{name} should be a value, not a method"
            continue
        params = list(inspect.signature(want).parameters.values())[1:]  # without self
        expected = [(p.name, p.kind, p.default) for p in params]
        actual = [(p.name, p.kind, p.default) for p in inspect.signature(got).parameters.values()]
        assert actual == expected, f"{name_of}.{name}{inspect.signature(got)} differs from Store.{name}"


# ---------------------------------------------------------------------- helpers
def add_users(store: Store, ids: list[str], community: int | None = None) -> list[int]:
    with store.transaction() as tx:
        return store.insert_users(tx, [(u, f"@{u}", T0 + i, community, "", None) for i, u in enumerate(ids)])


def add_posts(store: Store, author: int, ids: list[str]) -> list[int]:
    with store.transaction() as tx:
        return store.insert_posts(
            tx,
            [(p, author, f"text {p}", T0 + i, None, None, None, "", "en", "", None, None) for i, p in enumerate(ids)],
        )


def batch(rows: list[tuple[Any, ...]], **objects: list[Any]) -> EventBatch:
    """Events from (kind, user, post, target_user, ts, value, position) rows, ``None`` for a null."""
    cols: dict[str, Any] = {"kind": [int(r[0]) for r in rows], "user": [r[1] for r in rows]}
    for j, (name, null) in enumerate(
        (("post", -1), ("target_user", -1), ("ts", None), ("value", math.nan), ("position", -1)), start=2
    ):
        cols[name] = [null if r[j] is None else r[j] for r in rows]
    return EventBatch.from_columns(**cols, **objects)


def append(store: Store, b: EventBatch) -> tuple[int, int]:
    with store.transaction() as tx:
        return store.append_events(tx, b)


def numeric(b: EventBatch) -> EventBatch:
    """The batch without its object columns (what ``iter_events`` returns)."""
    return EventBatch(**{c.name: getattr(b, c.name) for c in EVENT_COLUMNS})


def all_events(store: Store, **kw: Any) -> EventBatch:
    return EventBatch.concat(list(store.iter_events(**kw)))


def edges(store: Store, edge: Any) -> set[tuple[int, int]]:
    src, dst, _ = store.load_edges(edge)
    return set(zip(src.tolist(), dst.tolist()))


class _Boom(Exception):
    pass


# ---------------------------------------------------------------------- the contract
class StoreContract:
    """Subclass and provide the ``make_store`` fixture (see the module docstring)."""

    @pytest.fixture
    def store(self, make_store: MakeStore) -> Store:
        return make_store()

    @pytest.fixture
    def world(self, store: Store) -> tuple[Store, dict[str, int], dict[str, int]]:
        """Users a..e and posts p1..p3 by a."""
        uids = add_users(store, list("abcde"))
        pids = add_posts(store, uids[0], ["p1", "p2", "p3"])
        return store, dict(zip("abcde", uids)), dict(zip(["p1", "p2", "p3"], pids))

    # ------------------------------------------------------------------ shape
    def test_implements_every_protocol_member(self, store: Store) -> None:
        assert len(protocol_members()) > 30
        assert_implements_store(store)

    # ------------------------------------------------------------------ schema and emptiness
    def test_new_store_is_migrated_and_empty(self, make_store: MakeStore) -> None:
        store = make_store()
        version = store.schema_version
        assert version >= 1
        assert {e: store.count(e) for e in ENTITIES} == dict.fromkeys(ENTITIES, 0)
        assert store.max_seq() == 0 and store.count_events() == 0
        assert list(store.iter_events()) == []
        assert len(store.events_in_window()) == 0
        users, posts = store.load_users(), store.load_posts()
        assert len(users["idx"]) == 0 and users["idx"].dtype == np.int64 and users["id"] == []
        assert len(posts["idx"]) == 0 and posts["author"].dtype == np.int64
        assert all(len(a) == 0 for a in store.load_edges("follows"))
        assert store.load_muted_words() == {} and store.load_prefs() == {} and store.get_meta("x") is None
        assert isinstance(store.location, str) and store.location
        store.close()
        again = make_store()
        assert again.schema_version == version  # reopening migrates nothing twice

    def test_unknown_entity_edge_or_transaction_is_refused(self, world: Any) -> None:
        store, _, _ = world
        with pytest.raises(ValueError):
            store.count("sessions")
        with pytest.raises(ValueError):
            store.load_edges("friends")
        with pytest.raises(TypeError):
            store.set_meta(object(), "k", "v")
        assert store.get_meta("k") is None

    # ------------------------------------------------------------------ id maps and entities
    def test_id_maps_are_dense_and_learn_on_commit(self, make_store: MakeStore) -> None:
        store = make_store()
        with store.transaction() as tx:
            new = store.insert_users(tx, [("a", "A", T0, 1, "x,y", "hash-a"), ("b", "", T0 + 1, None, "", None)])
            assert store.user_idx("a") is None  # not committed yet
        assert new == [1, 2]
        assert store.user_idx("a") == 1 and store.user_idx("b") == 2 and store.user_idx("zz") is None
        assert dict(store.user_ids()) == {"a": 1, "b": 2}
        assert add_users(store, ["c"]) == [3]
        assert add_posts(store, 1, ["p", "q"]) == [1, 2]
        assert dict(store.post_ids()) == {"p": 1, "q": 2} and store.post_idx("nope") is None
        store.close()
        store = make_store()
        assert dict(store.user_ids()) == {"a": 1, "b": 2, "c": 3} and store.post_idx("q") == 2
        assert store.token_hash(1) == "hash-a" and store.token_hash(2) is None and store.token_hash(99) is None

    def test_users_round_trip(self, store: Store) -> None:
        with store.transaction() as tx:
            store.insert_users(tx, [("a", "Ann", T0, 3, "music,science", None), ("b", "", T0 + 5, None, "", None)])
        u = store.load_users()
        assert u["idx"].tolist() == [1, 2] and u["id"] == ["a", "b"] and u["handle"] == ["Ann", ""]
        assert u["created_at"].dtype == np.float64 and u["created_at"].tolist() == [T0, T0 + 5]
        assert u["community"].tolist() == [3, -1]
        assert u["interests"] == [["music", "science"], []]
        later = store.load_users(since_idx=1)
        assert later["id"] == ["b"] and later["idx"].tolist() == [2]

    def test_posts_round_trip_with_references(self, world: Any) -> None:
        store, u, p = world
        with store.transaction() as tx:
            new = store.insert_posts(
                tx,
                [
                    ("r", u["b"], "a reply", T0 + 10, p["p1"], None, None, "news,music", "de", "spoiler", 0.8, 0.25),
                    ("s", u["c"], "", T0 + 11, None, p["p2"], None, "", "en", "", None, None),
                    ("t", u["c"], "quote", T0 + 12, None, None, p["p3"], "", "en", "", None, 0.5),
                ],
            )
        assert new == [4, 5, 6]
        got = store.load_posts(since_idx=3)
        assert got["idx"].tolist() == [4, 5, 6] and got["id"] == ["r", "s", "t"]
        assert got["author"].tolist() == [u["b"], u["c"], u["c"]]
        assert got["text"] == ["a reply", "", "quote"] and got["lang"] == ["de", "en", "en"]
        assert got["created_at"].tolist() == [T0 + 10, T0 + 11, T0 + 12]
        assert got["reply_to"].tolist() == [p["p1"], -1, -1]
        assert got["repost_of"].tolist() == [-1, p["p2"], -1]
        assert got["quote_of"].tolist() == [-1, -1, p["p3"]]
        assert got["topics"] == [["news", "music"], [], []] and got["labels"] == [["spoiler"], [], []]
        np.testing.assert_array_equal(got["quality"], [0.8, np.nan, np.nan])
        np.testing.assert_array_equal(got["divisiveness"], [0.25, np.nan, 0.5])
        assert store.count("posts") == 6

    def test_post_labels_are_added_idempotently(self, world: Any) -> None:
        store, _, p = world
        with store.transaction() as tx:
            store.add_post_label(tx, [p["p1"], p["p2"]], "removed")
            store.add_post_label(tx, [p["p1"]], "spoiler")
            store.add_post_label(tx, [p["p1"]], "removed")
        assert store.post_labels([p["p1"], p["p2"], p["p3"], 999]) == {
            p["p1"]: ["removed", "spoiler"],
            p["p2"]: ["removed"],
            p["p3"]: [],
        }
        assert store.load_posts()["labels"] == [["removed", "spoiler"], ["removed"], []]
        assert store.post_labels([]) == {}

    # ------------------------------------------------------------------ the event log
    def test_append_then_iter_round_trip(self, world: Any) -> None:
        store, u, p = world
        b = batch(
            [
                (K.IMPRESSION, u["b"], p["p1"], None, T0 + 1, None, 0),
                (K.DWELL, u["b"], p["p1"], None, T0 + 2, 1234.5, 0),
                (K.FOLLOW, u["b"], None, u["a"], T0 + 3, None, None),
                (K.SEE_LESS, u["c"], None, u["a"], T0 + 4, None, None),
                (K.LIKE, u["c"], p["p2"], None, T0 + 5, None, None),
            ]
        )
        assert append(store, b) == (1, 5)
        got = all_events(store)
        assert got.equals(numeric(b).with_seq(1)), got
        assert got.kind.dtype == np.int8 and got.user.dtype == np.int64 and got.position.dtype == np.int32
        assert store.max_seq() == 5 and store.count("events") == store.count_events() == 5
        assert append(store, batch([(K.CLICK, u["d"], p["p3"], None, T0 + 6, None, 2)])) == (6, 6)
        assert all_events(store, since_seq=5).seq.tolist() == [6]
        assert all_events(store, since_seq=1, until_seq=3).seq.tolist() == [2, 3]
        chunks = list(store.iter_events(chunk=2))
        assert [len(c) for c in chunks] == [2, 2, 2]
        assert EventBatch.concat(chunks).equals(all_events(store))
        assert list(store.iter_events(since_seq=6)) == []

    def test_empty_append_assigns_nothing(self, world: Any) -> None:
        store, u, p = world
        append(store, batch([(K.LIKE, u["b"], p["p1"], None, T0, None, None)]))
        first, last = append(store, EventBatch.empty())
        assert last < first and store.max_seq() == 1 and store.count_events() == 1

    def test_object_columns_round_trip(self, world: Any) -> None:
        store, u, p = world
        b = batch(
            [
                (K.IMPRESSION, u["b"], p["p1"], None, T0 + 1, None, 0),
                (K.IMPRESSION, u["b"], p["p2"], None, T0 + 1, None, 1),
                (K.LIKE, u["b"], p["p1"], None, T0 + 2, None, None),
            ],
            surface=["home", "home", None],
            request_id=["engagement:s.0", "engagement:s.0", None],
            id=[None, None, "client-1"],
        )
        append(store, b)
        got = store.events_in_window(object_columns=True)
        assert got.equals(b.with_seq(1))
        assert store.events_in_window().request_id is None  # numeric columns only unless asked
        tail = list(store.iter_events(since_seq=1, chunk=1, object_columns=True))  # a tail that needs request ids
        assert [len(c) for c in tail] == [1, 1]
        assert EventBatch.concat(tail).equals(b.with_seq(1).take(np.array([1, 2])))
        assert next(store.iter_events()).request_id is None
        assert store.user_events(u["b"]) == [
            StoredEvent(3, "client-1", int(K.LIKE), p["p1"], None, T0 + 2, None, None, None, None),
            StoredEvent(2, None, int(K.IMPRESSION), p["p2"], None, T0 + 1, None, "home", 1, "engagement:s.0"),
            StoredEvent(1, None, int(K.IMPRESSION), p["p1"], None, T0 + 1, None, "home", 0, "engagement:s.0"),
        ]
        assert [e.seq for e in store.user_events(u["b"], limit=2)] == [3, 2]
        assert store.user_events(u["c"]) == []

    def test_client_ids_are_idempotent(self, world: Any) -> None:
        store, u, p = world
        b = batch(
            [(K.LIKE, u["b"], p["p1"], None, T0, None, None), (K.LIKE, u["c"], p["p1"], None, T0, None, None)],
            id=["e1", "e2"],
        )
        append(store, b)
        assert store.event_ids_exist(["e1", "e2", "e3"]) == {"e1", "e2"}
        assert store.event_ids_exist([]) == set()
        again = batch(
            [(K.LIKE, u["b"], p["p1"], None, T0, None, None), (K.LIKE, u["d"], p["p1"], None, T0, None, None)],
            id=["e1", "e3"],
        )
        assert append(store, again) == (3, 3)  # only e3 is new; the numbers stay consecutive
        assert store.count_events() == 3 and all_events(store).seq.tolist() == [1, 2, 3]
        stored = store.events_in_window(object_columns=True)
        assert sorted(stored.id.tolist()) == ["e1", "e2", "e3"]
        assert stored.user[stored.id == "e1"].tolist() == [u["b"]]  # the first write wins
        many = [f"x{i}" for i in range(2500)]  # more ids than one statement may bind
        append(store, batch([(K.CLICK, u["e"], p["p2"], None, T0, None, None)] * len(many), id=many))
        assert store.event_ids_exist([*many, "nope"]) == set(many)

    def test_count_events_by_kind(self, world: Any) -> None:
        store, u, p = world
        append(
            store,
            batch(
                [
                    (K.LIKE, u["b"], p["p1"], None, T0, None, None),
                    (K.LIKE, u["c"], p["p1"], None, T0, None, None),
                    (K.IMPRESSION, u["c"], p["p2"], None, T0, None, 0),
                ]
            ),
        )
        assert store.count_events(K.LIKE) == 2 and store.count_events(K.IMPRESSION) == 1
        assert store.count_events(K.REPORT) == 0 and store.count_events() == 3

    def test_events_in_window_is_half_open_and_ordered_by_ts_then_seq(self, world: Any) -> None:
        store, u, p = world
        rows = [
            (K.LIKE, u["b"], p["p1"], None, T0 + 30, None, None),  # seq 1
            (K.CLICK, u["b"], p["p1"], None, T0 + 10, None, None),  # 2
            (K.LIKE, u["c"], p["p2"], None, T0 + 20, None, None),  # 3
            (K.CLICK, u["c"], p["p2"], None, T0 + 10, None, None),  # 4
            (K.REPLY, u["d"], p["p3"], None, T0 + 40, None, None),
        ]  # 5
        append(store, batch(rows))
        assert store.events_in_window().seq.tolist() == [2, 4, 3, 1, 5]
        assert store.events_in_window(T0 + 10, T0 + 30).seq.tolist() == [2, 4, 3]
        assert store.events_in_window(T0 + 20).seq.tolist() == [3, 1, 5]
        assert store.events_in_window(None, T0 + 20).seq.tolist() == [2, 4]
        w = store.events_in_window(T0, T0 + 100, kinds=[K.LIKE, K.REPLY])
        assert w.seq.tolist() == [3, 1, 5] and w.equals(numeric(batch(rows)).with_seq(1).take(np.array([2, 0, 4])))
        assert len(store.events_in_window(kinds=[])) == 0
        assert len(store.events_in_window(T0 + 41, T0 + 50)) == 0

    def test_seq_is_never_reused(self, make_store: MakeStore) -> None:
        store = make_store()
        u = add_users(store, ["a", "b"])
        p = add_posts(store, u[0], ["p"])
        append(
            store,
            batch(
                [
                    (K.LIKE, u[0], p[0], None, T0, None, None),
                    (K.LIKE, u[1], p[0], None, T0 + 1, None, None),
                    (K.CLICK, u[1], p[0], None, T0 + 2, None, None),
                ]
            ),
        )
        with store.transaction() as tx:
            removed = store.delete_user_data(tx, u[1])  # erases the two newest events
        assert removed["events"] == 2
        assert store.max_seq() == 3 and all_events(store).seq.tolist() == [1]
        store.close()
        store = make_store()
        assert store.max_seq() == 3
        assert append(store, batch([(K.LIKE, u[0], p[0], None, T0 + 3, None, None)])) == (4, 4)
        assert all_events(store).seq.tolist() == [1, 4]

    # ------------------------------------------------------------------ graph edges
    def test_graph_events_maintain_edges(self, world: Any) -> None:
        store, u, _ = world
        a, b, c, d = u["a"], u["b"], u["c"], u["d"]
        append(
            store,
            batch(
                [
                    (K.FOLLOW, a, None, b, T0 + 1, None, None),
                    (K.FOLLOW, a, None, c, T0 + 2, None, None),
                    (K.FOLLOW, b, None, a, T0 + 3, None, None),
                    (K.BLOCK, a, None, d, T0 + 4, None, None),
                    (K.MUTE, b, None, c, T0 + 5, None, None),
                    (K.SEE_LESS, c, None, a, T0 + 6, None, None),
                ]
            ),
        )  # not an edge
        assert edges(store, "follows") == {(a, b), (a, c), (b, a)}
        assert edges(store, "blocks") == {(a, d)} and edges(store, "mutes") == {(b, c)}
        src, dst, ts = store.load_edges("follows")
        assert dict(zip(zip(src.tolist(), dst.tolist()), ts.tolist()))[(a, c)] == T0 + 2
        assert src.dtype == dst.dtype == np.int64 and ts.dtype == np.float64
        append(
            store,
            batch(
                [
                    (K.UNFOLLOW, a, None, c, T0 + 7, None, None),
                    (K.UNBLOCK, a, None, d, T0 + 8, None, None),
                    (K.UNMUTE, b, None, c, T0 + 9, None, None),
                    (K.UNFOLLOW, c, None, a, T0 + 10, None, None),
                ]
            ),
        )  # no such edge: nothing happens
        assert edges(store, "follows") == {(a, b), (b, a)}
        assert edges(store, "blocks") == set() and edges(store, "mutes") == set()
        assert (store.count("follows"), store.count("blocks"), store.count("mutes")) == (2, 0, 0)

    def test_edges_follow_seq_order_within_a_batch(self, world: Any) -> None:
        store, u, _ = world
        a, b, c = u["a"], u["b"], u["c"]
        append(
            store,
            batch(
                [
                    (K.FOLLOW, a, None, b, T0 + 1, None, None),
                    (K.UNFOLLOW, a, None, b, T0 + 2, None, None),
                    (K.UNFOLLOW, a, None, c, T0 + 3, None, None),
                    (K.FOLLOW, a, None, c, T0 + 4, None, None),
                ]
            ),
        )
        assert edges(store, "follows") == {(a, c)}

    # ------------------------------------------------------------------ transactions
    def test_rollback_leaves_nothing(self, world: Any) -> None:
        store, u, p = world
        before = {e: store.count(e) for e in ENTITIES}
        with pytest.raises(_Boom), store.transaction() as tx:
            store.insert_users(tx, [("zed", "", T0, None, "", None)])
            store.insert_posts(tx, [("pz", u["a"], "x", T0, None, None, None, "", "en", "", None, None)])
            store.append_events(
                tx,
                batch(
                    [(K.FOLLOW, u["a"], None, u["b"], T0, None, None), (K.LIKE, u["b"], p["p1"], None, T0, None, None)],
                    id=[None, "k1"],
                ),
            )
            store.set_muted_words(tx, u["a"], ["spoilers"])
            store.set_prefs(tx, u["a"], {"lang": "en"})
            store.set_meta(tx, "cursor", "42")
            store.add_post_label(tx, [p["p1"]], "removed")
            raise _Boom
        assert {e: store.count(e) for e in ENTITIES} == before
        assert store.user_idx("zed") is None and store.post_idx("pz") is None and "zed" not in store.user_ids()
        assert store.max_seq() == 0 and store.event_ids_exist(["k1"]) == set()
        assert store.get_meta("cursor") is None and store.post_labels([p["p1"]]) == {p["p1"]: []}
        assert store.load_muted_words() == {} and store.load_prefs() == {}
        assert add_users(store, ["zed"]) == [6]  # the rolled-back idx is free again
        assert append(store, batch([(K.LIKE, u["b"], p["p1"], None, T0, None, None)])) == (1, 1)

    # ------------------------------------------------------------------ per-user settings and meta
    def test_muted_words_prefs_and_meta(self, world: Any) -> None:
        store, u, _ = world
        with store.transaction() as tx:
            store.set_muted_words(tx, u["a"], ["spoiler", "crypto"])
            store.set_muted_words(tx, u["b"], ["golf"])
            store.set_prefs(tx, u["a"], {"lang": ["en"], "weights": {"like": 1.5}})
            store.set_meta(tx, "cursor", "1")
        with store.transaction() as tx:
            store.set_muted_words(tx, u["a"], ["nft"])  # replaces
            store.set_prefs(tx, u["b"], {})
            store.set_meta(tx, "cursor", "2")
        assert store.load_muted_words() == {u["a"]: ["nft"], u["b"]: ["golf"]}
        assert store.load_prefs() == {u["a"]: {"lang": ["en"], "weights": {"like": 1.5}}, u["b"]: {}}
        assert store.get_meta("cursor") == "2" and store.get_meta("other") is None
        assert store.count("muted_words") == 2 and store.count("prefs") == 2
        with store.transaction() as tx:
            store.set_muted_words(tx, u["b"], [])
        assert store.load_muted_words() == {u["a"]: ["nft"]}
        for key in RESERVED_META_KEYS:
            with pytest.raises(ValueError), store.transaction() as tx:
                store.set_meta(tx, key, "0")

    def test_delete_user_data_erases_only_that_user(self, world: Any) -> None:
        store, u, p = world
        a, b, c = u["a"], u["b"], u["c"]
        append(
            store,
            batch(
                [
                    (K.FOLLOW, b, None, a, T0, None, None),
                    (K.FOLLOW, a, None, b, T0, None, None),
                    (K.BLOCK, b, None, c, T0, None, None),
                    (K.MUTE, b, None, c, T0, None, None),
                    (K.LIKE, b, p["p1"], None, T0, None, None),
                    (K.LIKE, c, p["p1"], None, T0, None, None),
                ]
            ),
        )
        with store.transaction() as tx:
            store.set_muted_words(tx, b, ["x", "y"])
            store.set_prefs(tx, b, {"k": 1})
            store.set_prefs(tx, c, {"k": 2})
        with store.transaction() as tx:
            removed = store.delete_user_data(tx, b)
        assert removed == {
            "events": 4,
            "follows": 1,
            "blocks": 1,
            "mutes": 1,
            "muted_words": 2,
            "prefs": 1,
            "profile": 1,
            "ad_log": 0,
            "exposures": 0,
            "page_sources": 0,
        }
        assert store.user_events(b) == [] and len(store.user_events(c)) == 1
        assert edges(store, "follows") == {(a, b)}  # others' edges to the user stay
        assert edges(store, "blocks") == set() and edges(store, "mutes") == set()
        assert store.load_prefs() == {c: {"k": 2}} and store.load_muted_words() == {}
        assert store.user_idx("b") == b and store.count("users") == 5  # the account row stays
        assert store.count_events() == 2 and store.max_seq() == 6  # the high-water mark stays

    def test_delete_user_data_anonymises_the_user_row(self, make_store: MakeStore) -> None:
        store = make_store()
        with store.transaction() as tx:
            a, b = store.insert_users(
                tx, [("a", "Alice A.", T0, 3, "politics,golf", "hash-a"), ("b", "Bob", T0 + 1, 4, "art", "hash-b")]
            )
        assert store.token_hash(b) == "hash-b"
        with store.transaction() as tx:
            store.delete_user_data(tx, a)
        users = store.load_users()
        assert users["handle"] == ["a", "Bob"] and users["interests"] == [[], ["art"]]
        assert users["community"].tolist() == [-1, 4] and users["created_at"].tolist() == [T0, T0 + 1]
        assert store.token_hash(a) == "hash-a"  # the account stays usable
        summary = store.user_summary(a)
        assert summary is not None and (summary.handle, summary.community, summary.interests) == ("a", None, [])
        store.close()
        reopened = make_store()  # durable, and the id map still knows the account
        assert reopened.user_idx("a") == a and reopened.load_users()["handle"] == ["a", "Bob"]

    def test_erase_posts_tombstones_only_that_authors_posts(self, world: Any) -> None:
        store, u, p = world
        a, b = u["a"], u["b"]
        with store.transaction() as tx:
            (reply,) = store.insert_posts(
                tx, [("r1", b, "a reply by b", T0 + 9, p["p1"], None, None, "golf", "en", "", 0.5, 0.1)]
            )
            (own,) = store.insert_posts(
                tx, [("a-reply", a, "a's reply", T0 + 10, reply, None, p["p2"], "art,golf", "fr", "nsfw", 0.9, 0.7)]
            )
        append(store, batch([(K.LIKE, b, p["p1"], None, T0, None, None)]))
        with store.transaction() as tx:
            erased = store.erase_posts(tx, a)
        assert erased == [p["p1"], p["p2"], p["p3"], own]
        posts = store.load_posts()
        by_id = {pid: i for i, pid in enumerate(posts["id"])}
        for pid in ("p1", "p2", "p3", "a-reply"):
            i = by_id[pid]
            assert posts["text"][i] == "" and posts["topics"][i] == [] and posts["labels"][i] == [ERASED_LABEL]
            assert posts["reply_to"][i] == -1 and posts["quote_of"][i] == -1 and posts["author"][i] == a
            assert math.isnan(posts["quality"][i]) and math.isnan(posts["divisiveness"][i])
        i = by_id["r1"]  # other people's posts stay, even a reply to an erased post
        assert posts["text"][i] == "a reply by b" and posts["reply_to"][i] == p["p1"] and posts["labels"][i] == []
        assert store.post_idx("p1") == p["p1"] and store.count("posts") == 5  # ids still resolve
        assert store.post_labels([p["p1"]]) == {p["p1"]: [ERASED_LABEL]}
        assert len(store.user_events(b)) == 1  # other people's events on the erased posts stay
        with store.transaction() as tx:
            assert store.erase_posts(tx, u["c"]) == []

    def test_prune_posts_tombstones_old_posts_and_deletes_their_events(self, world: Any) -> None:
        store, u, p = world  # p1, p2, p3 by a, created at T0, T0 + 1, T0 + 2
        a, b, c = u["a"], u["b"], u["c"]
        with store.transaction() as tx:
            (new,) = store.insert_posts(
                tx, [("new", b, "a reply", T0 + 100, p["p1"], None, p["p2"], "golf", "en", "nsfw", 0.5, 0.1)]
            )
        append(
            store,
            batch(
                [
                    (K.LIKE, b, p["p1"], None, T0 + 50, None, None),
                    (K.IMPRESSION, c, p["p2"], None, T0 + 51, None, 3),
                    (K.IMPRESSION, b, p["p2"], None, T0 + 52, None, 1),
                    (K.LIKE, c, new, None, T0 + 101, None, None),
                    (K.FOLLOW, b, None, a, T0 + 0.5, None, None),
                ]
            ),
        )
        seq, start = store.max_seq(), store.last_change()
        with store.transaction() as tx:
            res = store.prune_posts(tx, T0 + 1.5)  # p1 and p2 are older than the cutoff
        assert res.posts == [p["p1"], p["p2"]] and res.events == {int(K.LIKE): 1, int(K.IMPRESSION): 2}
        posts = store.load_posts()
        by_id = {pid: i for i, pid in enumerate(posts["id"])}
        for pid in ("p1", "p2"):  # tombstoned as an erasure does: idx, id, author and time stay
            i = by_id[pid]
            assert posts["text"][i] == "" and posts["topics"][i] == [] and posts["labels"][i] == [ERASED_LABEL]
            assert posts["author"][i] == a and posts["created_at"][i] == T0 + (0 if pid == "p1" else 1)
        assert posts["text"][by_id["p3"]] == "text p3" and posts["labels"][by_id["p3"]] == []
        i = by_id["new"]  # a newer post keeps its links to the tombstones
        assert (posts["reply_to"][i], posts["quote_of"][i], posts["labels"][i]) == (p["p1"], p["p2"], ["nsfw"])
        assert store.post_idx("p1") == p["p1"] and store.count("posts") == 4  # replays of the old id resolve
        left = all_events(store)
        assert sorted(left.kind.tolist()) == sorted([int(K.LIKE), int(K.FOLLOW)]) and new in left.post.tolist()
        assert edges(store, "follows") == {(b, a)} and store.max_seq() == seq  # graph kept; seq never reused
        assert [(ch.kind, ch.idx) for ch in store.changes_since(start)] == [
            ("posts_erased", p["p1"]),
            ("posts_erased", p["p2"]),
        ]
        # again: the tombstones are not noted twice, but an event that arrived on one since is deleted
        append(store, batch([(K.LIKE, u["d"], p["p1"], None, T0 + 200, None, None)]))
        mark = store.last_change()
        with store.transaction() as tx:
            again = store.prune_posts(tx, T0 + 1.5)
        assert again.posts == [] and again.events == {int(K.LIKE): 1} and store.last_change() == mark
        with pytest.raises(_Boom), store.transaction() as tx:  # all or nothing
            store.prune_posts(tx, T0 + 1000)
            raise _Boom
        assert store.count_events() == 2 and store.load_posts(since_idx=p["p2"])["text"] == ["text p3", "a reply"]
        assert store.last_change() == mark

    # ------------------------------------------------------------------ creator analytics' reads
    def test_events_about_posts_or_target_users_with_object_columns(self, world: Any) -> None:
        store, u, p = world
        b = batch(
            [
                (K.IMPRESSION, u["b"], p["p1"], None, T0 + 3, None, 2),
                (K.LIKE, u["c"], p["p2"], None, T0 + 1, None, None),
                (K.LIKE, u["c"], p["p3"], None, T0 + 2, None, None),  # another post: not about
                (K.FOLLOW, u["d"], None, u["a"], T0 + 4, None, None),
                (K.FOLLOW, u["a"], None, u["d"], T0 + 5, None, None),  # the author following: not about
                (K.UNFOLLOW, u["d"], None, u["a"], T0 + 0.5, None, None),
            ],
            request_id=["engagement:s.0", None, None, None, None, None],
            surface=["home", None, None, None, None, None],
        )
        append(store, b)
        got = store.events_about([p["p1"], p["p2"]], [u["a"]])
        assert got.ts.tolist() == [T0 + 0.5, T0 + 1, T0 + 3, T0 + 4]  # by ts, then seq
        assert got.request_id is not None and got.request_id.tolist() == [None, None, "engagement:s.0", None]
        assert got.position.tolist() == [-1, -1, 2, -1] and got.seq.tolist() == [6, 2, 1, 4]
        only = store.events_about([p["p1"], p["p2"]], [u["a"]], t_from=T0 + 1, kinds=[K.LIKE, K.FOLLOW])
        assert only.ts.tolist() == [T0 + 1, T0 + 4]
        assert len(store.events_about([p["p3"]], kinds=[])) == 0 and len(store.events_about()) == 0
        assert store.events_about(target_users=[u["a"]]).kind.tolist() == [int(K.UNFOLLOW), int(K.FOLLOW)]

    def test_page_sources_first_row_stays_erased_with_the_person_and_pruned(self, world: Any) -> None:
        store, u, _ = world
        rows = [
            PageSourcesRow("engagement:s1.0", u["b"], T0 + 1, ("following", "trending")),
            PageSourcesRow("bridging:s2.0", u["c"], T0 + 10, ("content",)),
        ]
        with store.transaction() as tx:
            assert store.add_page_sources(tx, rows) == 2
            assert store.add_page_sources(tx, [rows[0]._replace(sources=("content",))]) == 0  # the first stays
            assert store.add_page_sources(tx, []) == 0
        got = store.page_sources(["engagement:s1.0", "bridging:s2.0", "nope:x.0"])
        assert got == {"engagement:s1.0": ("following", "trending"), "bridging:s2.0": ("content",)}
        assert store.page_sources([]) == {}
        with pytest.raises(ValueError, match="comma"), store.transaction() as tx:
            store.add_page_sources(tx, [PageSourcesRow("x:y.0", u["b"], T0, ("a,b",))])
        with store.transaction() as tx:
            assert store.delete_user_data(tx, u["b"])["page_sources"] == 1
        assert store.page_sources(["engagement:s1.0", "bridging:s2.0"]) == {"bridging:s2.0": ("content",)}
        with store.transaction() as tx:
            store.prune_posts(tx, T0 + 5)
        assert store.page_sources(["bridging:s2.0"]) == {"bridging:s2.0": ("content",)}  # served after the cutoff
        with store.transaction() as tx:
            store.prune_posts(tx, T0 + 11)
        assert store.page_sources(["bridging:s2.0"]) == {}

    # ------------------------------------------------------------------ what other workers tail
    def test_change_log_names_what_changed_in_commit_order(self, world: Any) -> None:
        store, u, p = world
        start = store.last_change()
        assert store.changes_since(start) == []
        with store.transaction() as tx:
            store.set_prefs(tx, u["a"], {"policy": "bridging"})
            store.set_muted_words(tx, u["b"], ["golf"])
            store.add_post_label(tx, [p["p1"], p["p2"]], "spam")
        with pytest.raises(RuntimeError), store.transaction() as tx:  # rolled back: no change is noted
            store.set_prefs(tx, u["c"], {})
            raise RuntimeError
        with store.transaction() as tx:
            store.delete_user_data(tx, u["d"])
            store.erase_posts(tx, u["a"])
        changes = store.changes_since(start)
        assert [(c.kind, c.idx) for c in changes] == [
            ("prefs", u["a"]),
            ("muted_words", u["b"]),
            ("labels", p["p1"]),
            ("labels", p["p2"]),
            ("deleted", u["d"]),
            ("posts_erased", p["p1"]),
            ("posts_erased", p["p2"]),
            ("posts_erased", p["p3"]),
        ]
        seqs = [c.seq for c in changes]
        assert seqs == sorted(set(seqs)) and seqs[0] > start and store.last_change() == seqs[-1]
        assert {c.kind for c in changes} <= set(CHANGE_KINDS)
        assert store.changes_since(seqs[2]) == changes[3:] and store.changes_since(start, limit=2) == changes[:2]

    def test_refresh_ids_learns_what_another_handle_committed(self, make_store: MakeStore) -> None:
        writer = make_store()
        add_users(writer, ["a"])
        reader = make_store()  # a second handle on the same store (another worker)
        assert reader.user_idx("a") == 1 and reader.refresh_ids() == (0, 0)
        add_users(writer, ["b", "c"])
        add_posts(writer, 1, ["p"])
        assert reader.user_idx("b") is None and reader.post_idx("p") is None  # not learned yet
        last = reader.last_change()
        with writer.transaction() as tx:
            writer.set_prefs(tx, 2, {"k": 1})
        assert reader.refresh_ids() == (2, 1) and reader.refresh_ids() == (0, 0)
        assert reader.user_idx("c") == 3 and reader.post_idx("p") == 1 and len(reader.user_ids()) == 3
        assert [(c.kind, c.idx) for c in reader.changes_since(last)] == [("prefs", 2)]

    # ------------------------------------------------------------------ summaries
    def test_moderation_log_appends_in_order_and_filters_by_kind(self, world: Any) -> None:
        store, u, p = world
        assert store.moderation_log() == []
        rec = ModerationRecord(0, "notice", 10.0, p["p1"], u["a"], None, None, {"category": "scam", "n": [1, 2]})
        with store.transaction() as tx:
            first = store.append_moderation(tx, [rec, rec._replace(kind="report", actor="b")])
        assert first[1] == first[0] + 1
        with store.transaction() as tx:
            (dec,) = store.append_moderation(tx, [rec._replace(kind="decision", ref=first[0], actor="mod1", post=None)])
        assert dec > first[1]
        log = store.moderation_log()
        assert [r.seq for r in log] == [*first, dec]
        assert log[0] == rec._replace(seq=first[0])  # body round-trips as JSON
        assert log[2].post is None and log[2].ref == first[0] and log[2].actor == "mod1"
        assert [r.kind for r in store.moderation_log(kinds=["decision", "report"])] == ["report", "decision"]
        assert [r.seq for r in store.moderation_log(first[0])] == [first[1], dec]
        assert len(store.moderation_log(limit=1)) == 1 and store.moderation_log(kinds=[]) == []
        with pytest.raises(ValueError, match="unknown moderation record kind"), store.transaction() as tx:
            store.append_moderation(tx, [rec._replace(kind="nope")])
        with pytest.raises(_Boom), store.transaction() as tx:  # rolled back with its transaction
            store.append_moderation(tx, [rec])
            raise _Boom
        assert len(store.moderation_log()) == 3

    def test_ad_campaigns_upsert_keep_owner_and_creation(self, world: Any) -> None:
        store, _, _ = world
        assert store.ad_campaigns() == []
        row = AdCampaignRow("c1", "acme", {"bid": {"type": "cpm", "amount": 2.5}, "creatives": ["p1"]}, 10.0, 10.0)
        with store.transaction() as tx:
            store.upsert_ad_campaign(tx, row)
            store.upsert_ad_campaign(tx, row._replace(id="c0", advertiser="globex"))
        with store.transaction() as tx:  # a change: body and updated_at replaced, owner and creation kept
            store.upsert_ad_campaign(
                tx, row._replace(advertiser="globex", body={"paused": True}, created_at=99.0, updated_at=12.0)
            )
        assert [r.id for r in store.ad_campaigns()] == ["c0", "c1"]
        assert store.ad_campaigns("acme") == [row._replace(body={"paused": True}, updated_at=12.0)]
        assert [r.id for r in store.ad_campaigns("globex")] == ["c0"] and store.ad_campaigns("nobody") == []
        with pytest.raises(_Boom), store.transaction() as tx:
            store.upsert_ad_campaign(tx, row._replace(id="c9"))
            raise _Boom
        assert len(store.ad_campaigns()) == 2

    def test_ad_log_appends_filters_sums_spend_and_forgets_an_erased_person(self, world: Any) -> None:
        store, u, p = world
        imp = AdLogRow(0, "impression", 100.0, "c1", u["a"], p["p1"], 2500, "r1", "DE", None)
        with store.transaction() as tx:
            s1, s2 = store.append_ad_log(tx, [imp, imp._replace(user=u["b"], ts=200.0, country=None)])
        with store.transaction() as tx:
            (s3,) = store.append_ad_log(tx, [imp._replace(kind="click", ts=150.0, price=0, ref=s1)])
            (s4,) = store.append_ad_log(tx, [imp._replace(campaign="c2", ts=300.0, price=700)])
        assert s1 < s2 < s3 < s4
        log = store.ad_log()
        assert [r.seq for r in log] == [s1, s2, s3, s4] and log[0] == imp._replace(seq=s1)
        assert log[2].ref == s1 and log[1].country is None
        assert [r.seq for r in store.ad_log(campaigns=["c2"])] == [s4] and store.ad_log(campaigns=[]) == []
        assert [r.seq for r in store.ad_log(kinds=["click"])] == [s3]
        assert [r.seq for r in store.ad_log(t_from=150.0, t_to=300.0)] == [s2, s3]
        assert [r.seq for r in store.ad_log(user=u["b"])] == [s2]
        assert [r.seq for r in store.ad_log(s2, limit=1)] == [s3]
        assert store.ad_spend(since=150.0) == {"c1": (2500, 5000), "c2": (700, 700)}
        with pytest.raises(ValueError, match="unknown ad log kind"), store.transaction() as tx:
            store.append_ad_log(tx, [imp._replace(kind="nope")])
        with store.transaction() as tx:
            removed = store.delete_user_data(tx, u["a"])
        assert removed["ad_log"] == 3
        assert [r.user for r in store.ad_log()] == [None, u["b"], None, None]
        assert store.ad_spend(since=0.0) == {"c1": (5000, 5000), "c2": (700, 700)}  # billing stays

    def test_experiments_upsert_keep_creation(self, world: Any) -> None:
        store, _, _ = world
        assert store.experiments() == []
        row = ExperimentRow("feed-test", {"layer": "feed", "status": "draft"}, 10.0, 10.0)
        with store.transaction() as tx:
            store.upsert_experiment(tx, row)
            store.upsert_experiment(tx, row._replace(name="ads-test"))
        with store.transaction() as tx:  # a change: body and updated_at replaced, creation kept
            store.upsert_experiment(tx, row._replace(body={"status": "running"}, created_at=99.0, updated_at=12.0))
        assert [r.name for r in store.experiments()] == ["ads-test", "feed-test"]
        assert store.experiments()[1] == row._replace(body={"status": "running"}, updated_at=12.0)
        with pytest.raises(_Boom), store.transaction() as tx:
            store.upsert_experiment(tx, row._replace(name="gone"))
            raise _Boom
        assert len(store.experiments()) == 2

    def test_exposures_are_idempotent_per_experiment_and_user_and_erased_with_the_person(self, world: Any) -> None:
        store, u, _ = world
        first = ExposureRow("e1", u["a"], "control", 100.0)
        with store.transaction() as tx:
            new = store.add_exposures(tx, [first, ExposureRow("e1", u["b"], "treatment", 50.0)])
            new += store.add_exposures(tx, [first._replace(arm="treatment", ts=200.0)])  # the first stays
        assert new == 2
        with store.transaction() as tx:
            assert store.add_exposures(tx, [first._replace(ts=300.0), ExposureRow("e2", u["a"], "x", 5.0)]) == 1
            assert store.add_exposures(tx, []) == 0
        assert store.exposures() == [
            ExposureRow("e1", u["b"], "treatment", 50.0),
            first,
            ExposureRow("e2", u["a"], "x", 5.0),
        ]
        assert store.exposures("e1") == [ExposureRow("e1", u["b"], "treatment", 50.0), first]
        assert store.exposures(user=u["a"]) == [first, ExposureRow("e2", u["a"], "x", 5.0)]
        assert store.exposures("e2", user=u["b"]) == [] and store.exposures("nope") == []
        with pytest.raises(_Boom), store.transaction() as tx:
            store.add_exposures(tx, [ExposureRow("e3", u["c"], "x", 1.0)])
            raise _Boom
        assert store.exposures("e3") == []
        with store.transaction() as tx:
            removed = store.delete_user_data(tx, u["a"])
        assert removed["exposures"] == 2
        assert store.exposures() == [ExposureRow("e1", u["b"], "treatment", 50.0)]

    def test_post_scores_replace_per_name(self, world: Any) -> None:
        store, _, p = world
        assert store.post_scores() == {}
        with store.transaction() as tx:
            store.set_post_scores(tx, "offensive", [p["p2"], p["p1"]], [0.25, 0.5])
            store.set_post_scores(tx, "hate", [p["p3"]], [0.125])
        with store.transaction() as tx:
            store.set_post_scores(tx, "offensive", [p["p2"]], [0.75])
        got = store.post_scores()
        assert sorted(got) == ["hate", "offensive"]
        posts, scores = got["offensive"]
        assert posts.tolist() == [p["p1"], p["p2"]] and scores.tolist() == [0.5, 0.75] and scores.dtype == np.float32
        assert store.post_scores(since_idx=p["p1"])["offensive"][0].tolist() == [p["p2"]]

    def test_notifications_upsert_by_key_read_and_outbox(self, world: Any) -> None:
        store, u, p = world
        row = NotificationRow(
            0, u["a"], "like:1:0", "like", p["p1"], [2], [7], 10.0, 10.0, None, 20.0, "digest", 0.3, None
        )
        with store.transaction() as tx:
            (n1,) = store.upsert_notifications(tx, [row])
            (n2,) = store.upsert_notifications(tx, [row._replace(key="reply:9", kind="reply", updated_at=11.0)])
        with store.transaction() as tx:  # the same key again: the row is updated, its id and creation kept
            (again,) = store.upsert_notifications(
                tx, [row._replace(actors=[2, 3], sources=[7, 8], updated_at=12.0, created_at=99.0)]
            )
        assert again == n1 and n1 != n2
        got = store.notifications(u["a"])
        assert [r.id for r in got] == [n1, n2]  # newest first
        assert got[0].actors == [2, 3] and got[0].sources == [7, 8] and got[0].created_at == 10.0
        assert got[0] == row._replace(id=n1, actors=[2, 3], sources=[7, 8], updated_at=12.0)
        assert [r.id for r in store.notifications(u["a"], keys=["reply:9"])] == [n2]
        assert [r.id for r in store.notifications(u["a"], ids=[n2])] == [n2] and store.notifications(u["b"]) == []
        assert store.unread_notifications(u["a"]) == 2
        with store.transaction() as tx:
            assert store.mark_notifications_read(tx, u["a"], [n2], 13.0) == 1
            assert store.mark_notifications_read(tx, u["b"], None, 13.0) == 0  # not b's
        assert store.unread_notifications(u["a"]) == 1
        with store.transaction() as tx:
            d1, d2 = store.enqueue_deliveries(
                tx, [Delivery(0, n1, u["a"], "webpush", 20.0, 0, ""), Delivery(0, n2, u["a"], "webhook", 5.0, 0, "")]
            )
        assert [d.id for d in store.due_deliveries(20.0)] == [d2, d1]  # by due time
        assert [d.id for d in store.due_deliveries(10.0)] == [d2]
        with store.transaction() as tx:
            store.settle_delivery(tx, d2, "pending", 1, 30.0)  # a retry, later
            store.settle_delivery(tx, d1, "sent", 1, 20.0, at=21.0)
        assert store.due_deliveries(25.0) == [] and store.due_deliveries(30.0)[0].attempts == 1
        assert store.notifications(u["a"], ids=[n1])[0].pushed_at == 21.0
        with pytest.raises(ValueError, match="unknown delivery state"), store.transaction() as tx:
            store.settle_delivery(tx, d2, "lost", 2, 30.0)
        with store.transaction() as tx:
            store.set_push_subscription(tx, u["a"], "https://push.example/1", "key", "auth")
            store.set_push_subscription(tx, u["b"], "https://push.example/1", "key2", "auth2")  # the browser moved
            store.set_push_subscription(tx, u["b"], "https://push.example/2", "key3", "auth3")
        assert store.push_subscriptions(u["a"]) == []
        assert store.push_subscriptions(u["b"]) == [
            ("https://push.example/1", "key2", "auth2"),
            ("https://push.example/2", "key3", "auth3"),
        ]
        with store.transaction() as tx:
            assert store.delete_push_subscription(tx, "https://push.example/1") == 1
        assert len(store.push_subscriptions(u["b"])) == 1

    def test_user_summary(self, world: Any) -> None:
        store, u, p = world
        a, b, c = u["a"], u["b"], u["c"]
        append(
            store,
            batch(
                [
                    (K.FOLLOW, b, None, a, T0, None, None),
                    (K.FOLLOW, c, None, a, T0, None, None),
                    (K.FOLLOW, a, None, c, T0, None, None),
                    (K.LIKE, a, p["p1"], None, T0, None, None),
                ]
            ),
        )
        assert store.user_summary(a) == UserSummary(
            id="a",
            idx=a,
            handle="@a",
            created_at=T0,
            community=None,
            interests=[],
            events=2,
            following=1,
            followers=2,
            posts=3,
        )
        assert store.user_summary(u["e"]) == UserSummary(
            id="e",
            idx=u["e"],
            handle="@e",
            created_at=T0 + 4,
            community=None,
            interests=[],
            events=0,
            following=0,
            followers=0,
            posts=0,
        )
        assert store.user_summary(999) is None

    # ------------------------------------------------------------------ bulk load
    @pytest.mark.parametrize("n", [3, 2000])  # small loads keep the indexes; large ones may rebuild them
    def test_bulk_load_keeps_reads_correct(self, world: Any, n: int) -> None:
        store, u, p = world
        append(store, batch([(K.LIKE, u["e"], p["p3"], None, T0, None, None)] * 10))
        rows = [(K.IMPRESSION, u["abcd"[i % 4]], p["p1"], None, T0 + i, None, i) for i in range(n)]
        with store.bulk_load(n):
            for part in (rows[: n // 2], rows[n // 2 :]):
                append(store, batch(part))
            assert store.count_events() == 10 + n  # readable inside the block
        assert store.count_events(K.IMPRESSION) == n and store.max_seq() == 10 + n
        assert [e.seq for e in store.user_events(u["b"], limit=n)] == [11 + i for i in range(n) if i % 4 == 1][::-1]
        assert all_events(store, since_seq=10).equals(numeric(batch(rows)).with_seq(11))
        # a failure inside still leaves the store usable and complete
        with store.bulk_load(n), pytest.raises(_Boom), store.transaction() as tx:
            store.append_events(tx, batch(rows))
            raise _Boom
        assert store.count_events() == 10 + n and len(store.user_events(u["e"])) == 10


__all__ = [
    "MakeStore",
    "StoreContract",
    "add_posts",
    "add_users",
    "append",
    "assert_implements_store",
    "batch",
    "protocol_members",
]
