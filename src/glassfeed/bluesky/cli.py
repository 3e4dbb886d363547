"""``glassfeed bluesky ...``: ingest Jetstream (file or live), print the feed records and did.json to publish."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer

from glassfeed.bluesky.jetstream import JetstreamIngester
from glassfeed.bluesky.settings import load_bluesky_settings
from glassfeed.bluesky.xrpc import did_document
from glassfeed.cli_support import cli_settings, handled, open_ingestor, out
from glassfeed.feed.policy import load_policies

#: Limits of the app.bsky.feed.generator record (lexicon: maxGraphemes).
DISPLAY_NAME_MAX = 24
DESCRIPTION_MAX = 300

bluesky = typer.Typer(no_args_is_help=True, help="Run glassfeed as a Bluesky feed generator (docs/bluesky.md).")


@bluesky.command("ingest")
def ingest(
    ctx: typer.Context,
    file: Path | None = typer.Argument(None, help="JSONL of Jetstream messages; omit to follow the live stream"),
    db: Path | None = typer.Option(None, "--db", help="SQLite store path"),
    url: str | None = typer.Option(None, help="Jetstream websocket URL (default from settings)"),
    batch: int = typer.Option(500, help="messages per transaction"),
    max_messages: int | None = typer.Option(None, help="stop the live stream after this many"),
) -> None:
    """Ingest Jetstream messages (posts, likes, reposts, follows, blocks, deletes); resumes from the saved cursor."""
    with handled():
        settings = cli_settings(ctx, db)
        cfg = load_bluesky_settings(settings.bluesky)
        js = JetstreamIngester(open_ingestor(settings, create=True), rewind_s=cfg.cursor_rewind_s)
        if file is not None:
            stats = js.ingest_file(file, batch=batch)
        else:
            out.print(f"following {js.stream_url(url or cfg.jetstream_url)}")
            stats = js.run(url or cfg.jetstream_url, batch=batch, max_messages=max_messages)
        out.print(json.dumps({**stats.as_dict(), "cursor": js.cursor}))


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
