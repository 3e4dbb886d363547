"""Last.fm HetRec 2011: friends -> mutual follows; user-artist plays -> likes of the artist's post.

Each artist becomes an account (handle = artist name) with one post (text = name, topics = its three most
used tags). Listening has no timestamps upstream, so follows and likes are stamped at the dataset's
release (2011-05-01). The play count is kept as the like's ``value`` (capped at the value limit).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from glassfeed.domain import EventBatch, EventKind
from glassfeed.importers._common import Progress, create_posts, create_users, ensure_new, noop, write_events
from glassfeed.ingest import Ingestor

RELEASE_TS = datetime(2011, 5, 1, tzinfo=UTC).timestamp()


def import_lastfm(folder: Path, ingestor: Ingestor, progress: Progress | None = None) -> dict[str, int]:
    say = progress or noop
    friends = pd.read_csv(folder / "user_friends.dat", sep="\t")
    plays = pd.read_csv(folder / "user_artists.dat", sep="\t")
    artists = pd.read_csv(folder / "artists.dat", sep="\t", usecols=["id", "name"], quoting=3, dtype={"name": str})
    tags = pd.read_csv(folder / "tags.dat", sep="\t", encoding="latin-1", quoting=3)
    tagged = pd.read_csv(folder / "user_taggedartists.dat", sep="\t", usecols=["artistID", "tagID"])
    people = np.unique(np.concatenate([friends["userID"], friends["friendID"], plays["userID"]]))
    ensure_new(ingestor, f"lfm:u{people[0]}", "lastfm")
    u_idx = create_users(
        ingestor,
        [{"id": f"lfm:u{u}", "handle": f"lastfm-user-{u}", "created_at": RELEASE_TS - 2} for u in people.tolist()],
        say,
    )
    create_users(
        ingestor,
        [
            {"id": f"lfm:a{a}", "handle": str(n)[:200] or f"artist-{a}", "created_at": RELEASE_TS - 2}
            for a, n in zip(artists["id"].tolist(), artists["name"].fillna(""))
        ],
        say,
    )
    tag_name = dict(zip(tags["tagID"], tags["tagValue"].astype(str)))
    top = (
        tagged.groupby(["artistID", "tagID"])
        .size()
        .rename("n")
        .reset_index()
        .sort_values(["artistID", "n"], ascending=[True, False])
        .groupby("artistID")
        .head(3)
    )
    art_tags: dict[int, list[str]] = {}
    for a, t in zip(top["artistID"].tolist(), top["tagID"].tolist()):
        name = tag_name.get(t, "").replace(",", " ").strip()
        if name:
            art_tags.setdefault(a, []).append(name)
    p_idx = create_posts(
        ingestor,
        [
            {
                "id": f"lfm:p{a}",
                "author": f"lfm:a{a}",
                "text": str(n)[:3000],
                "topics": art_tags.get(a, []),
                "created_at": RELEASE_TS - 1,
            }
            for a, n in zip(artists["id"].tolist(), artists["name"].fillna(""))
        ],
        say,
    )
    # mutual follows: each friendship in both directions, once
    src = np.concatenate([friends["userID"], friends["friendID"]])
    dst = np.concatenate([friends["friendID"], friends["userID"]])
    pairs = np.unique(np.stack([src, dst], 1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    f_src = u_idx[np.searchsorted(people, pairs[:, 0])]
    f_dst = u_idx[np.searchsorted(people, pairs[:, 1])]
    known = plays["artistID"].isin(artists["id"])
    pl = plays[known]
    art_pos = pd.Index(artists["id"]).get_indexer(pl["artistID"])
    n_f, n_l = len(pairs), len(pl)
    ev = EventBatch.from_columns(
        kind=np.concatenate([np.full(n_f, int(EventKind.FOLLOW)), np.full(n_l, int(EventKind.LIKE))]),
        user=np.concatenate([f_src, u_idx[np.searchsorted(people, pl["userID"].to_numpy())]]),
        target_user=np.concatenate([f_dst, np.full(n_l, -1)]),
        post=np.concatenate([np.full(n_f, -1), p_idx[art_pos]]),
        ts=np.concatenate([np.full(n_f, RELEASE_TS - 1), np.full(n_l, RELEASE_TS)]),
        value=np.concatenate(
            [np.full(n_f, np.nan), np.minimum(pl["weight"].to_numpy(np.float64), ingestor.limits.max_dwell_ms)]
        ),
    )
    n = write_events(ingestor, ev, say)
    return {
        "users": len(people),
        "artists": len(artists),
        "posts": len(artists),
        "follows": n_f,
        "likes": n_l,
        "events": n,
        "plays_of_unknown_artists_skipped": int((~known).sum()),
    }
