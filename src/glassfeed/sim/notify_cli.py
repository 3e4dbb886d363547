"""``glassfeed simulate-notifications``: notification policies side by side on a synthetic society
(``sim/notify.py``), several seeds, written as JSON and a markdown report."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import typer

from glassfeed.cli_support import console, fail
from glassfeed.sim.notify import COLUMNS, markdown, simulate_notifications


def register(app: typer.Typer) -> None:
    @app.command("simulate-notifications")
    def simulate_notifications_cmd(
        users: int = typer.Option(2000, help="synthetic people"),
        days: int = typer.Option(14, help="simulated days"),
        seeds: str = typer.Option("1,2,3", help="comma-separated seeds; the report gives each and the median"),
        policies: str = typer.Option("engagement_push,batched,minimal", help="notification policies"),
        out: Path = typer.Option(Path("sim-out/notifications"), help="folder for results.json and report.md"),
    ) -> None:
        """Run notification policies on the same social stream and compare what they do to people's time."""
        try:
            seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            fail(f"--seeds: not a list of integers: {seeds!r}")
        names = tuple(p.strip() for p in policies.split(",") if p.strip())
        if users < 10 or days < 1 or not seed_list or not names:
            fail("need --users >= 10, --days >= 1, at least one seed and one policy")
        runs = []
        for seed in seed_list:
            t = time.perf_counter()
            r = simulate_notifications(users, days, seed, names)
            r["seconds"] = time.perf_counter() - t
            console.print(f"seed {seed}: {r['stream']['candidates']:,} candidates, {r['seconds']:.1f} s")
            runs.append(r)
        median = {
            "outcomes": [
                {
                    "policy": name,
                    **{
                        k: statistics.median(o[k] for r in runs for o in r["outcomes"] if o["policy"] == name)
                        if all(o[k] is not None for r in runs for o in r["outcomes"] if o["policy"] == name)
                        else None
                        for k, _ in COLUMNS
                    },
                }
                for name in names
            ]
        }
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps({"runs": runs, "median": median}, indent=1))
        cfg = runs[0]["config"]
        lines = [
            f"# Notification policies: {users:,} people x {days} days, seeds {', '.join(map(str, seed_list))}",
            "",
            f"Command: `glassfeed simulate-notifications --users {users} --days {days} --seeds {seeds} "
            f"--policies {','.join(names)} --out {out}`",
            f"Machine: {runs[0]['machine']}",
            "",
            "## Median over the seeds (per person and day)",
            "",
            markdown(median),
            "",
        ]
        for r in runs:
            lines += [
                f"## Seed {r['config']['seed']} ({r['stream']['candidates']:,} candidates, {r['seconds']:.1f} s)",
                "",
                markdown(r),
                "",
            ]
        lines += [
            "## Parameters",
            "",
            "```",
            json.dumps({"response": cfg["params"], "stream": cfg["stream"]}, indent=1),
            "```",
        ]
        (out / "report.md").write_text("\n".join(lines) + "\n")
        console.print(markdown(median))
        console.print(f"wrote {out / 'report.md'} and {out / 'results.json'}")
