"""Shared builders for feed tests: a small generated network written through the Ingestor, trained once."""

from __future__ import annotations

import shutil
from pathlib import Path

from glassfeed.feed.service import FeedService
from glassfeed.importers.synthetic import write_network
from glassfeed.ingest import Ingestor
from glassfeed.sim.generate import generate_network
from glassfeed.store import open_store


def build_service(
    folder: Path, n_users: int = 300, days: int = 6, seed: int = 3, train: bool = True
) -> tuple[FeedService, object]:
    """A FeedService on a fresh store holding a generated network; clock = the network's last event."""
    net = generate_network(n_users, days, seed)
    end = float(net.events.ts.max()) + 60.0
    store = open_store(folder / "feed.db")
    clock = {"now": end}
    ing = Ingestor(store, clock=lambda: clock["now"])
    write_network(net, ing)
    svc = FeedService(ing, clock="data")
    if train:
        svc.retrain(max_rows=100_000)
    return svc, net


def clone_service(svc: FeedService, folder: Path) -> FeedService:
    """An independent FeedService over a copy of ``svc``'s store and trained models (cheap: no retraining)."""
    db = folder / "feed.db"
    svc.store.backup(db)
    shutil.copytree(svc.models_folder, folder / "feed.db.models")
    now = svc.now()
    return FeedService(Ingestor(open_store(db), clock=lambda: now), clock="data")
