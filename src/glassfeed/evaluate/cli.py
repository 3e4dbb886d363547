"""``glassfeed evaluate``: run an offline protocol on a real dataset and write markdown + JSON results;
``glassfeed evaluate-pipeline``: the full feed pipeline on a protocol's split, beside retrieval baselines."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from threadpoolctl import threadpool_limits

from glassfeed.cli_support import cli_settings
from glassfeed.evaluate import pipeline_eval, textclass
from glassfeed.evaluate.datasets import DATASETS, DatasetMissing, dataset_path
from glassfeed.evaluate.protocols import PROTOCOLS, Protocol
from glassfeed.evaluate.report import machine_info, to_markdown, write_report
from glassfeed.evaluate.runner import ModelResult, UnknownName, check_models, n_steps, run_protocol


def resolve(dataset: str | None, protocol: str | None) -> Protocol:
    """The protocol named (or the one for ``dataset``); raises ``UnknownName`` on an unknown or mismatched pair."""
    if protocol is not None and protocol not in PROTOCOLS:
        raise UnknownName(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    if dataset is not None and dataset not in DATASETS:
        raise UnknownName(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    if protocol is None:
        if dataset is None:
            raise UnknownName(f"give --protocol ({', '.join(PROTOCOLS)}) or --dataset ({', '.join(DATASETS)})")
        return next(p for p in PROTOCOLS.values() if p.dataset == dataset)
    chosen = PROTOCOLS[protocol]
    if dataset is not None and dataset != chosen.dataset:
        raise UnknownName(f"protocol {protocol!r} runs on dataset {chosen.dataset!r}, not {dataset!r}")
    return chosen


def run_with_progress(
    protocol: Protocol, models: Sequence[str], console: Console, root: str | Path | None = None, repeats: int = 1
) -> dict[str, Any]:
    """``run_protocol`` with one rich progress bar per model (grid points + the test run) and a line per result."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        tasks = {name: progress.add_task(f"{protocol.name} {name}", total=n_steps(protocol, name)) for name in models}

        def on_trial(name: str) -> None:
            if name in tasks:
                progress.advance(tasks[name])

        def on_result(r: ModelResult) -> None:
            shown = "  ".join(f"{c} {r.metrics[c]:.4f}" for c in protocol.columns)
            progress.console.print(f"{protocol.name} {r.model}: {shown}  (fit {r.fit_seconds:.2f} s)")

        run = run_protocol(protocol, models, root=root, on_trial=on_trial, on_result=on_result, repeats=repeats)
    run["machine"] = machine_info()
    return run


def evaluate(
    ctx: typer.Context,
    dataset: str = typer.Option(None, "--dataset", help=f"one of: {', '.join(DATASETS)}"),
    protocol: str = typer.Option(
        None, "--protocol", help=f"one of: {', '.join([*PROTOCOLS, *textclass.TEXT_PROTOCOLS])}"
    ),
    models: str = typer.Option(None, "--models", help="comma-separated registry names; a+b blends a and b"),
    out: Path = typer.Option(Path("bench-results"), "--out", help="folder for <protocol>.md and <protocol>.json"),
    repeats: int = typer.Option(1, "--repeats", min=1, help="time each final fit and ranking this many times"),
    threads: int = typer.Option(1, "--threads", min=1, help="BLAS threads (1 was fastest on a shared 2-core box)"),
) -> None:
    """Tune models on validation data, score the test split, and compare with published numbers."""
    root = cli_settings(ctx).data_dir
    if textclass.is_text(protocol, dataset):
        evaluate_text(protocol or textclass.TEXT_DATASETS[dataset], dataset, root, out, repeats, threads)
        return
    try:
        chosen = resolve(dataset, protocol)
        names = [m.strip() for m in models.split(",") if m.strip()] if models else list(chosen.models)
        check_models(names)
        dataset_path(chosen.dataset, root)
    except (UnknownName, DatasetMissing) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    console = Console()
    with threadpool_limits(threads):
        run = run_with_progress(chosen, names, console, root=root, repeats=repeats)
    md, js = write_report([run], out, chosen.name)
    typer.echo(to_markdown(run))
    typer.echo(f"wrote {md} and {js}")


def evaluate_text(name: str, dataset: str | None, root: Path, out: Path, repeats: int, threads: int) -> None:
    """A text-classification protocol (evaluate/textclass.py): validation-only search, then test, then report."""
    chosen = textclass.TEXT_PROTOCOLS[name]
    try:
        if dataset is not None and dataset != chosen.dataset:
            raise UnknownName(f"protocol {name!r} runs on dataset {chosen.dataset!r}, not {dataset!r}")
        dataset_path(chosen.dataset, root)
    except (UnknownName, DatasetMissing) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    with threadpool_limits(threads):
        run = textclass.run_text_protocol(name, root=root, repeats=max(3, repeats), say=typer.echo)
    md, js = textclass.write_text_report(run, out)
    typer.echo(textclass.to_markdown(run))
    typer.echo(f"wrote {md} and {js}")


def evaluate_pipeline(
    ctx: typer.Context,
    protocol: str = typer.Option("ms-ml100k", "--protocol", help=f"one of: {', '.join(PROTOCOLS)}"),
    policy: str = typer.Option("engagement", "--policy"),
    baselines: str = typer.Option("pop,ease", "--baselines", help="retrieval models to compare (tuned)"),
    max_users: int = typer.Option(None, "--max-users", help="only the first N users"),
    recipe: str = typer.Option(
        pipeline_eval.DEFAULT_RECIPE, "--recipe", help="how ratings become events: a table of evaluate/imports.toml"
    ),
) -> None:
    """Import a protocol's training split as events, rank with the full feed pipeline, score it."""
    settings = cli_settings(ctx)
    if recipe not in (recipes := pipeline_eval.import_recipes()):
        typer.echo(f"error: --recipe: unknown import recipe {recipe!r}; expected one of {', '.join(recipes)}", err=True)
        raise typer.Exit(code=2)
    try:
        dataset_path(resolve(None, protocol).dataset, settings.data_dir)
    except (UnknownName, DatasetMissing) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    run = pipeline_eval.evaluate_pipeline(
        recipe=recipe,
        protocol=protocol,
        policy=policy,
        max_users=max_users,
        say=typer.echo,
        root=settings.data_dir,
        settings=settings,
        baselines=tuple(b.strip() for b in baselines.split(",") if b.strip()),
    )
    typer.echo(pipeline_eval.to_markdown(run))


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` and ``evaluate-pipeline`` commands to the glassfeed CLI."""
    app.command("evaluate")(evaluate)
    app.command("evaluate-pipeline")(evaluate_pipeline)
