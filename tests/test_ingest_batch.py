"""The write path carries ``EventBatch`` end to end: Ingestor.ingest_batch, store.append_events, listeners."""

from __future__ import annotations

import numpy as np
import pytest

from glassfeed.domain import EventBatch, EventKind
from glassfeed.ingest import IngestError, Ingestor
from glassfeed.store import open_store

NOW = 1_700_000_000.0
LIKE, FOLLOW, UNFOLLOW = int(EventKind.LIKE), int(EventKind.FOLLOW), int(EventKind.UNFOLLOW)


@pytest.fixture()
def ing(tmp_path):
    st = open_store(tmp_path / "batch.db")
    ing = Ingestor(st, clock=lambda: NOW)
    ing.create_users([{"id": f"u{i}"} for i in range(4)], with_tokens=False)
    ing.create_posts([{"id": f"p{i}", "author": "u0", "text": "t", "created_at": NOW - 10} for i in range(4)])
    yield ing
    st.close()


def _likes(n: int, **cols) -> EventBatch:
    return EventBatch.from_columns(
        kind=np.full(n, LIKE), user=np.full(n, 1), post=np.arange(n) % 4 + 1, ts=NOW - 100 + np.arange(n), **cols
    )


def test_bad_batch_is_rejected_whole_with_item_errors(ing):
    batch = _likes(5)
    batch.post[3] = 99
    batch.ts[4] = NOW + 3600
    with pytest.raises(IngestError) as e:
        ing.ingest_batch(batch)
    assert [(x.index, x.field) for x in e.value.errors] == [(3, "post"), (4, "ts")]
    assert ing.store.count_events() == 0


def test_listeners_get_the_stored_batch_with_seq_and_object_columns(ing):
    got: list[EventBatch] = []
    ing.listeners.append(got.append)
    first = ing.ingest_batch(_likes(2))
    res = ing.ingest_batch(_likes(3, request_id=["r1", None, "r3"], surface=["home"] * 3))
    assert (first.first_seq, first.last_seq, res.first_seq, res.last_seq) == (1, 2, 3, 5)
    assert [b.seq.tolist() for b in got] == [[1, 2], [3, 4, 5]]
    assert got[0].request_id is None and got[1].request_id.tolist() == ["r1", None, "r3"]
    assert got[1].surface.tolist() == ["home"] * 3
    stored = sorted(ing.store.user_events(1), key=lambda r: r[0])
    assert [(r[0], r[9]) for r in stored] == [(1, None), (2, None), (3, "r1"), (4, None), (5, "r3")]


def test_client_ids_are_idempotent_in_batches_too(ing):
    got: list[EventBatch] = []
    ing.listeners.append(got.append)
    res = ing.ingest_batch(_likes(3, id=["a", "b", "a"]))
    assert (res.accepted, res.duplicates) == (2, 1)
    res = ing.ingest_batch(_likes(3, id=["b", None, "c"]))
    assert (res.accepted, res.duplicates, res.first_seq, res.last_seq) == (2, 1, 3, 4)
    assert got[1].id.tolist() == [None, "c"] and got[1].seq.tolist() == [3, 4]
    assert ing.store.count_events() == 4


def test_wire_and_batch_paths_store_the_same_rows(ing, tmp_path):
    wire = [
        {
            "kind": "dwell",
            "user": "u1",
            "post": "p2",
            "value": 1500,
            "ts": NOW - 5,
            "position": 3,
            "surface": "home",
            "request_id": "q.0",
        },
        {"kind": "follow", "user": "u2", "target_user": "u3", "ts": "2023-11-14T22:13:00Z"},
        {"kind": "see_less", "user": "u3", "target_user": "u1", "id": "x1"},
    ]
    ing.ingest_events(wire)
    other = Ingestor(open_store(tmp_path / "other.db"), clock=lambda: NOW)
    other.create_users([{"id": f"u{i}"} for i in range(4)], with_tokens=False)
    other.create_posts([{"id": f"p{i}", "author": "u0", "text": "t", "created_at": NOW - 10} for i in range(4)])
    other.ingest_batch(other.parse_events(wire))
    for u in (1, 2, 3):
        assert ing.store.user_events(u) == other.store.user_events(u)
    assert other.store.load_edges("follows")[0].tolist() == [other.store.user_idx("u2")]
    other.store.close()


def test_store_skips_stored_ids_and_keeps_numbers_consecutive(ing):
    st = ing.store
    with st.transaction() as tx:
        assert st.append_events(tx, _likes(2, id=["a", "b"])) == (1, 2)
    with st.transaction() as tx:
        assert st.append_events(tx, _likes(4, id=["a", "c", "b", None])) == (3, 4)
        assert st.append_events(tx, EventBatch.empty()) == (5, 4)
    assert st.max_seq() == 4
    assert sorted((r[0], r[1]) for r in st.user_events(1)) == [(1, "a"), (2, "b"), (3, "c"), (4, None)]


@pytest.mark.parametrize(
    "kinds,edge", [((FOLLOW, UNFOLLOW), False), ((UNFOLLOW, FOLLOW), True), ((FOLLOW, UNFOLLOW, FOLLOW), True)]
)
def test_graph_events_of_one_batch_apply_in_seq_order(ing, kinds, edge):
    n = len(kinds)
    ing.ingest_batch(
        EventBatch.from_columns(
            kind=list(kinds), user=np.full(n, 1), target_user=np.full(n, 2), ts=NOW - 10 + np.arange(n)
        )
    )
    src, dst, created = ing.store.load_edges("follows")
    assert (src.tolist(), dst.tolist()) == (([1], [2]) if edge else ([], []))
    if edge:
        assert created[0] == NOW - 10 + n - 1  # the last follow's time
