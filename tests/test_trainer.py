"""Versioned model folders (``CURRENT`` pointer, pruning, readers that resolve it) and the scheduled trainer
(``glassfeed trainer``: one run on a tiny store, stopped by SIGTERM)."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from glassfeed.cli import app
from glassfeed.feed.cli import parse_duration
from glassfeed.feed.heads import EngagementHeads
from glassfeed.feed.train import (
    POINTER,
    current_models,
    erase_user_rows,
    load_factors,
    load_models,
    model_versions,
    models_dir,
    prune_versions,
    switch_models,
)
from glassfeed.importers.synthetic import write_network
from glassfeed.ingest import Ingestor
from glassfeed.sim.generate import generate_network
from glassfeed.store import open_store

runner = CliRunner()


def test_durations():
    assert [parse_duration(t) for t in ("30m", "6h", "1d", "90s", "1.5h", " 2H ")] == [
        1800.0,
        21600.0,
        86400.0,
        90.0,
        5400.0,
        7200.0,
    ]
    for bad in ("6", "h", "0h", "-1h", "6 hours", "1h30m", ""):
        with pytest.raises(ValueError, match="--every"):
            parse_duration(bad)


def _fake_version(root: Path, name: str, user_rows: int = 4) -> Path:
    d = root / name
    d.mkdir(parents=True)
    np.save(d / "als_user_factors.npy", np.ones((user_rows, 2), np.float32))
    np.save(d / "bridging_sides.npy", np.ones(user_rows, np.float32))
    return d


def test_pointer_switch_prune_and_readers(tmp_path: Path):
    root = tmp_path / "feed.db.models"
    assert current_models(root) == (root, "untrained")  # nothing trained: flat, untrained
    root.mkdir()
    np.save(root / "als_user_factors.npy", np.full((4, 2), 5, np.float32))  # a flat layout
    assert load_factors(root)[0][0, 0] == 5
    names = [f"2026113{d}T120000Z-0000000{d}" for d in range(4)]
    for n in names:
        _fake_version(root, n)
    switch_models(root, names[1])
    assert (root / POINTER).read_text() == names[1] + "\n"
    assert current_models(root) == (root / names[1], names[1])
    assert current_models(root / names[2]) == (root / names[2], names[2])  # a version folder given directly
    assert load_factors(root)[0][0, 0] == 1  # the pointed version, not the flat file
    assert not [p for p in root.iterdir() if p.name.startswith(f".{POINTER}")]  # no temporary pointer left
    with pytest.raises(ValueError, match="not a model version"):
        switch_models(root, "20260101T000000Z-deadbeef")
    # erasure reaches the person's row in every version kept, and the flat file
    changed = erase_user_rows(root, 2)
    assert len(changed) == 1 + 2 * len(names) and f"{names[3]}/bridging_sides.npy" in changed
    assert all(not np.load(root / n / "als_user_factors.npy")[2].any() for n in names)
    # keep 2: the newest two, plus the current one even though it is older; flat files removed
    assert prune_versions(root, 2) == [names[0]]
    assert model_versions(root) == names[1:] and not (root / "als_user_factors.npy").exists()
    (root / POINTER).write_text("20260101T000000Z-deadbeef\n")
    with pytest.raises(ValueError, match="not a model version"):
        current_models(root)


@pytest.fixture(scope="module")
def tiny_db(tmp_path_factory) -> Path:
    net = generate_network(150, 3, 2)
    end = float(net.events.ts.max()) + 60.0
    db = tmp_path_factory.mktemp("trainer") / "tiny.db"
    store = open_store(db)
    write_network(net, Ingestor(store, clock=lambda: end))
    store.close()
    return db


def test_trainer_runs_once_then_stops_on_sigterm(tiny_db: Path, caplog, monkeypatch):
    """``--every 1h`` with no run limit: SIGTERM during the first run stops the trainer once that run has written
    its version (it does not wait an hour), and the run is logged with its version, time and per-head AUC."""
    root = models_dir(tiny_db)
    root.mkdir()
    (root / "train_report.json").write_text("{}")  # a flat layout from before versions: removed once versioned
    monkeypatch.setenv("GLASSFEED_TRAIN__KEEP_VERSIONS", "2")
    original = signal.getsignal(signal.SIGTERM)

    class TerminateWhenTrainingStarts(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage() == "run 1: training":
                os.kill(os.getpid(), signal.SIGTERM)

    killer = TerminateWhenTrainingStarts()
    log = logging.getLogger("glassfeed.trainer")
    log.addHandler(killer)
    try:
        with caplog.at_level(logging.INFO, logger="glassfeed.trainer"):
            t0 = time.monotonic()
            r = runner.invoke(app, ["trainer", "--db", str(tiny_db), "--every", "1h", "--max-rows", "20000"])
    finally:
        log.removeHandler(killer)
    assert r.exit_code == 0, r.output
    assert time.monotonic() - t0 < 600 and signal.getsignal(signal.SIGTERM) is original
    path, version = current_models(root)
    assert model_versions(root) == [version] and path == root / version
    assert not (root / "train_report.json").exists() and not list(root.glob(".tmp-*"))
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "glassfeed.trainer"]
    assert any("SIGTERM: stopping after the current run" in m for m in lines)
    (run,) = [m for m in lines if m.startswith("run ") and m != "run 1: training"]
    assert run.startswith(f"run 1: model version {version} in ") and "held-out AUC like 0." in run
    assert lines[-1] == "trainer stopped after 1 run(s)"
    report = json.loads((path / "train_report.json").read_text())
    assert report["version"] == version and f"like {report['heads'][0]['auc']:.4f}" in run
    models = load_models(root)
    assert models.heads.trained and models.heads.trees == EngagementHeads.load(path / "heads").trees
    # `glassfeed train` adds a version and switches to it; keep_versions (2) prunes the oldest beyond it
    for _ in range(2):
        time.sleep(1.0)  # versions are named by the second
        r = runner.invoke(app, ["train", "--db", str(tiny_db), "--max-rows", "20000"])
        assert r.exit_code == 0, r.output
    versions = model_versions(root)
    assert len(versions) == 2 and version not in versions and current_models(root)[1] == versions[-1]
    assert f"model version {versions[-1]}" in r.output
