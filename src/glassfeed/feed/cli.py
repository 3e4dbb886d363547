"""CLI commands for the feed: ``train``, ``trainer`` (scheduled training), ``policy list|describe``, and ``feed``
(print a page with reasons)."""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from glassfeed.cli_support import cli_settings, console, open_ingestor, out, require_store
from glassfeed.feed.policy import PolicyError, describe, load_policies, load_policy_file
from glassfeed.feed.service import FeedError, FeedService
from glassfeed.feed.train import NotEnoughData, TrainReport, train_version
from glassfeed.feed.train import Progress as TrainProgress
from glassfeed.settings import Settings

log = logging.getLogger("glassfeed.trainer")

policy_app = typer.Typer(help="Ranking policies written as data.", no_args_is_help=True)


def _fail(msg: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {escape(msg)}", highlight=False)
    raise typer.Exit(2)


def _service(ctx: typer.Context, db: Path | None) -> FeedService:
    """A FeedService over the run's settings with ``--db`` applied, ranking at the store's data time."""
    settings = cli_settings(ctx, db, serving={"clock": "data"})
    return FeedService(open_ingestor(settings), settings)  # a missing store exits with one line


def _policies_dir(ctx: typer.Context, option: Path | None) -> str | Path | None:
    """``--policies-dir``, else the settings' ``serving.policies_dir`` (empty: the built-in presets only)."""
    return option or cli_settings(ctx).serving.policies_dir or None


DaskOpt = typer.Option(
    None,
    "--dask",
    help="fit the engagement heads on a Dask cluster: a scheduler address (tcp://host:8786), or 'local' for a "
    "LocalCluster of \\[train] dask_workers workers",
)


def _check_dask(dask: str | None) -> None:
    if dask is not None and dask != "local" and not re.fullmatch(r"[a-z][a-z0-9+]*://\S+", dask):
        _fail(f"--dask: {dask!r} is neither 'local' nor a scheduler address such as tcp://host:8786")


def _train_once(settings: Settings, dask: str | None, max_rows: int, progress: TrainProgress | None) -> TrainReport:
    """One training of the store ``settings`` names into a new version of its models folder."""
    ing = open_ingestor(settings)  # a missing store exits with one line
    try:
        return train_version(ing.store, settings, dask=dask, max_rows=max_rows, progress=progress)
    finally:
        ing.store.close()


def train(
    ctx: typer.Context,
    db: Path | None = typer.Option(None, "--db", help="SQLite store path"),
    max_rows: int = typer.Option(400_000, help="logged impressions sampled for the heads"),
    dask: str | None = DaskOpt,
) -> None:
    """Train the engagement heads, light ranker, ALS factors and bridging sides into a new model version (then
    switch to it, keeping the last \\[train] keep_versions); print per-head AUC/log-loss on a time-based holdout
    beside the popularity baseline."""
    settings = cli_settings(ctx, db)
    _check_dask(dask)
    with Progress(TextColumn("{task.description:>10}"), BarColumn(), TimeElapsedColumn(), console=console) as bar:
        tasks: dict[str, TaskID] = {}

        def tick(stage: str, frac: float) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=1.0)
            bar.update(tasks[stage], completed=frac)

        try:
            report = _train_once(settings, dask, max_rows, tick)
        except (ValueError, OSError) as e:
            _fail(str(e))
    out.print(
        f"trained on {report.n_train:,} impressions, calibrated on {report.n_cal:,}, "
        f"tested on the newest {report.n_test:,} ({report.seconds:.1f} s); model version {report.version}",
        soft_wrap=True,
    )
    print(report.table())  # a Markdown table: plain text, so a pipe or a file gets it unwrapped


#: ``--every`` units.
DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in ``30m``, ``6h``, ``1d``, ``90s`` or ``1.5h`` (a positive number and one unit)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text.lower())
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"--every: {text!r} is not a duration; expected a positive number and a unit: 30m, 6h, 1d")
    return float(m.group(1)) * DURATION_UNITS[m.group(2)]


def _run_line(runs: int, report: TrainReport, seconds: float) -> str:
    aucs = " ".join(f"{h.head} {h.auc:.4f}" for h in report.heads if h.trees)
    return (
        f"run {runs}: model version {report.version} in {seconds:.1f} s on {report.n_train:,} training impressions; "
        f"held-out AUC {aucs or '(no head trained)'}"
    )


def trainer(
    ctx: typer.Context,
    db: Path | None = typer.Option(None, "--db", help="SQLite store path"),
    every: str = typer.Option("6h", help="start a training this often: 30m, 6h, 1d (a late run starts at once)"),
    max_rows: int = typer.Option(400_000, help="logged impressions sampled for the heads"),
    dask: str | None = DaskOpt,
    max_runs: int = typer.Option(0, min=0, help="stop after this many runs (0: until SIGINT or SIGTERM)"),
) -> None:
    """Retrain on a schedule: each run trains every model into a new version of the models folder, switches to
    it and prunes old versions, then waits for the next start. SIGINT or SIGTERM stop it once the running
    training ends (a second one stops it at once; the version being written is then discarded). A failed run is
    logged and retried at the next start."""
    settings = cli_settings(ctx, db)
    _check_dask(dask)
    try:
        period = parse_duration(every)
    except ValueError as e:
        _fail(str(e))
    require_store(settings.store.path)  # a mistyped --db stops here, not at every run
    handler = logging.StreamHandler()  # each run's line on stderr, for this command only
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        log.info("%s: stopping after the current run", signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    runs = 0
    try:
        log.info("trainer: every %s (%.0f s)%s", every, period, f", heads on Dask {dask}" if dask else "")
        while not stop.is_set():
            started = time.monotonic()
            runs += 1
            log.info("run %d: training", runs)
            try:
                report = _train_once(settings, dask, max_rows, None)
                log.info(_run_line(runs, report, time.monotonic() - started))
            except NotEnoughData as e:
                log.warning("run %d: not trained: %s", runs, e)
            except Exception:
                log.exception("run %d failed; the current version stays", runs)
            if max_runs and runs >= max_runs:
                break
            stop.wait(max(0.0, started + period - time.monotonic()))
        log.info("trainer stopped after %d run(s)", runs)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        log.removeHandler(handler)


@policy_app.command("list")
def policy_list(
    ctx: typer.Context, policies_dir: Path | None = typer.Option(None, help="extra folder of policy TOML files")
) -> None:
    """The policies on offer."""
    try:
        pols = load_policies(_policies_dir(ctx, policies_dir))
    except PolicyError as e:
        _fail(str(e))
    t = Table("name", "title", "profiling", "ranker")
    for p in pols.values():
        t.add_row(p.name, p.title, "yes" if p.profiling else "no", p.ranker)
    out.print(t)


#: Other levers' policies ``policy describe`` also knows (name -> statement, or None when not theirs), added by
#: the levers' command modules (``glassfeed.notifications.cli``), which sit above this one.
OTHER_POLICIES: list[Callable[[str], str | None]] = []


@policy_app.command("describe")
def policy_describe(
    ctx: typer.Context, name: str, policies_dir: Path | None = typer.Option(None, help="extra policy folder")
) -> None:
    """Print the plain-language statement of a feed policy (EU DSA Art. 27) or a notification policy, generated
    from its file."""
    try:
        if name.endswith(".toml"):
            pol = load_policy_file(name)
        else:
            pols = load_policies(_policies_dir(ctx, policies_dir))
            if name not in pols:
                for other in OTHER_POLICIES:
                    if (text := other(name)) is not None:
                        print(text)
                        return
                _fail(f"unknown policy {name!r}; expected one of {', '.join(pols)}")
            pol = pols[name]
    except (PolicyError, FileNotFoundError) as e:
        _fail(str(e))
    print(describe(pol))


def feed(
    ctx: typer.Context,
    user: str,
    db: Path | None = typer.Option(None, "--db"),
    policy: str | None = None,
    limit: int = 10,
    cursor: str | None = typer.Option(None, help="continue from a page's cursor (printed after each page)"),
    pages: int = typer.Option(1, min=1, help="print this many pages, following the cursor"),
) -> None:
    """Print pages of USER's feed: each post's text, author, score, reason and top contributions.

    The command logs no impressions (it is a preview): pages of one run never repeat a post, but a cursor from
    an earlier run only skips the posts the server logged as seen."""
    svc = _service(ctx, db)
    n = 0
    for page_no in range(pages):
        try:
            page = svc.feed(user, policy=policy, limit=limit, cursor=cursor, log_impressions=False)
        except FeedError as e:
            _fail(str(e))
        if page["notice"]:
            out.print(f"[yellow]{escape(page['notice'])}[/]")
        if pages > 1:
            out.print(f"[bold]page {page_no + 1}[/]")
        t = Table("#", "post", "author", "text", "score", "why", "top contributions")
        for it in page["items"]:
            n += 1
            contrib = ", ".join(f"{c['head']} {c['contribution']:+.3f}" for c in it["top_contributions"])
            t.add_row(
                str(n),
                escape(it["post"]),
                escape("@" + it["author_handle"]),
                escape(it["text"] or ""),
                f"{it['score']:.3f}",
                escape(it["reason"]),
                contrib,
            )
        out.print(t)
        cursor = page["cursor"]
        if cursor is None:
            out.print("end of feed: no more eligible posts")
            return
    out.print(f"next page: --cursor {cursor}", soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("trainer")(trainer)
    app.command("feed")(feed)
    app.add_typer(policy_app, name="policy")
