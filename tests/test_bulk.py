"""Bulk import: JSONL/CSV users, posts and events; fast path equals the Ingestor's rules; bad rows name the line."""

from __future__ import annotations

import orjson
import pytest

from glassfeed.bulk import BulkError, import_path
from glassfeed.domain import EventKind
from glassfeed.ingest import Ingestor
from glassfeed.store import open_store


@pytest.fixture()
def ing(tmp_path):
    st = open_store(tmp_path / "bulk.db")
    ing = Ingestor(st)
    ing.create_users([{"id": f"u{i}"} for i in range(5)], with_tokens=False)
    ing.create_posts([{"id": f"p{i}", "author": f"u{i}", "text": f"post {i}", "created_at": 1.7e9} for i in range(5)])
    yield ing
    st.close()


def _jsonl(path, rows):
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def test_jsonl_events_fast_path_in_chunks(ing, tmp_path):
    rows = [{"kind": "like", "user": f"u{i % 5}", "post": f"p{(i + 1) % 5}", "ts": 1.7e9 + i} for i in range(250)]
    rows.append({"kind": "follow", "user": "u0", "target_user": "u1", "ts": "2024-01-01T00:00:00Z"})
    rows.append({"kind": "dwell", "user": "u2", "post": "p0", "value": 1200, "surface": "home", "position": 3})
    res = import_path(_jsonl(tmp_path / "ev.jsonl", rows), ing, chunk=100)
    assert (res.accepted, res.chunks) == (252, 3)
    st = ing.store
    assert st.count("events") == 252 and st.count("follows") == 1
    last = st.user_events(st.user_idx("u2"), 1)[0]
    assert last.seq == st.max_seq()
    assert (last.kind, last.post, last.value, last.surface, last.position) == (3, st.post_idx("p0"), 1200.0, "home", 3)
    assert st.events_in_window(kinds=[EventKind.FOLLOW]).ts.tolist() == [1704067200.0]


def test_bad_row_names_line_field_reason_and_chunk_is_atomic(ing, tmp_path):
    rows = [{"kind": "like", "user": "u1", "post": "p1"} for _ in range(7)]
    rows[5] = {"kind": "like", "user": "u1", "post": "nope"}
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        b"\n".join(orjson.dumps(r) for r in rows[:3]) + b"\n\n" + b"\n".join(orjson.dumps(r) for r in rows[3:]) + b"\n"
    )
    with pytest.raises(BulkError) as e:
        import_path(path, ing, chunk=4)
    assert f"{path}:7: post: unknown post 'nope'" in str(e.value)  # line 7: the blank line 4 is counted
    assert ing.store.count("events") == 4  # first chunk committed, the bad chunk wrote nothing


def test_malformed_jsonl_line(ing, tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"kind": "like", "user": "u1", "post": "p1"}\n{"kind": \n')
    with pytest.raises(BulkError, match=r"m.jsonl:2: malformed JSON"):
        import_path(path, ing)
    assert ing.store.count("events") == 0


def test_ids_are_idempotent_through_bulk(ing, tmp_path):
    rows = [{"id": f"e{i}", "kind": "click", "user": "u1", "post": "p2"} for i in range(10)]
    path = _jsonl(tmp_path / "ids.jsonl", rows)
    assert import_path(path, ing).accepted == 10
    res = import_path(path, ing)
    assert (res.accepted, res.duplicates) == (0, 10)
    assert ing.store.count("events") == 10


def test_fast_path_rejects_what_ingestor_rejects(ing, tmp_path):
    bad = [
        {"kind": "like", "user": "u1", "post": "p1", "ts": -5},
        {"kind": "dwell", "user": "u1", "post": "p1"},
        {"kind": "like", "user": "u1", "post": "p1", "colour": "red"},
        {"kind": "follow", "user": "u1"},
        {"kind": "like", "user": "u1", "post": "p1", "position": True},
    ]
    for i, row in enumerate(bad):
        with pytest.raises(BulkError):
            import_path(_jsonl(tmp_path / f"b{i}.jsonl", [row]), ing)
    assert ing.store.count("events") == 0


def test_csv_users_posts_events(ing, tmp_path):
    (tmp_path / "u.csv").write_text("id,handle,interests,community\nann,Ann,science|music,2\nben,,,\n")
    (tmp_path / "p.csv").write_text("id,author,text,topics,reply_to\nq1,ann,hi there,news,\nq2,ben,re,,q1\n")
    (tmp_path / "e.csv").write_text(
        "kind,user,post,target_user,ts,value\nlike,ben,q1,,1700000000,\n"
        "follow,ann,,ben,1700000001,\ndwell,ann,q2,,1700000002,900\n"
    )
    assert import_path(tmp_path / "u.csv", ing, kind="users").accepted == 2
    assert import_path(tmp_path / "p.csv", ing, kind="posts").accepted == 2  # reply parent in its own chunk
    assert import_path(tmp_path / "e.csv", ing).accepted == 3
    st = ing.store
    users, posts = st.load_users(), st.load_posts()
    ann = users["id"].index("ann")
    assert (users["interests"][ann], users["community"][ann]) == (["science", "music"], 2)
    assert posts["reply_to"][posts["id"].index("q2")] == st.post_idx("q1")
    (tmp_path / "bad.csv").write_text("kind,user,post\nlike,ben,q1\nlike,zed,q1\n")
    with pytest.raises(BulkError, match=r"bad.csv:3: user: unknown user 'zed'"):
        import_path(tmp_path / "bad.csv", ing)
