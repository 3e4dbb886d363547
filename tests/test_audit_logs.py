"""``glassfeed audit`` from logs: a hand-made store whose every metric is computed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from glassfeed.audit.logs import audit_stores, load_logs, policy_of
from glassfeed.cli import app
from glassfeed.domain import EventBatch, EventKind
from glassfeed.ingest import Ingestor
from glassfeed.store import open_store

T0 = 1_767_225_600.0


def _store(path: Path, tagged: dict[str, list[tuple[str, str]]], likes: list[tuple[str, str]]) -> None:
    """Users a,b (community 0) and c,d (community 1); posts by a (div 0.9), b (0.1), c (0.6), d (unknown)."""
    st = open_store(path)
    ing = Ingestor(st, clock=lambda: T0 + 1000)
    ing.create_users(
        [
            {"id": u, "handle": u, "created_at": T0 - 100, "community": c}
            for u, c in (("a", 0), ("b", 0), ("c", 1), ("d", 1))
        ],
        with_tokens=False,
    )
    ing.create_posts(
        [
            {"id": "pa", "author": "a", "text": "x", "created_at": T0, "topics": ["politics"], "divisiveness": 0.9},
            {"id": "pb", "author": "b", "text": "x", "created_at": T0, "topics": ["music"], "divisiveness": 0.1},
            {"id": "pc", "author": "c", "text": "x", "created_at": T0, "topics": ["politics"], "divisiveness": 0.6},
            {"id": "pd", "author": "d", "text": "x", "created_at": T0, "topics": ["food"]},
        ]
    )
    u, p = st.user_ids(), st.post_ids()
    rows, req = [], []
    for tag, pairs in tagged.items():
        for i, (user, post) in enumerate(pairs):
            rows.append((int(EventKind.IMPRESSION), u[user], p[post], i))
            req.append(f"{tag}:s-{user}.0" if tag else None)
    for user, post in likes:
        rows.append((int(EventKind.LIKE), u[user], p[post], -1))
        req.append(None)
    a = np.array(rows, np.int64)
    ing.ingest_batch(
        EventBatch.from_columns(
            kind=a[:, 0], user=a[:, 1], post=a[:, 2], ts=np.full(len(a), T0 + 10.0), position=a[:, 3], request_id=req
        )
    )
    st.close()


def test_policy_tag_parsing():
    assert policy_of("engagement:abc.0") == "engagement"
    assert policy_of("abc.0") == policy_of(None) == policy_of(":x.0") == "untagged"


def test_audit_by_hand(tmp_path):
    db = tmp_path / "s.db"
    _store(
        db,
        {
            # treatment: c sees pa, pb, pc ; d sees pa
            "engagement": [("c", "pa"), ("c", "pb"), ("c", "pc"), ("d", "pa")],
            # control: a sees pc, pd ; b sees pd
            "chronological": [("a", "pc"), ("a", "pd"), ("b", "pd")],
            "": [("a", "pb")],
        },
        likes=[("c", "pa"), ("a", "pd")],
    )
    rep = audit_stores([db])
    e, c, un = rep.rows["engagement"], rep.rows["chronological"], rep.rows["untagged"]
    assert (e["impressions"], e["viewers"], c["impressions"], c["viewers"], un["impressions"]) == (4, 2, 3, 2, 1)
    # divisive (>= 0.5): pa, pc; pd unknown is excluded
    assert e["divisive_share"] == pytest.approx(3 / 4)
    assert c["divisive_share"] == pytest.approx(1.0)
    # engaged: (c, pa) and (a, pd)
    assert e["engagement_rate"] == pytest.approx(1 / 4)
    assert c["engagement_rate"] == pytest.approx(1 / 3)
    # topic entropy (normalised by log 3 topics): c saw politics x2 + music -> H(2/3, 1/3); d saw politics -> 0
    h = -(2 / 3 * np.log(2 / 3) + 1 / 3 * np.log(1 / 3)) / np.log(3)
    assert e["topic_entropy"] == pytest.approx(h / 2)
    # Gini of impressions over the 4 authors: engagement [a2, b1, c1, d0] -> sorted [0,1,1,2]
    g = sum((2 * i - 4 - 1) * x for i, x in enumerate([0, 1, 1, 2], 1)) / (4 * 4)
    assert e["creator_gini"] == pytest.approx(g)
    # amplification by author community: community 0 posts (pa, pb): treatment reach 2/2, control 0/2 -> inf
    # community 1 posts (pc, pd): treatment 1/2 (c saw pc), control 2/2 -> 0.5 - 1 = -0.5
    amp = rep.amplification["engagement"]
    assert amp["community 0"] is None  # +inf is reported as undefined (no control reach)
    assert amp["community 1"] == pytest.approx(-0.5)
    assert "untagged" not in rep.amplification


def test_load_logs_reads_tagged_impressions_and_engagements_since_a_time(tmp_path):
    db = tmp_path / "s.db"
    _store(db, {"engagement": [("c", "pa")], "bridging": [("d", "pb")]}, likes=[("c", "pa")])  # at T0 + 10
    st = open_store(db)
    ing = Ingestor(st, clock=lambda: T0 + 1000)
    u, p = st.user_ids(), st.post_ids()
    K = EventKind
    ing.ingest_batch(
        EventBatch.from_columns(
            kind=[K.IMPRESSION, K.IMPRESSION, K.IMPRESSION, K.LIKE, K.REPOST, K.CLICK, K.FOLLOW],
            user=[u["a"], u["b"], u["a"], u["a"], u["b"], u["b"], u["a"]],
            post=[p["pc"], p["pd"], p["pd"], p["pc"], p["pd"], p["pc"], -1],
            target_user=[-1, -1, -1, -1, -1, -1, u["b"]],
            ts=[T0 + 50, T0 + 40, T0 + 60, T0 + 55, T0 + 70, T0 + 80, T0 + 90],
            position=[0, 0, 1, -1, -1, -1, -1],
            request_id=["chronological:s.0", "engagement:t.0", None, None, None, None, None],
        )
    )
    st.close()
    every = load_logs(db)
    assert every.policies == ["engagement", "bridging", "chronological", "untagged"]  # in log order
    later = load_logs(db, since_ts=T0 + 20)
    # impressions in log (seq) order, whatever their times; the click and the follow are not engagements
    assert later.policies == ["chronological", "engagement", "untagged"]
    assert later.imp_user.tolist() == [u["a"], u["b"], u["a"]]
    assert later.imp_post.tolist() == [p["pc"], p["pd"], p["pd"]]
    assert later.imp_policy.tolist() == [0, 1, 2]
    n = later.n_posts
    assert later.engaged_keys.tolist() == sorted([u["a"] * n + p["pc"], u["b"] * n + p["pd"]])
    assert len(every.engaged_keys) == 3 and (later.n_users, later.n_posts) == (5, 5)
    assert later.user_community[[u["a"], u["c"]]].tolist() == [0, 1] and later.post_author[p["pb"]] == u["b"]


def test_audit_cli_pools_stores_and_writes_json(tmp_path):
    _store(tmp_path / "engagement.db", {"engagement": [("c", "pa"), ("d", "pc")]}, likes=[])
    _store(tmp_path / "chronological.db", {"chronological": [("c", "pb"), ("d", "pc")]}, likes=[])
    out = tmp_path / "audit.json"
    res = CliRunner().invoke(
        app,
        [
            "audit",
            "--db",
            str(tmp_path / "engagement.db"),
            "--db",
            str(tmp_path / "chronological.db"),
            "--json",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    # separate stores = disjoint users; community 1 (pc, pd) reached by both arms' 2/2 users? c saw pa / pb
    # treatment: community 0 reach 1/2 (c saw pa), community 1 reach 1/2 (d saw pc); control: 1/2 and 1/2
    assert data["amplification"]["engagement"] == {"community 0": 0.0, "community 1": 0.0}
    assert data["rows"]["engagement"]["divisive_share"] == 1.0
    assert data["rows"]["chronological"]["divisive_share"] == 0.5


def test_cli_prints_findings_intervals_and_flags_and_writes_them(tmp_path, monkeypatch):
    """The command reads [audit] from the settings: the same tiny stores are flagged by default and not with
    min_viewers = 2 (the environment's GLASSFEED_AUDIT__*)."""
    _store(tmp_path / "engagement.db", {"engagement": [("c", "pa"), ("d", "pc")]}, likes=[])
    _store(tmp_path / "chronological.db", {"chronological": [("c", "pb"), ("d", "pc")]}, likes=[])
    dbs = ["--db", str(tmp_path / "engagement.db"), "--db", str(tmp_path / "chronological.db")]
    out = tmp_path / "audit.json"
    res = CliRunner().invoke(app, ["audit", *dbs, "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "Findings" in res.output and "too few viewers to tell (2 viewers; at least 30 needed)" in res.output
    data = json.loads(out.read_text())
    assert data["flags"] == {"engagement": "too few viewers to tell (2 viewers; at least 30 needed)"} | {
        "chronological": "too few viewers to tell (2 viewers; at least 30 needed)"
    }
    assert data["findings"] == [] and data["method"]["unit"] == "viewer"
    assert len(data["intervals"]["engagement"]["divisive_share"]) == 2
    monkeypatch.setenv("GLASSFEED_AUDIT__MIN_VIEWERS", "2")
    monkeypatch.setenv("GLASSFEED_AUDIT__MIN_IMPRESSIONS", "1")
    res = CliRunner().invoke(app, ["audit", *dbs, "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["flags"] == {"engagement": None, "chronological": None}
    assert all(c["flag"] and c["flag"].startswith(("not distinguishable", "undefined")) for c in data["comparisons"])
