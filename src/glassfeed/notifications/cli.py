"""``glassfeed notifications worker`` (the delivery worker, its own process) and notification policies in
``glassfeed policy describe``."""

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
    """Send the outbox's due pushes (Web Push, signed webhooks) until SIGTERM; retries with backoff."""
    settings = cli_settings(ctx, db)
    with handled():
        ing = open_ingestor(settings)
        w = DeliveryWorker(ing.store, settings.notifications, allow_insecure_localhost=insecure_localhost)
        try:
            if once:
                r = w.run_once()
                console.print(f"sent {r.sent}, retried {r.retried}, failed {r.failed}, gone {r.gone}")
                return
            stop = threading.Event()

            def on_signal(signum: int, frame: FrameType | None) -> None:
                stop.set()

            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
            console.print(f"delivering from {ing.store.location} every {settings.notifications.worker_interval_s} s")
            w.run(stop)
        finally:
            ing.store.close()


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
