"""``glassfeed`` command line (typer + rich): generate, import, import-dataset, serve, demo, token, key, stats,
plus the command groups of the feed (train, feed, policy), the simulator, the evaluators, the audit and Bluesky.
Only generate, import, import-dataset, demo and ``bluesky ingest`` create a store; the others refuse a missing one.

``--config PATH`` (or ``$GLASSFEED_CONFIG``) names a glassfeed.toml; the root command builds one ``Settings``
from it, the environment and the packaged defaults, and every command takes it from there (``--db`` overrides
the store path). Errors print one clear line on stderr and exit non-zero.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
import uvicorn

from glassfeed.ads import cli as ads_cli
from glassfeed.ads.demo import add_demo_campaigns
from glassfeed.ads.policy import load_ad_policy
from glassfeed.api.app import create_app
from glassfeed.audit import cli as audit_cli
from glassfeed.bluesky import cli as bluesky_cli
from glassfeed.bulk import BulkError, import_path
from glassfeed.cli_support import (
    build_settings,
    cli_settings,
    console,
    fail,
    handled,
    open_ingestor,
    out,
    progress_bar,
    require_store,
)
from glassfeed.evaluate import cli as evaluate_cli
from glassfeed.experiments import cli as experiments_cli
from glassfeed.feed import cli as feed_cli
from glassfeed.feed.service import cursor_secret
from glassfeed.feed.train import train_all
from glassfeed.importers import DATASETS
from glassfeed.importers import import_dataset as run_import_dataset
from glassfeed.importers.synthetic import write_network
from glassfeed.ingest import Ingestor, parse_ts
from glassfeed.moderation import cli as moderation_cli
from glassfeed.notifications import cli as notifications_cli
from glassfeed.settings import Settings
from glassfeed.sim import ads_cli as sim_ads_cli
from glassfeed.sim import cli as sim_cli
from glassfeed.sim import gate_cli as sim_gate_cli
from glassfeed.sim import notify_cli as sim_notify_cli
from glassfeed.sim import suggestions_cli as sim_suggestions_cli
from glassfeed.sim.generate import GeneratorParams, generate_network
from glassfeed.store.retention import prune as prune_store
from glassfeed.suggest import cli as suggest_cli
from glassfeed.web.routes import loopback_name

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="glassfeed: a transparent feed-ranking engine for social platforms.",
)

DbOpt = typer.Option(
    None,
    "--db",
    help="SQLite store path (default: settings store.path: $GLASSFEED_DB, glassfeed.toml or var/glassfeed.db)",
)


@app.callback()
def main(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", help="a glassfeed.toml (default: $GLASSFEED_CONFIG); GLASSFEED_<SECTION>__<KEY> variables win"
    ),
) -> None:
    """Build the run's settings once; the commands take them from the context."""
    ctx.obj = build_settings(config)


def _generate(settings: Settings, users: int, days: int, seed: int, start_ts: float) -> tuple[Ingestor, Any, float]:
    ing = open_ingestor(settings, create=True)
    if ing.store.count("users"):
        fail(f"{ing.store.location} already has users; generate into a new --db")
    t0 = time.perf_counter()
    with progress_bar() as tick:
        params = GeneratorParams(start_ts=start_ts)
        net = generate_network(users, days, seed, params, progress=lambda stage, f: tick(stage, int(f * 1000), 1000))
        res = write_network(net, ing, progress=tick)
    return ing, res, time.perf_counter() - t0


def _start_ts(start: str, days: int) -> float:
    """``now``: the history ends at the current hour (what a server ranking at wall-clock time needs); else an
    ISO date or time the history starts at (a fixed, reproducible history)."""
    if start == "now":
        return float(int(time.time() // 3600) * 3600 - days * 86400)
    return parse_ts(start if "T" in start else start + "T00:00:00Z")


@app.command()
def generate(
    ctx: typer.Context,
    users: int = typer.Option(10_000, help="number of synthetic users"),
    days: int = typer.Option(30, help="days of browsing history"),
    seed: int = typer.Option(1, help="random seed (same seed, same network)"),
    start: str = typer.Option(
        "now",
        help="ISO date the history starts (e.g. 2026-01-01, reproducible), or 'now': the history ends at the "
        "current hour, so `serve` (which ranks at wall-clock time) finds fresh posts",
    ),
    db: Path | None = DbOpt,
) -> None:
    """Generate a synthetic society and its history, written through the Ingestor."""
    with handled():
        ing, res, dt = _generate(cli_settings(ctx, db), users, days, seed, _start_ts(start, days))
        out.print(
            f"generated {res.users:,} users, {res.posts:,} posts, {res.follows:,} follows, "
            f"{res.events:,} events into {ing.store.location} in {dt:.1f} s"
        )


@app.command("import")
def import_file(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help=".jsonl or .csv file"),
    kind: str = typer.Option("events", "--kind", help="users | posts | events"),
    db: Path | None = DbOpt,
) -> None:
    """Bulk-import users, posts or events from JSONL/CSV in atomic chunks of max_batch."""
    with handled():
        if kind not in ("users", "posts", "events"):
            fail(f"--kind must be users, posts or events, not {kind!r}")
        ing = open_ingestor(cli_settings(ctx, db), create=True)
        t0 = time.perf_counter()
        try:
            with progress_bar() as tick:
                res = import_path(file, ing, kind=kind, progress=tick)
        except BulkError as e:
            fail(str(e))
        dt = time.perf_counter() - t0
        out.print(
            f"imported {res.accepted:,} {kind} ({res.duplicates:,} duplicates) from {file} in {dt:.2f} s "
            f"({res.accepted / max(dt, 1e-9):,.0f}/s)"
        )


@app.command("import-dataset")
def import_dataset(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="ml-100k | ml-1m | lastfm | reddit | tweets"),
    db: Path | None = DbOpt,
    data: Path | None = typer.Option(
        None, help="datasets folder (default: settings data.shared_dir / $GLASSFEED_DATA)"
    ),
) -> None:
    """Import a real public dataset (read in place, never copied) into the store."""
    with handled():
        if name not in DATASETS:
            fail(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
        settings = cli_settings(ctx, db)
        ing = open_ingestor(settings, create=True)
        t0 = time.perf_counter()
        with progress_bar() as tick:
            res = run_import_dataset(name, ing, data_dir=data or settings.data_dir, progress=tick)
        out.print(f"{name}: {res} into {ing.store.location} in {time.perf_counter() - t0:.1f} s")


def _serve(settings: Settings, host: str, port: int, workers: int = 1) -> None:
    """Serve ``create_app(settings)``; with no service key configured, make one for this run and print it.

    ``workers > 1``: uvicorn's own supervisor runs that many processes on one port (and starts a new one when one
    dies). Each worker builds its app with ``create_app()`` from ``$GLASSFEED_CONFIG``, pointed at a private copy
    of these settings (removed when the server stops); the cursor secret is made here, once, before they start.

    SIGTERM or SIGINT stops it gracefully with exit code 0 (``_stop_on_sigterm``): uvicorn stops accepting, answers
    the requests in flight, then runs each app's shutdown (the tail thread stops, queued impressions are written,
    Redis clients and the store close); the supervisor waits for its workers. Access lines come from the app's own
    log (``glassfeed.access``, with the request id), so uvicorn's duplicate access log is off."""
    if settings.api_key is None:
        key = new_service_key()
        settings = settings.replace(api={"key": key})
        console.print(f"no GLASSFEED_API_KEY set; this run's service key: [bold]{key}[/]")
    with _stop_on_sigterm():
        if workers <= 1:
            uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=False)
            return
        if not settings.serving.redis_url:
            console.print(
                f"[yellow]--workers {workers} without serving.redis_url: paging sessions, rate limits, browser"
                " sessions and 'why' stay in each worker (a later page may repeat a post; set"
                " GLASSFEED_SERVING__REDIS_URL)[/]"
            )
        ing = open_ingestor(settings)
        try:
            cursor_secret(ing)
        finally:
            ing.store.close()
        with tempfile.TemporaryDirectory(prefix="glassfeed-serve-") as tmp:
            config = Path(tmp) / "glassfeed.toml"
            _write_secret(config, settings_toml(settings))  # it holds the service key: readable by this user only
            os.environ["GLASSFEED_CONFIG"] = str(config)  # the workers inherit the environment
            uvicorn.run(
                "glassfeed.api.app:create_app",
                factory=True,
                workers=workers,
                host=host,
                port=port,
                log_level="info",
                access_log=False,
            )


def _sigterm_exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """While serving, SIGTERM ends the process with exit code 0 instead of the default -15. uvicorn takes SIGTERM
    over while it serves and, after its graceful shutdown, raises it again to the handler it found: this one,
    which exits 0 (the private settings folder of ``--workers`` is removed on the way out). A SIGTERM before
    uvicorn serves (the app still loading) exits at once, also through this handler."""
    previous = signal.signal(signal.SIGTERM, _sigterm_exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def settings_toml(settings: Settings) -> str:
    """``settings`` as a glassfeed.toml that ``load_settings`` reads back to equal settings (every key written)."""
    lines: list[str] = []
    for section, body in settings.model_dump().items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in body.items())
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    """A TOML literal for a settings value (text, number, bool, list, or a table of them); JSON's escapes and
    numbers are TOML's too."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)


@app.command()
def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="bind address"),
    port: int = typer.Option(8000),
    db: Path | None = DbOpt,
    workers: int = typer.Option(
        1, "--workers", min=1, help="worker processes on this port (more than 1: set serving.redis_url too)"
    ),
) -> None:
    """Serve the HTTP API (OpenAPI at /docs)."""
    with handled():
        settings = cli_settings(ctx, db)
        require_store(settings.store.path)
        _serve(settings, host, port, workers)


@app.command()
def demo(
    ctx: typer.Context,
    db: Path = typer.Option(Path("var/demo.db"), "--db"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    users: int = typer.Option(2000),
    days: int = typer.Option(14),
    seed: int = typer.Option(1),
    no_serve: bool = typer.Option(False, "--no-serve", help="build only"),
    retrain: bool = typer.Option(False, help="train the models even if the network already existed"),
    demo_login: bool = typer.Option(
        True, "--demo-login/--no-demo-login", help="the page may act for any person by name (web.demo; loopback only)"
    ),
) -> None:
    """Build a demo network on the embedded store (if empty), train the models, print keys, then serve."""
    with handled():
        local = loopback_name(host)  # demo sign-in acts for anyone: never on a host others can reach
        if demo_login and not local:
            out.print(f"[yellow]demo sign-in stays off: --host {host} is not a loopback address[/]")
        settings = cli_settings(ctx, db, web={"demo": demo_login and local})
        token_file = Path(str(db) + ".demo-token")
        ing = open_ingestor(settings, create=True)
        built = False
        if ing.store.count("users") == 0:
            ing.store.close()
            ing, res, dt = _generate(settings, users, days, seed, _start_ts("now", days))  # ends now: wall clock
            built = True
            out.print(
                f"built demo network: {res.users:,} users, {res.posts:,} posts, {res.events:,} events in {dt:.1f} s"
            )
            if res.first_token:
                _write_secret(token_file, res.first_token)
        if built or retrain:
            t0 = time.perf_counter()
            with progress_bar() as tick:
                train_all(
                    ing.store,
                    max_rows=150_000,
                    retrieval=settings.retrieval,
                    state=settings.state,
                    progress=lambda stage, f: tick(stage, int(f * 1000), 1000),
                )
            out.print(f"trained models in {time.perf_counter() - t0:.1f} s")
        if built:  # a few advertisers' campaigns, so that the demo's feeds show ads with their labels and "why"
            made = add_demo_campaigns(ing, load_ad_policy(settings.ads.policy or None), time.time(), seed)
            out.print(f"demo ad campaigns: {', '.join(made) or 'none'}")
        ing.store.close()
        settings = settings.replace(api={"key": settings.api_key or _demo_key(Path(str(db) + ".demo-key"))})
        url = f"http://{host}:{port}"
        out.print(f"service API key : [bold]{settings.api.key}[/]")
        if token_file.exists():
            out.print(f"demo user u0    : token [bold]{token_file.read_text().strip()}[/]")
        out.print(f"open            : [bold]{url}[/]  (API docs: {url}/docs)")
        if not no_serve:
            _serve(settings, host, port)


def _write_secret(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600 from the start, not chmod-ed afterwards)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)  # an existing file keeps its old mode through os.open


def _demo_key(path: Path) -> str:
    """The demo's service key, saved beside its store so that clients keep working across restarts."""
    if path.is_file():
        key = path.read_text().strip()
        if key:
            return key
    key = new_service_key()
    _write_secret(path, key)
    return key


def new_service_key() -> str:
    """A fresh random service key (32 URL-safe characters)."""
    return secrets.token_urlsafe(24)


@app.command()
def token(
    ctx: typer.Context, user: str = typer.Argument(..., help="an existing user id"), db: Path | None = DbOpt
) -> None:
    """Issue a fresh API token for USER (it replaces the old one); printed once, only its hash is stored."""
    with handled():
        ing = open_ingestor(cli_settings(ctx, db))
        try:
            fresh = ing.issue_token(user)
        finally:
            ing.store.close()
        console.print(f"token for {user!r} (shown once; the previous token no longer works):", highlight=False)
        print(fresh)


@app.command()
def key() -> None:
    """Print a fresh service key and how to set it (GLASSFEED_API_KEY or [api] key in glassfeed.toml)."""
    fresh = new_service_key()
    print(fresh)
    console.print(
        "set it for the server with one of:\n"
        f"  export GLASSFEED_API_KEY={fresh}\n"
        f'  glassfeed.toml:  [api]\n                   key = "{fresh}"\n'
        "(`serve` without one makes a new key every run; `demo` keeps one in <db>.demo-key)",
        highlight=False,
        markup=False,
    )


@app.command()
def stats(ctx: typer.Context, db: Path | None = DbOpt) -> None:
    """Counts of users, posts, follows and events in the store."""
    with handled():
        ing = open_ingestor(cli_settings(ctx, db))
        st = ing.store
        for table in ("users", "posts", "follows", "blocks", "mutes", "events"):
            out.print(f"{table:>8}: {st.count(table):,}")
        out.print(f"{'max_seq':>8}: {st.max_seq():,}   (store {st.location}, schema v{st.schema_version})")


@app.command()
def prune(
    ctx: typer.Context,
    days: float | None = typer.Option(
        None, "--days", help="drop posts older than this (default [store] retention_days)"
    ),
    db: Path | None = DbOpt,
) -> None:
    """Drop posts older than N days with the events on them, in one transaction (docs/operations.md, "Retention")."""
    with handled():
        settings = cli_settings(ctx, db)
        n = settings.store.retention_days if days is None else days
        if not n > 0:
            fail("nothing to prune: [store] retention_days is 0 (keep everything); pass --days N (above 0)")
        ing = open_ingestor(settings)
        try:
            report = prune_store(ing.store, n)
        finally:
            ing.store.close()
        out.print(json.dumps(report.as_dict()))


for _module in (
    evaluate_cli,
    feed_cli,
    sim_cli,
    audit_cli,
    bluesky_cli,
    moderation_cli,
    notifications_cli,
    sim_notify_cli,
    ads_cli,
    sim_ads_cli,
    experiments_cli,
    sim_gate_cli,
    suggest_cli,
    sim_suggestions_cli,
):
    _module.register(app)

if __name__ == "__main__":
    sys.exit(app())
