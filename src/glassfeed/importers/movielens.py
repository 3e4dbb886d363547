"""MovieLens 100K / 1M ratings -> users, one post per movie, impressions (every rating) and likes (>= 4 stars).

The catalogue account ``ml:movielens`` authors the movie posts (title as text, genres as topics). Each rating
becomes an impression whose ``value`` is the star rating; ratings >= 4 also become a like one ms later.
ML-1M here has only derived ratings without timestamps or joinable titles (see its SOURCE.md): its events
are stamped at the end of the collection period and its posts carry the dense item id, not a title.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from glassfeed.domain import EventBatch, EventKind
from glassfeed.importers._common import Progress, create_posts, create_users, ensure_new, noop, write_events
from glassfeed.ingest import Ingestor

LIKE_MIN_STARS = 4
ML1M_TS = datetime(2003, 2, 28, tzinfo=UTC).timestamp()  # end of ML-1M collection; no real stamps


def _ratings_events(r_user: np.ndarray, r_post: np.ndarray, stars: np.ndarray, ts: np.ndarray) -> EventBatch:
    like = stars >= LIKE_MIN_STARS
    n, m = len(stars), int(like.sum())
    return EventBatch.from_columns(
        kind=np.concatenate([np.full(n, int(EventKind.IMPRESSION)), np.full(m, int(EventKind.LIKE))]),
        user=np.concatenate([r_user, r_user[like]]),
        post=np.concatenate([r_post, r_post[like]]),
        ts=np.concatenate([ts, ts[like] + 0.001]),
        value=np.concatenate([stars.astype(np.float64), np.full(m, np.nan)]),
    )


def _catalogue(ingestor: Ingestor, uid: str, handle: str, ts: float) -> str:
    ingestor.create_users([{"id": uid, "handle": handle, "created_at": ts}], with_tokens=False)
    return uid


def import_ml100k(folder: Path, ingestor: Ingestor, progress: Progress | None = None) -> dict[str, int]:
    say = progress or noop
    ensure_new(ingestor, "ml:movielens", "ml-100k")
    r = pd.read_csv(folder / "u.data", sep="\t", names=["user", "item", "rating", "ts"])
    genres = pd.read_csv(folder / "u.genre", sep="|", names=["name", "i"]).dropna()["name"].tolist()
    items = pd.read_csv(folder / "u.item", sep="|", header=None, encoding="latin-1")
    users = pd.read_csv(folder / "u.user", sep="|", names=["id", "age", "gender", "occupation", "zip"])
    t0 = float(r["ts"].min())
    first_seen = r.groupby("user")["ts"].min()
    author = _catalogue(ingestor, "ml:movielens", "MovieLens", t0 - 1)
    u_idx = create_users(
        ingestor,
        [{"id": f"ml:u{u}", "handle": f"ml-user-{u}", "created_at": float(first_seen.get(u, t0))} for u in users["id"]],
        say,
    )
    first_rating = r.groupby("item")["ts"].min()
    flags = items.iloc[:, 5 : 5 + len(genres)].to_numpy()
    posts = []
    for k, row in enumerate(items.itertuples(index=False)):
        mid = int(row[0])
        posts.append(
            {
                "id": f"ml:m{mid}",
                "author": author,
                "text": str(row[1]),
                "topics": [g.lower() for g, f in zip(genres, flags[k]) if f == 1 and g != "unknown"],
                "created_at": float(first_rating.get(mid, t0)) - 1,
            }
        )
    p_idx = create_posts(ingestor, posts, say)
    u_map = dict(zip(users["id"], u_idx))
    p_map = dict(zip(items[0], p_idx))
    ev = _ratings_events(
        r["user"].map(u_map).to_numpy(np.int64),
        r["item"].map(p_map).to_numpy(np.int64),
        r["rating"].to_numpy(),
        r["ts"].to_numpy(np.float64),
    )
    n = write_events(ingestor, ev, say)
    return {"users": len(users) + 1, "posts": len(posts), "events": n}


def import_ml1m(folder: Path, ingestor: Ingestor, progress: Progress | None = None) -> dict[str, int]:
    say = progress or noop
    ensure_new(ingestor, "ml1m:movielens", "ml-1m")
    r = pd.read_csv(folder / "derived" / "ratings_dense_item_no_timestamp.tsv", sep="\t")
    r.columns = ["user", "item", "rating"]
    users = np.unique(r["user"].to_numpy())
    items = np.unique(r["item"].to_numpy())
    author = _catalogue(ingestor, "ml1m:movielens", "MovieLens-1M", ML1M_TS - 86400)
    u_idx = create_users(
        ingestor,
        [{"id": f"ml1m:u{u}", "handle": f"ml1m-user-{u}", "created_at": ML1M_TS - 1} for u in users.tolist()],
        say,
    )
    p_idx = create_posts(
        ingestor,
        [
            {"id": f"ml1m:i{i}", "author": author, "text": f"MovieLens-1M item {i}", "created_at": ML1M_TS - 1}
            for i in items.tolist()
        ],
        say,
    )
    u_pos = np.searchsorted(users, r["user"].to_numpy())
    i_pos = np.searchsorted(items, r["item"].to_numpy())
    ev = _ratings_events(u_idx[u_pos], p_idx[i_pos], r["rating"].to_numpy(), np.full(len(r), ML1M_TS))
    n = write_events(ingestor, ev, say)
    return {"users": len(users) + 1, "posts": len(items), "events": n}
