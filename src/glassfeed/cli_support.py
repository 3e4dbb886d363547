"""What every ``glassfeed`` command shares: the consoles, one-line errors, a progress bar, and the run's Settings.

The root command (``glassfeed.cli``) builds one ``Settings`` from ``--config`` / ``$GLASSFEED_CONFIG``, the
environment and the packaged defaults, and keeps it on the click context; commands (including the groups that
``feed``, ``sim``, ``evaluate``, ``audit`` and ``bluesky`` add) take it with ``cli_settings(ctx)``, apply their own
flags (``--db``) as overrides, and pass it down. This module is separate from ``glassfeed.cli`` so that those
command modules can use it without importing the root command that imports them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TextIO

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from glassfeed.ingest import IngestError, Ingestor
from glassfeed.settings import Settings, SettingsError, load_settings
from glassfeed.store import SQLITE_SCHEME, is_postgres_url, open_store, store_exists
from glassfeed.store.postgres import normalise_url, public_location

#: Width of output that goes to a pipe or a file (rich would wrap it at 80 columns); $COLUMNS still wins.
PIPE_WIDTH = 200


def _width(stream: TextIO) -> int | None:
    return None if stream.isatty() or os.environ.get("COLUMNS") else PIPE_WIDTH


console = Console(stderr=True, width=_width(sys.stderr))
out = Console(width=_width(sys.stdout))
#: Exit code of a command whose settings (file, environment or flags) are invalid.
SETTINGS_EXIT = 2


def fail(msg: str, code: int = 1) -> NoReturn:
    """One clear line on stderr, then exit non-zero."""
    console.print(f"[bold red]error:[/] {escape(msg)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def handled() -> Iterator[None]:
    """Turn expected failures into one stderr line and a non-zero exit."""
    try:
        yield
    except SettingsError as e:
        fail(str(e), SETTINGS_EXIT)
    except IngestError as e:
        fail(str(e))
    except FileNotFoundError as e:
        fail(f"file not found: {e.filename or e}")
    except ConnectionError as e:  # a store server that cannot be reached (PostgreSQL)
        fail(str(e))
    except (ValueError, NotImplementedError) as e:
        fail(str(e))


def build_settings(config: Path | None) -> Settings:
    """The run's Settings (defaults, ``config`` or ``$GLASSFEED_CONFIG``, environment); a bad one exits with
    one line naming the file or variable and the key."""
    try:
        return load_settings(config)
    except SettingsError as e:
        fail(str(e), SETTINGS_EXIT)


def cli_settings(ctx: typer.Context | None, db: Path | None = None, **overrides: Mapping[str, Any]) -> Settings:
    """The Settings the root command built (kept on ``ctx``'s root; built now when there is none, as for a
    command group mounted on another app), with ``--db`` and ``overrides`` (section -> {key: value}) applied
    and validated."""
    root = ctx.find_root().obj if ctx is not None else None
    settings = root if isinstance(root, Settings) else build_settings(None)
    changes = dict(overrides)
    if db is not None:
        changes["store"] = {**changes.get("store", {}), "path": db_text(db)}
    if not changes:
        return settings
    try:
        return settings.replace(**changes)
    except SettingsError as e:
        fail(str(e), SETTINGS_EXIT)


def db_text(db: str | Path) -> str:
    """A ``--db`` value as text: a path, or a store URL with the ``//`` that a path-typed option collapsed
    (``Path("postgresql://h/db")`` is ``postgresql:/h/db``) put back."""
    return normalise_url(db) if is_postgres_url(db) else str(db)


def require_store(path: str | Path) -> Path:
    """``path`` if a store exists there; else exit with one line (a mistyped ``--db`` must not create a store:
    only ``generate``, ``import``, ``import-dataset``, ``bluesky ingest`` and ``demo`` create one). For a
    PostgreSQL URL the store exists when its schema holds glassfeed's tables (``schema_version``); a server that
    cannot be reached exits with one line too."""
    s = str(path)
    if is_postgres_url(s):
        url = normalise_url(s)
        try:
            exists = store_exists(url)
        except ConnectionError as e:
            fail(str(e))
        if not exists:
            fail(
                f"no store at {public_location(url)} (no glassfeed tables in that schema); check --db (or "
                "store.path / $GLASSFEED_DB), or create one with `glassfeed generate` or `glassfeed import`"
            )
        return Path(url)
    if "://" in s and not s.startswith(SQLITE_SCHEME):
        fail(f"unknown store URL {s!r}: expected a file path, sqlite:///path or postgresql://host/db")
    p = Path(s.removeprefix(SQLITE_SCHEME))
    if not p.is_file():
        fail(
            f"no store at {p}; check --db (or store.path / $GLASSFEED_DB), or create one with "
            "`glassfeed generate` or `glassfeed import`"
        )
    return p


def open_ingestor(settings: Settings, create: bool = False) -> Ingestor:
    """An Ingestor over the store ``settings.store`` names, with ``settings.ingest`` limits. ``create``: make
    the store (and its folder) when there is none; otherwise a missing store exits with one line."""
    if not create:
        require_store(settings.store.path)
    return Ingestor(
        open_store(settings.store.path, settings.store.synchronous, settings.store.sqlite_cache_mib), settings.ingest
    )


@contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar driven by ``tick(stage, done, total)`` callbacks (one task per stage)."""
    tasks: dict[str, Any] = {}
    totals: dict[str, int] = {}
    with Progress(
        TextColumn("{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:

        def tick(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                for name, tid in tasks.items():  # a new stage means the earlier ones finished
                    bar.update(tid, completed=totals[name])
                tasks[stage] = bar.add_task(stage, total=max(total, 1))
            totals[stage] = max(total, 1)
            bar.update(tasks[stage], completed=done, total=totals[stage])

        yield tick
