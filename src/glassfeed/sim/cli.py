"""``glassfeed simulate``: run policies side by side on one seeded synthetic society and write the report."""

from __future__ import annotations

import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from glassfeed.cli_support import cli_settings, console
from glassfeed.feed.policy import load_policies
from glassfeed.settings import Settings
from glassfeed.sim.gate import Replicate, SeedResult, run_replicates, seed_result
from glassfeed.sim.headline import headline, headline_html, headline_markdown, write_headline
from glassfeed.sim.loop import SimConfig, SimResult, run_simulation
from glassfeed.sim.report import markdown_table, write_report

#: Where reports go without ``--out`` (relative to the working directory): ``DEFAULT_OUT/<time>/report.html``.
#: The web page's "Audit report" (``/audit/``) serves the newest report there (``glassfeed.web.routes``).
DEFAULT_OUT = "sim-out"


def _run_seeds(
    cfg: SimConfig, n: int, seed_workers: int, scheduler: str | None, settings: Settings, bar: Progress
) -> list[SeedResult]:
    """``cfg`` on seeds ``cfg.seed .. cfg.seed + n - 1`` through the gate's replicate runner, each run kept. On Dask
    each seed ranks in its worker's one process (a worker cannot fork ``cfg.workers`` more)."""
    serial = scheduler is None and seed_workers <= 1
    jobs = [
        Replicate(replace(cfg, seed=s, workers=cfg.workers if serial else 1), settings, keep=True)
        for s in range(cfg.seed, cfg.seed + n)
    ]
    task = bar.add_task("seeds", total=n)

    def done(r: SeedResult) -> None:
        bar.advance(task)
        bar.console.print(f"seed {r.seed}: {r.seconds:.0f} s")

    return run_replicates(jobs, seed_workers, scheduler, done)


def _first(runs: list[SeedResult]) -> SimResult:
    """The first seed's whole run (``_run_seeds`` keeps every run)."""
    first = runs[0].result
    assert first is not None
    return first


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` command to the main CLI."""

    @app.command()
    def simulate(
        ctx: typer.Context,
        policies: str = typer.Option(
            "engagement,chronological,stated_preference,bridging",
            help="comma-separated policy names (include chronological as the control)",
        ),
        users: int = typer.Option(2000, help="synthetic users"),
        steps: int = typer.Option(50, help="simulation steps"),
        seed: int = typer.Option(1, help="random seed (same seed, same results)"),
        seeds: int = typer.Option(
            1,
            help="run the same configuration on seeds SEED .. SEED+N-1 and state in the report's headline each "
            "difference from the chronological control with its t-interval across seeds (the gate's replicates)",
        ),
        seed_workers: int = typer.Option(
            1, help="with --seeds: Dask LocalCluster worker processes running the seeds (1: one after the other here)"
        ),
        scheduler: str | None = typer.Option(
            None, help="with --seeds: a Dask scheduler address (tcp://host:8786) to run the seeds on instead"
        ),
        out: Path | None = typer.Option(
            None, help="folder for report.html + results.json (default: sim-out/<timestamp>)"
        ),
        active_prob: float = typer.Option(0.2, help="probability that a user requests a feed in a step"),
        step_hours: float = typer.Option(6.0, help="simulated hours per step"),
        history_days: int = typer.Option(7, help="days of generated history the models are first trained on"),
        retrain_every: int = typer.Option(10, help="steps between retrains (0 = never)"),
        retrain: str = typer.Option("partial", help="partial (ALS + bridging sides) | full (all models)"),
        workers: int = typer.Option(1, help="processes ranking each step's batches in parallel (forked)"),
        keep_stores: bool = typer.Option(False, help="keep each policy's SQLite store in OUT/stores"),
        moderation: str = typer.Option(
            "",
            help="comma-separated moderation policies run with every policy as arms: none (no moderation), a "
            "packaged name (sim_downrank, sim_drop, sim_drop_aggressive) or a TOML path; docs/sim_moderation.md",
        ),
        notifications: str = typer.Option(
            "",
            help="comma-separated notification policies run with every policy as arms (e.g. "
            "batched,engagement_push,minimal): the notification lever on the simulated events and the population's "
            "response to it (sim/notify_world.py); not with --moderation",
        ),
    ) -> None:
        """Simulate users browsing feeds ranked by the real pipeline under several policies; write an HTML report."""
        settings = cli_settings(ctx)
        names = tuple(p.strip() for p in policies.split(",") if p.strip())
        if not names or users < 10 or steps < 1 or not 0 < active_prob <= 1 or retrain not in ("partial", "full"):
            console.print(
                "[bold red]error:[/] need >= 1 policy, --users >= 10, --steps >= 1, "
                "0 < --active-prob <= 1, --retrain partial|full"
            )
            raise typer.Exit(2)
        if seeds < 1 or seed_workers < 1:
            console.print("[bold red]error:[/] need --seeds >= 1 and --seed-workers >= 1")
            raise typer.Exit(2)
        if seeds > 1 and (moderation.strip() or notifications.strip() or keep_stores):
            console.print(
                "[bold red]error:[/] --seeds > 1 runs feed policies only: no --moderation, --notifications "
                "or --keep-stores"
            )
            raise typer.Exit(2)
        known = load_policies(settings.serving.policies_dir or None)
        bad = [p for p in names if p not in known]
        if bad:
            console.print(f"[bold red]error:[/] unknown policy {bad[0]!r}; expected one of {', '.join(known)}")
            raise typer.Exit(2)
        cfg = SimConfig(
            users=users,
            steps=steps,
            seed=seed,
            policies=names,
            active_prob=active_prob,
            step_hours=step_hours,
            history_days=history_days,
            retrain_every=retrain_every,
            retrain=retrain,
            workers=max(1, workers),
        )
        mods = tuple(m.strip() for m in moderation.split(",") if m.strip())
        from glassfeed.sim.moderation import arms_for, moderation_policy, run_moderation_simulation

        if mods:
            try:
                for m in mods:
                    if m != "none":
                        moderation_policy(m)
            except (ValueError, OSError) as e:
                console.print(f"[bold red]error:[/] {e}")
                raise typer.Exit(2) from None
        notes = tuple(n.strip() for n in notifications.split(",") if n.strip())
        from glassfeed.sim import notify_world

        if notes:
            from glassfeed.notifications.policy import load_notification_policies

            if mods:
                console.print("[bold red]error:[/] --notifications and --moderation make different arms: give one")
                raise typer.Exit(2)
            known_n = load_notification_policies(settings.notifications.policies_dir or None)
            bad = [n for n in notes if n not in known_n]
            if bad or len(set(notes)) != len(notes):
                what = f"unknown notification policy {bad[0]!r}" if bad else "a notification policy named twice"
                console.print(f"[bold red]error:[/] {what}; expected some of {', '.join(known_n)}")
                raise typer.Exit(2)
        folder = out or Path(DEFAULT_OUT) / time.strftime("%Y%m%d-%H%M%S")
        folder.mkdir(parents=True, exist_ok=True)
        tmp = None if keep_stores else tempfile.TemporaryDirectory(prefix="glassfeed-sim-")
        work = folder / "stores" if keep_stores else Path(tmp.name)  # type: ignore[union-attr]
        tasks: dict[str, TaskID] = {}
        runs: list[SeedResult] = []
        with Progress(
            TextColumn("{task.description:>22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:

            def tick(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=max(total, 1))
                bar.update(tasks[stage], completed=done, total=max(total, 1))

            try:
                if seeds > 1:
                    runs = _run_seeds(cfg, seeds, seed_workers, scheduler, settings, bar)
                    result = _first(runs)
                elif mods:
                    arms = arms_for(names, mods)
                    result = run_moderation_simulation(cfg, arms, work, progress=tick, settings=settings)
                elif notes:
                    result = notify_world.run_notification_simulation(
                        cfg, notify_world.arms_for(names, notes), work, progress=tick, settings=settings
                    )
                else:
                    result = run_simulation(cfg, work, progress=tick, settings=settings)
            finally:
                if tmp is not None:
                    tmp.cleanup()
        result.machine = {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
        }
        if seeds == 1:  # today's run, as one seed
            runs = [seed_result(result, seed, result.seconds.get("total", 0.0), keep=True)]
        head = headline(runs, users, steps, settings.simulation)
        html_path, json_path = write_report(result, folder, headline_html(head, runs))
        md_path, _ = write_headline(head, folder)
        typer.echo(markdown_table(result))
        typer.echo(headline_markdown(head))
        typer.echo(f"wrote {md_path} and headline.json")
        typer.echo(f"wrote {html_path} and {json_path} in {result.seconds['total']:.0f} s")
        if out is None:
            typer.echo("the web page's Audit report (/audit/) shows it when the server runs from this folder")
        else:
            typer.echo(f"to show it on the web page's Audit report: GLASSFEED_AUDIT_REPORT={html_path} glassfeed serve")
