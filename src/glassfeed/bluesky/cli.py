"""``glassfeed bluesky ...``: ingest Jetstream (file or live), print the feed records and did.json to publish."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import typer

from glassfeed.bluesky.jetstream import JetstreamFollower, JetstreamIngester
from glassfeed.bluesky.settings import load_bluesky_settings
from glassfeed.bluesky.xrpc import did_document
from glassfeed.cli_support import cli_settings, handled, open_ingestor, out
from glassfeed.feed.policy import load_policies
from glassfeed.store import Store
from glassfeed.store.retention import prune

#: Limits of the app.bsky.feed.generator record (lexicon: maxGraphemes).
DISPLAY_NAME_MAX = 24
DESCRIPTION_MAX = 300

log = logging.getLogger(__name__)

bluesky = typer.Typer(no_args_is_help=True, help="Run glassfeed as a Bluesky feed generator (docs/bluesky.md).")


@bluesky.command("ingest")
def ingest(
    ctx: typer.Context,
    file: Path | None = typer.Argument(None, help="JSONL of Jetstream messages; omit to follow the live stream"),
    db: Path | None = typer.Option(None, "--db", help="SQLite store path"),
    url: str | None = typer.Option(None, help="Jetstream websocket URL (default from settings)"),
    batch: int | None = typer.Option(None, min=1, help="messages per transaction (default [bluesky] ingest_batch)"),
    max_messages: int | None = typer.Option(None, help="stop the live stream after this many"),
) -> None:
    """Ingest Jetstream messages (posts, likes, reposts, follows, blocks, deletes); resumes from the saved cursor.
    Without FILE: follow the stream until SIGTERM/SIGINT (or --max-messages), reconnecting with backoff; with
    [store] retention_days above 0, also prune older posts every [bluesky] prune_interval_s (docs/bluesky.md)."""
    with handled():
        settings = cli_settings(ctx, db)
        cfg = load_bluesky_settings(settings.bluesky)
        if batch is not None:
            cfg = replace(cfg, ingest_batch=batch)
        stream = url or cfg.jetstream_url
        if file is None and not stream.startswith(("ws://", "wss://")):
            raise ValueError(
                f"the Jetstream URL (--url or [bluesky] jetstream_url) must be ws:// or wss://: {stream!r}"
            )
        ing = open_ingestor(settings, create=True)
        js = JetstreamIngester(ing, rewind_s=cfg.cursor_rewind_s)
        try:
            if file is not None:
                stats = js.ingest_file(file, batch=cfg.ingest_batch)
            else:
                days = settings.store.retention_days
                follower = JetstreamFollower(
                    js,
                    stream,
                    cfg,
                    max_messages=max_messages,
                    prune=(lambda: _prune(ing.store, days)) if days > 0 else None,
                )
                with _log_to_stderr(), follower.signals():
                    stats = follower.run()
            cursor = js.cursor
        finally:
            ing.store.close()
        out.print(json.dumps({**stats.as_dict(), "cursor": cursor}))


def _prune(store: Store, days: float) -> None:
    report = prune(store, days)
    if report.posts or report.events:
        log.info("pruned posts older than %g days: %s", days, json.dumps(report.as_dict()))


@contextmanager
def _log_to_stderr() -> Iterator[None]:
    """glassfeed's log records at INFO and above to stderr, as text lines, while the block runs."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("glassfeed")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@bluesky.command("records")
def records(ctx: typer.Context) -> None:
    """Print did.json and one app.bsky.feed.generator record per published policy (to put in your repo)."""
    settings = cli_settings(ctx)
    cfg = load_bluesky_settings(settings.bluesky)
    pols = load_policies(settings.serving.policies_dir or None)
    names = list(cfg.feeds or pols)
    created_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"  # atproto datetime, UTC
    out.print_json(
        json.dumps(
            {
                "did.json": did_document(cfg) if cfg.service_did.startswith("did:web:") else None,
                "records": [
                    {
                        "uri": cfg.feed_uri(n),
                        "record": {
                            "$type": "app.bsky.feed.generator",
                            "did": cfg.service_did,
                            "displayName": clip_words(pols[n].title or n, DISPLAY_NAME_MAX),
                            "description": clip_words(pols[n].summary or "", DESCRIPTION_MAX),
                            "acceptsInteractions": True,
                            "createdAt": created_at,
                        },
                    }
                    for n in names
                    if n in pols
                ],
            }
        )
    )


def clip_words(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, cut at a word boundary and ending in an ellipsis when cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    cut = head.rsplit(" ", 1)[0] if " " in head else head
    return cut.rstrip(" ,;:-") + "…"


def register(app: typer.Typer) -> None:
    """Add the ``bluesky`` command group to the glassfeed CLI."""
    app.add_typer(bluesky, name="bluesky")
