"""``glassfeed gate``: a candidate policy against a baseline through the simulator on many seeds, passed or failed
against a gate file's guardrails with intervals across seeds (``sim/gate.py``; docs/gate.md). Exit code 0: the gate
passed; 1: it failed (a guardrail breached, or an interval not wholly within its limit); 2: a usage error."""

from __future__ import annotations

import os
import re
import shlex
import statistics
import time
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from glassfeed.cli_support import cli_settings, console, fail
from glassfeed.experiments.model import spec_problems
from glassfeed.feed.policy import load_policies
from glassfeed.sim.gate import (
    GateError,
    GateSimulation,
    SeedResult,
    evaluate,
    load_gate,
    machine,
    replicates,
    run_replicates,
)
from glassfeed.sim.gate_report import console_table, write_reports

#: Exit codes: the gate passed, failed, or the command was used wrongly.
PASSED, FAILED, USAGE = 0, 1, 2
#: Without ``--out``: ``DEFAULT_OUT/<candidate>-vs-<baseline>-<time>/``.
DEFAULT_OUT = Path("sim-out/gate")


def register(app: typer.Typer) -> None:
    """Add the ``gate`` command to the main CLI."""

    @app.command()
    def gate(
        ctx: typer.Context,
        candidate: str = typer.Option(..., help="the policy to launch"),
        baseline: str = typer.Option(..., help="the policy it would replace"),
        gate_file: str = typer.Option(
            "default", "--gate", help="a gate TOML file, or a packaged gate's name (policies/gates/)"
        ),
        seeds: int | None = typer.Option(None, help="replicates (default: the gate file's [simulation] seeds)"),
        first_seed: int | None = typer.Option(None, help="first seed (default: the gate file's)"),
        users: int | None = typer.Option(None, help="people per society (default: the gate file's)"),
        steps: int | None = typer.Option(None, help="simulation steps (default: the gate file's)"),
        workers: int | None = typer.Option(
            None, help="Dask LocalCluster worker processes (default: the CPU count); 1 runs the seeds serially here"
        ),
        scheduler: str | None = typer.Option(
            None, help="a Dask scheduler address (tcp://host:8786) to run the seeds on instead of a LocalCluster"
        ),
        out: Path | None = typer.Option(
            None, help="folder for gate.json and gate.md (default: sim-out/gate/<candidate>-vs-<baseline>-<time>)"
        ),
    ) -> None:
        """Run CANDIDATE and BASELINE through the simulator on many seeds; pass or fail by the gate's guardrails."""
        settings = cli_settings(ctx)
        flags = {"seeds": seeds, "first_seed": first_seed, "users": users, "steps": steps}
        try:
            spec = load_gate(gate_file)
        except GateError as e:
            fail(str(e), USAGE)
        try:  # the flags obey the bounds of the file's keys
            sim = GateSimulation.model_validate(
                {**spec.simulation.model_dump(), **{k: v for k, v in flags.items() if v is not None}}
            )
        except ValidationError as e:
            fail("; ".join(f"--{f.replace('_', '-')}: {r}" for f, r in spec_problems(e)), USAGE)
        n_workers = workers if workers is not None else (os.cpu_count() or 1)
        if n_workers < 1:
            fail("--workers: at least 1", USAGE)
        if scheduler is not None and not re.fullmatch(r"[a-z][a-z0-9+]*://\S+", scheduler):
            fail(f"--scheduler: {scheduler!r} is not a scheduler address such as tcp://host:8786", USAGE)
        known = load_policies(settings.serving.policies_dir or None)
        policies = [candidate, baseline, *spec.references(baseline)]
        bad = next((p for p in policies if p not in known), None)
        if bad is not None:
            fail(f"unknown policy {bad!r}; expected one of {', '.join(known)}", USAGE)
        seed_list = list(range(sim.first_seed, sim.first_seed + sim.seeds))
        jobs = replicates(sim, policies, settings, seed_list)
        runner = (
            f"the Dask scheduler {scheduler}"
            if scheduler
            else (f"a Dask LocalCluster of {n_workers} worker processes" if n_workers > 1 else "1 process (serial)")
        )
        console.print(
            f"gate {spec.description or gate_file}: {candidate} vs {baseline} on {len(seed_list)} seeds "
            f"({sim.users} people x {sim.steps} steps; policies {', '.join(dict.fromkeys(policies))}) on {runner}"
        )
        load_start = os.getloadavg()[0]
        t = time.perf_counter()
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as bar:
            task = bar.add_task("seeds", total=len(jobs))

            def done(r: SeedResult) -> None:
                bar.advance(task)
                bar.console.print(f"seed {r.seed}: {r.seconds:.0f} s")

            results = run_replicates(jobs, n_workers, scheduler, done)
        wall = time.perf_counter() - t
        result = evaluate(spec, candidate, baseline, results)
        folder = out or DEFAULT_OUT / f"{candidate}-vs-{baseline}-{time.strftime('%Y%m%d-%H%M%S')}"
        command = ["glassfeed", "gate", "--candidate", candidate, "--baseline", baseline, "--gate", gate_file]
        command += ["--seeds", str(sim.seeds), "--first-seed", str(sim.first_seed)]
        command += ["--users", str(sim.users), "--steps", str(sim.steps)]
        command += ["--scheduler", scheduler] if scheduler else ["--workers", str(n_workers)]
        command += ["--out", str(folder)]
        seconds = [r.seconds for r in results]
        result.meta = {
            "command": shlex.join(command),
            "simulation": sim.model_dump(mode="json"),
            "machine": machine(),
            "timing": {
                "runner": runner,
                "workers": None if scheduler else n_workers,
                "wall_s": round(wall, 2),
                "median_seed_s": round(statistics.median(seconds), 2),
                "sum_seed_s": round(sum(seconds), 2),
                "load_start": load_start,
                "load_end": os.getloadavg()[0],
            },
        }
        js, md = write_reports(result, folder)
        console.print(console_table(result))
        console.print(f"wrote {md} and {js} ({wall:.0f} s)")
        raise typer.Exit(PASSED if result.passed else FAILED)


__all__ = ["register"]
