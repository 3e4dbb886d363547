"""Posts with real text and authors: FiveThirtyEight tweets (@BarackObama, @realDonaldTrump) and Reddit top
posts (one account per subreddit, since upstream stripped authors; subreddit as topic).

Only posts are imported: these sets have engagement counts but no per-user interactions.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from glassfeed.importers._common import Progress, create_posts, create_users, ensure_new, noop
from glassfeed.ingest import Ingestor


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def import_tweets(folder: Path, ingestor: Ingestor, progress: Progress | None = None) -> dict[str, int]:
    """Each CSV (created_at,text,url,replies,retweets,favorites,user) -> its author's posts; times read as UTC."""
    say = progress or noop
    files = sorted(folder.glob("*.csv"))
    frames = [
        pd.read_csv(f, dtype={"text": str, "url": str, "user": str}, encoding="latin-1")  # per SOURCE.md
        for f in files
    ]
    df = pd.concat(frames, ignore_index=True).dropna(subset=["text", "user"])
    authors = sorted(df["user"].unique())
    ensure_new(ingestor, f"tw:{authors[0]}", "tweets")
    ts = pd.to_datetime(df["created_at"], format="%m/%d/%y %H:%M", utc=True).astype("int64") / 1e9
    create_users(
        ingestor,
        [{"id": f"tw:{a}", "handle": a, "created_at": float(ts[df["user"] == a].min()) - 1} for a in authors],
        say,
    )
    limit = ingestor.limits.max_text_chars
    posts: list[dict[str, Any]] = []
    seen: set[str] = set()
    for url, text, user, t in zip(df["url"], df["text"], df["user"], ts):
        pid = "tw:" + (str(url).rstrip("/").rsplit("/", 1)[-1] if isinstance(url, str) else f"{user}-{t:.0f}")
        if pid in seen:
            continue
        seen.add(pid)
        posts.append(
            {"id": pid, "author": f"tw:{user}", "text": _clip(html.unescape(text), limit), "created_at": float(t)}
        )
    posts.sort(key=lambda p: p["created_at"])
    create_posts(ingestor, posts, say)
    return {"users": len(authors), "posts": len(posts)}


def import_reddit(folder: Path, ingestor: Ingestor, progress: Progress | None = None) -> dict[str, int]:
    """data/<subreddit>.csv -> posts (title + self-text) by account ``r/<subreddit>``; NSFW flagged as a label."""
    say = progress or noop
    files = sorted((folder / "data").glob("*.csv"))
    if not files:
        raise FileNotFoundError(2, "no subreddit CSVs", str(folder / "data"))
    subs = [f.stem for f in files]
    ensure_new(ingestor, f"r/{subs[0]}", "reddit")
    create_users(
        ingestor,
        [
            {"id": f"r/{s}", "handle": f"r/{s}", "created_at": datetime(2005, 6, 1, tzinfo=UTC).timestamp()}
            for s in subs
        ],
        say,
    )
    limit = ingestor.limits.max_text_chars
    posts: list[dict[str, Any]] = []
    for f, sub in zip(files, subs):
        df = pd.read_csv(
            f,
            usecols=["created_utc", "id", "title", "selftext", "over_18"],
            dtype={"id": str, "title": str, "selftext": str},
        )
        for pid, title, body, t, nsfw in zip(
            df["id"], df["title"].fillna(""), df["selftext"].fillna(""), df["created_utc"], df["over_18"]
        ):
            text = html.unescape(title) + ("\n\n" + html.unescape(body) if body else "")
            posts.append(
                {
                    "id": f"reddit:{pid}",
                    "author": f"r/{sub}",
                    "text": _clip(text, limit),
                    "topics": [sub.lower()],
                    "created_at": float(t),
                    "labels": ["nsfw"] if str(nsfw).lower() == "true" else [],
                }
            )
    posts.sort(key=lambda p: p["created_at"])
    dedup = list({p["id"]: p for p in posts}.values())
    create_posts(ingestor, dedup, say)
    return {"users": len(subs), "posts": len(dedup)}
