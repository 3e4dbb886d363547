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


def register(app: typer.Typer) -> None:
    """Add ``notifications`` (a group) and the notification policies to ``policy describe``."""
    app.add_typer(group, name="notifications")
    OTHER_POLICIES.append(_describe)
