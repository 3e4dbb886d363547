"""``glassfeed notifications worker`` (the delivery worker, its own process; with ``[notifications]
candidates_from = "log"`` also the one process that makes notifications from the event log), ``cursor`` (where
that log tail stands) and notification policies in ``glassfeed policy describe``."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import typer

from glassfeed.cli_support import cli_settings, console, handled, open_ingestor
from glassfeed.feed.cli import OTHER_POLICIES
from glassfeed.notifications.policy import load_notification_policies
from glassfeed.notifications.worker import DeliveryWorker

group = typer.Typer(help="Notifications: the delivery worker.", no_args_is_help=True)


def _describe(name: str) -> str | None:
    pol = load_notification_policies().get(name)
    return pol.describe() if pol is not None else None


@group.command()
def worker(
    ctx: typer.Context,
    db: Path | None = typer.Option(None, "--db", help="the store (default: [store] path)"),
    once: bool = typer.Option(False, help="one round, then exit"),
    insecure_localhost: bool = typer.Option(
        False, help="allow http:// receivers on 127.0.0.1 (tests and local development only)"
    ),
) -> None:
    """Send the outbox's due pushes (Web Push, signed webhooks) until SIGTERM; retries with backoff. With
    [notifications] candidates_from = "log", first turn the events every process committed since the log cursor
    into notifications (run one worker per store)."""
    settings = cli_settings(ctx, db)
    with handled():
        ing = open_ingestor(settings)
        feed = None
        try:
            tail = None
            if settings.notifications.candidates_from == "log":
                from glassfeed.feed.service import FeedService
                from glassfeed.notifications.service import NotificationService

                # the serving state the candidates read (authors, blocks, settings, handles), brought up to date by
                # the tail itself each round: no tail thread of its own
                feed = FeedService(ing, settings.replace(serving={"tail_interval_ms": 0}))
                tail = NotificationService(feed, settings).tail_log
            w = DeliveryWorker(
                ing.store, settings.notifications, allow_insecure_localhost=insecure_localhost, tail=tail
            )
            if once:
                t, r = w.round()
                if t is not None:
                    console.print(
                        f"tailed {t.events} events and {t.posts} posts: {t.written} notifications written"
                        + (" (the cursor starts at the log's head)" if t.started else "")
                    )
                console.print(f"sent {r.sent}, retried {r.retried}, failed {r.failed}, gone {r.gone}")
                return
            stop = threading.Event()

            def on_signal(signum: int, frame: FrameType | None) -> None:
                stop.set()

            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
            what = "tailing the event log and delivering" if tail is not None else "delivering"
            console.print(f"{what} from {ing.store.location} every {settings.notifications.worker_interval_s} s")
            w.run(stop)
        finally:
            if feed is not None:
                feed.close()
            ing.store.close()


@group.command()
def cursor(
    ctx: typer.Context,
    db: Path | None = typer.Option(None, "--db", help="the store (default: [store] path)"),
    head: bool = typer.Option(False, "--head", help="move it to the log's head: what is there now is not notified"),
    seq: int | None = typer.Option(None, min=0, help="set it: the events after this sequence number are next"),
    post: int | None = typer.Option(None, min=0, help="set it: the posts after this idx are next (their mentions)"),
) -> None:
    """Where the log tail (candidates_from = "log") stands: the last event and post it folded, beside the log's
    head. --head, --seq and --post move it; stop the worker first. Events folded again add nothing (the keys)."""
    from glassfeed.notifications.service import LOG_CURSOR_KEY, LogCursor

    settings = cli_settings(ctx, db)
    with handled():
        ing = open_ingestor(settings)
        try:
            store = ing.store
            store.refresh_ids()
            log_head = LogCursor(store.max_seq(), len(store.post_ids()))
            raw = store.get_meta(LOG_CURSOR_KEY)
            at = LogCursor.parse(raw) if raw is not None else None
            if head or seq is not None or post is not None:
                base = log_head if head else (at or log_head)
                at = LogCursor(seq if seq is not None else base.seq, post if post is not None else base.post)
                ing.set_meta(LOG_CURSOR_KEY, at.text())
        finally:
            ing.store.close()
    mode = settings.notifications.candidates_from
    if at is None:
        console.print(f"no cursor yet (the worker's first round sets it at the log's head); candidates_from = {mode!r}")
    else:
        console.print(f"cursor: event seq {at.seq}, post {at.post}; candidates_from = {mode!r}")
    console.print(
        f"log head: event seq {log_head.seq}, post {log_head.post}"
        + (f"; {max(0, log_head.seq - at.seq):,} events behind" if at is not None else "")
    )


@group.command()
def train(
    ctx: typer.Context,
    db: Path | None = typer.Option(None, "--db", help="the store (default: [store] path)"),
    until: float | None = typer.Option(None, help="train on pushes up to this epoch time (default: now)"),
) -> None:
    """Train P(open), P(session) and P(turn off) from the notification log (point in time); the server uses them
    instead of the policies' priors once it restarts."""
    import json
    import time

    from glassfeed.notifications.model import train_notification_model
    from glassfeed.notifications.policy import load_notification_policies
    from glassfeed.store import models_dir

    settings = cli_settings(ctx, db)
    with handled():
        ing = open_ingestor(settings)
        try:
            ns = settings.notifications
            policies = load_notification_policies(ns.policies_dir or None)
            prefs = ing.store.load_prefs()
            policy_of = {}
            for u in ing.store.load_users()["idx"].tolist():
                mine = dict(prefs.get(u, {}).get("notifications", {}))
                name = mine.pop("policy", None) or ns.default_policy
                policy_of[u] = policies[name].for_person(mine)
            model, report = train_notification_model(ing.store, ns, policy_of, until or time.time())
            folder = model.save(models_dir(ing.store.path) / "notifications")
        finally:
            ing.store.close()
    console.print(json.dumps(report, indent=1))
    console.print(f"wrote {folder}")


@group.command()
def suggest(
    ctx: typer.Context,
    db: Path | None = typer.Option(None, "--db", help="the store (default: [store] path)"),
    hours: float = typer.Option(24.0, min=0.01, help="affinity posts made in the last this many hours"),
    weekly: bool = typer.Option(False, help="also the weekly digest of what each person missed (run it weekly)"),
) -> None:
    """Make the candidates no single event makes, for everyone: new posts by the accounts each person interacts
    with most, and the best out-of-network post of their feed (run it daily, e.g. from cron)."""
    from glassfeed.feed.service import FeedService
    from glassfeed.notifications.service import NotificationService

    settings = cli_settings(ctx, db)
    with handled():
        ing = open_ingestor(settings)
        feed = FeedService(ing, settings)
        try:
            svc = NotificationService(feed, settings)
            now = feed.now()
            ids = svc.suggest(now - hours * 3600.0, now, weekly=weekly)
        finally:
            feed.close()
            ing.store.close()
    console.print(f"{len(ids):,} notifications written")


def register(app: typer.Typer) -> None:
    """Add ``notifications`` (a group) and the notification policies to ``policy describe``."""
    app.add_typer(group, name="notifications")
    OTHER_POLICIES.append(_describe)
