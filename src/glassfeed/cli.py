"""``glassfeed`` command line (typer + rich): generate, import, import-dataset, serve, demo, stats.

Other engineers' command groups plug in through ``register(app)`` hooks at the bottom of this file.
Errors print one clear line on stderr and exit non-zero.
"""

from __future__ import annotations

import importlib
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from glassfeed.config import load_settings
from glassfeed.ingest import IngestError, Ingestor

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="glassfeed: a transparent feed-ranking engine for social platforms.")
console = Console(stderr=True)
out = Console()

DbOpt = typer.Option(None, "--db", help="SQLite store path (default: $GLASSFEED_DB or var/glassfeed.db)")


def fail(msg: str, code: int = 1) -> None:
    """One clear line on stderr, then exit non-zero."""
    console.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def handled() -> Iterator[None]:
    """Turn expected failures into one stderr line and a non-zero exit."""
    try:
        yield
    except IngestError as e:
        fail(str(e))
    except FileNotFoundError as e:
        fail(f"file not found: {e.filename or e}")
    except (ValueError, NotImplementedError) as e:
        fail(str(e))


def open_ingestor(db: Optional[Path]) -> Ingestor:
    from glassfeed.store import open_store

    s = load_settings(db_path=db) if db else load_settings()
    return Ingestor(open_store(s.db_path, s.synchronous), s.limits)


@contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar driven by ``tick(stage, done, total)`` callbacks (one task per stage)."""
    tasks: dict[str, Any] = {}
    totals: dict[str, int] = {}
    with Progress(TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        def tick(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                for name, tid in tasks.items():  # a new stage means the earlier ones finished
                    bar.update(tid, completed=totals[name])
                tasks[stage] = bar.add_task(stage, total=max(total, 1))
            totals[stage] = max(total, 1)
            bar.update(tasks[stage], completed=done, total=totals[stage])
        yield tick


def _generate(db: Optional[Path], users: int, days: int, seed: int,
              start_ts: float | None = None) -> tuple[Any, Any, float]:
    from glassfeed.importers.synthetic import write_network
    from glassfeed.sim.generate import GeneratorParams, generate_network

    ing = open_ingestor(db)
    if ing.store.count("users"):
        fail(f"{ing.store.path} already has users; generate into a new --db")
    t0 = time.perf_counter()
    with progress_bar() as tick:
        params = GeneratorParams(start_ts=start_ts) if start_ts is not None else None
        net = generate_network(users, days, seed, params,
                               progress=lambda stage, f: tick(stage, int(f * 1000), 1000))
        res = write_network(net, ing, progress=tick)
    return ing, res, time.perf_counter() - t0


def _start_ts(start: Optional[str], days: int) -> float | None:
    """``None`` keeps the generator's fixed default; ``now`` ends the history at the current hour."""
    if start is None:
        return None
    if start == "now":
        return float(int(time.time() // 3600) * 3600 - days * 86400)
    from glassfeed.ingest import parse_ts

    return parse_ts(start if "T" in start else start + "T00:00:00Z")


@app.command()
def generate(users: int = typer.Option(10_000, help="number of synthetic users"),
             days: int = typer.Option(30, help="days of browsing history"),
             seed: int = typer.Option(1, help="random seed (same seed, same network)"),
             start: Optional[str] = typer.Option(None, help="ISO date the history starts (default 2026-01-01; "
                                                 "'now' = end the history at the current time)"),
             db: Optional[Path] = DbOpt) -> None:
    """Generate a synthetic society and its history, written through the Ingestor."""
    with handled():
        ing, res, dt = _generate(db, users, days, seed, _start_ts(start, days))
        out.print(f"generated {res.users:,} users, {res.posts:,} posts, {res.follows:,} follows, "
                  f"{res.events:,} events into {ing.store.path} in {dt:.1f} s")


@app.command("import")
def import_file(file: Path = typer.Argument(..., help=".jsonl or .csv file"),
                kind: str = typer.Option("events", "--kind", help="users | posts | events"),
                db: Optional[Path] = DbOpt) -> None:
    """Bulk-import users, posts or events from JSONL/CSV in atomic chunks of max_batch."""
    from glassfeed.bulk import BulkError, import_path

    with handled():
        if kind not in ("users", "posts", "events"):
            fail(f"--kind must be users, posts or events, not {kind!r}")
        ing = open_ingestor(db)
        t0 = time.perf_counter()
        try:
            with progress_bar() as tick:
                res = import_path(file, ing, kind=kind, progress=tick)
        except BulkError as e:
            fail(str(e))
        dt = time.perf_counter() - t0
        out.print(f"imported {res.accepted:,} {kind} ({res.duplicates:,} duplicates) from {file} in {dt:.2f} s "
                  f"({res.accepted / max(dt, 1e-9):,.0f}/s)")


@app.command("import-dataset")
def import_dataset(name: str = typer.Argument(..., help="ml-100k | ml-1m | lastfm | reddit | tweets"),
                   db: Optional[Path] = DbOpt,
                   data: Optional[Path] = typer.Option(None, help="datasets folder (default: config data_dir)")
                   ) -> None:
    """Import a real public dataset (read in place, never copied) into the store."""
    from glassfeed.importers import DATASETS, import_dataset as run

    with handled():
        if name not in DATASETS:
            fail(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
        ing = open_ingestor(db)
        t0 = time.perf_counter()
        with progress_bar() as tick:
            res = run(name, ing, data_dir=data, progress=tick)
        out.print(f"{name}: {res} into {ing.store.path} in {time.perf_counter() - t0:.1f} s")


def _serve(db: Optional[Path], host: str, port: int, api_key: Optional[str] = None) -> None:
    import uvicorn

    from glassfeed.api.app import create_app

    over: dict[str, Any] = {}
    if db:
        over["db_path"] = db
    if api_key:
        over["api_key"] = api_key
    settings = load_settings(**over)
    if settings.api_key is None:
        key = secrets.token_urlsafe(24)
        settings = load_settings(**over, api_key=key)
        console.print(f"no GLASSFEED_API_KEY set; this run's service key: [bold]{key}[/]")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="bind address"), port: int = typer.Option(8000),
          db: Optional[Path] = DbOpt) -> None:
    """Serve the HTTP API (OpenAPI at /docs)."""
    with handled():
        _serve(db, host, port)


@app.command()
def demo(db: Path = typer.Option(Path("var/demo.db"), "--db"), host: str = typer.Option("127.0.0.1"),
         port: int = typer.Option(8000), users: int = typer.Option(2000), days: int = typer.Option(14),
         seed: int = typer.Option(1), no_serve: bool = typer.Option(False, "--no-serve", help="build only"),
         retrain: bool = typer.Option(False, help="train the models even if the network already existed")) -> None:
    """Build a demo network on the embedded store (if empty), train the models, print keys, then serve."""
    with handled():
        token_file = Path(str(db) + ".demo-token")
        ing = open_ingestor(db)
        built = False
        if ing.store.count("users") == 0:
            ing.store.close()
            ing, res, dt = _generate(db, users, days, seed, _start_ts("now", days))  # ends now: wall clock works
            built = True
            out.print(f"built demo network: {res.users:,} users, {res.posts:,} posts, {res.events:,} events "
                      f"in {dt:.1f} s")
            if res.first_token:
                token_file.write_text(res.first_token)
                os.chmod(token_file, 0o600)
        try:
            from glassfeed.feed.train import train_all
        except ModuleNotFoundError as e:
            if e.name not in ("glassfeed.feed.train", "glassfeed.feed"):
                raise
            console.print("(no glassfeed.feed.train yet: serving without trained models)")
        else:
            if built or retrain:
                t0 = time.perf_counter()
                with progress_bar() as tick:
                    train_all(ing.store, max_rows=150_000,
                              progress=lambda stage, f: tick(stage, int(f * 1000), 1000))
                out.print(f"trained models in {time.perf_counter() - t0:.1f} s")
        ing.store.close()
        key = os.environ.get("GLASSFEED_API_KEY") or secrets.token_urlsafe(24)
        url = f"http://{host}:{port}"
        out.print(f"service API key : [bold]{key}[/]")
        if token_file.exists():
            out.print(f"demo user u0    : token [bold]{token_file.read_text().strip()}[/]")
        out.print(f"open            : [bold]{url}[/]  (API docs: {url}/docs)")
        if not no_serve:
            os.environ.setdefault("GLASSFEED_WEB_DEMO", "1")  # the page may act for any demo person (loopback)
            _serve(db, host, port, api_key=key)


@app.command()
def stats(db: Optional[Path] = DbOpt) -> None:
    """Counts of users, posts, follows and events in the store."""
    with handled():
        ing = open_ingestor(db)
        st = ing.store
        for table in ("users", "posts", "follows", "blocks", "mutes", "events"):
            out.print(f"{table:>8}: {st.count(table):,}")
        out.print(f"{'max_seq':>8}: {st.max_seq():,}   (store {st.path}, schema v{st.schema_version})")


def _register_plugins() -> None:
    """Let other packages add their commands: each module's ``register(app)``, when the module exists."""
    for mod in ("glassfeed.evaluate.cli", "glassfeed.evaluate.pipeline_eval", "glassfeed.feed.cli", "glassfeed.sim.cli", "glassfeed.audit.cli",
                "glassfeed.bluesky.cli"):
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name is not None and mod.startswith(e.name):
                continue
            raise
        m.register(app)


_register_plugins()

if __name__ == "__main__":
    sys.exit(app())
