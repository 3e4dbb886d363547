"""``glassfeed simulate-suggestions``: feed policies x suggestion policies on a synthetic society with the real
"people you may know" lever (``sim/suggestions.py``), several seeds; writes results.json, report.md (how each
suggestion policy changed the follow graph and what the feeds then served, as tables with what the numbers say)
and modularity.png (when matplotlib is installed)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from glassfeed.cli_support import cli_settings, console, fail
from glassfeed.feed.policy import load_policies
from glassfeed.sim.gate import machine
from glassfeed.sim.loop import SimConfig
from glassfeed.sim.suggestions import NONE, arms_for, load_behaviour, run_suggestion_simulation
from glassfeed.suggest.policy import builtin_policies

#: The graph's columns: (key in an arm's final outcome, header).
GRAPH: tuple[tuple[str, str], ...] = (
    ("suggestions_shown_total", "suggestions shown"),
    ("suggestion_shown_cross_share_total", "shown: cross-community share"),
    ("suggestion_accept_rate", "taken / shown"),
    ("suggestion_follows_total", "follows from suggestions"),
    ("suggestion_follow_cross_share_total", "from suggestions: cross share"),
    ("feed_follows_total", "follows from the feed"),
    ("new_follow_cross_share_total", "all new follows: cross share"),
    ("follow_edges_end", "follow edges, end"),
    ("follow_cross_share_start", "graph's cross share, start"),
    ("follow_cross_share_end", "graph's cross share, end"),
    ("modularity_start", "modularity, start"),
    ("modularity_end", "modularity, end"),
    ("modularity_change", "modularity change"),
)
#: The feeds' columns (the loop's per-step metrics averaged over the steps, and the end of the run).
FEED: tuple[tuple[str, str], ...] = (
    ("divisive_share_top10", "divisive share, top 10 served"),
    ("divisive_share_consumed", "divisive share, scanned"),
    ("satisfaction", "stated satisfaction"),
    ("regret", "regret"),
    ("engagement_rate", "engagement / impression"),
    ("time_spent_s", "time per session (s)"),
    ("topic_entropy", "topic entropy of pages"),
    ("polarisation_end", "polarisation, end"),
)
#: Per-step series kept in results.json (the rest of the loop's series stay out: the file stays small).
SERIES: tuple[str, ...] = (
    "modularity",
    "new_follows",
    "new_follow_cross_share",
    "suggestion_follows",
    "suggestion_follow_cross_share",
    "divisive_share_top10",
    "satisfaction",
    "engagement_rate",
)


def mean_over_seeds(runs: Sequence[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per arm, the mean of each numeric outcome over the seeds (None where a seed has none); text kept when equal."""
    out: dict[str, dict[str, Any]] = {}
    for arm in runs[0]:
        row: dict[str, Any] = {}
        for k in runs[0][arm]:
            vals = [r[arm].get(k) for r in runs]
            nums = [float(v) for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if len(nums) == len(vals):
                row[k] = statistics.fmean(nums)
            else:
                row[k] = vals[0] if len({json.dumps(v) for v in vals}) == 1 else None
        out[arm] = row
    return out


def series_mean(runs: Sequence[dict[str, dict[str, list[float | None]]]], arm: str, key: str) -> list[float | None]:
    """The per-step mean over the seeds of one arm's series (None where a step has no value in some seed)."""
    per = [r[arm].get(key, []) for r in runs]
    steps = min(map(len, per)) if per else 0
    out: list[float | None] = []
    for i in range(steps):
        vals = [s[i] for s in per]
        ok = [float(v) for v in vals if v is not None and v == v]
        out.append(statistics.fmean(ok) if len(ok) == len(vals) else None)
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v == 0:
            return "0"
        if v.is_integer() and abs(v) >= 1:
            return f"{v:,.0f}"
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.4f}" if abs(v) < 0.1 else f"{v:.3f}"
    return str(v)


def table(outcomes: dict[str, dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """One row per arm (feed policy, suggestion policy), one column per ``columns``."""
    head = ["feed policy", "suggestions", *[h for _, h in columns]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for o in outcomes.values():
        cells = [str(o["feed_policy"]), str(o["suggestion_policy"])] + [_fmt(o.get(k)) for k, _ in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def modularity_table(series: Sequence[dict[str, dict[str, list[float | None]]]], arms: Sequence[str], at: int) -> str:
    """Modularity at every ``at``-th step (and the last), mean over the seeds; one row per arm."""
    steps = min(len(r[a]["modularity"]) for r in series for a in arms)
    cols = sorted({*range(0, steps, max(1, at)), steps - 1}) if steps else []
    lines = [
        "| arm | " + " | ".join(f"after step {c + 1}" for c in cols) + " |",
        "|" + "---|" * (len(cols) + 1),
    ]
    for a in arms:
        m = series_mean(series, a, "modularity")
        lines.append(f"| {a} | " + " | ".join(_fmt(m[c]) for c in cols) + " |")
    return "\n".join(lines)


def findings(
    runs: Sequence[dict[str, dict[str, Any]]], feed_policies: Sequence[str], sugg: Sequence[str], seeds: Sequence[int]
) -> list[str]:
    """What the tables say, from the measured outcomes (each seed's and their mean); no other number."""
    mean = mean_over_seeds(runs)
    by = {(o["feed_policy"], o["suggestion_policy"]): o for o in mean.values()}
    per_seed = [{(o["feed_policy"], o["suggestion_policy"]): o for o in r.values()} for r in runs]
    out: list[str] = []

    def each(p: str, a: str, b: str, key: str) -> str:
        return (
            "(" + ", ".join(f"seed {k}: {s[(p, b)][key] - s[(p, a)][key]:+.4f}" for k, s in zip(seeds, per_seed)) + ")"
        )

    def count(p: str, a: str, b: str, key: str) -> int:
        return sum(s[(p, b)][key] > s[(p, a)][key] for s in per_seed)

    for p in feed_policies:
        g, b, n = by.get((p, "growth")), by.get((p, "bridging")), by.get((p, NONE))
        if g is None or b is None:
            continue
        cs = "new_follow_cross_share_total"
        out.append(
            f"- **{p}: who followed whom.** Cross-community share of the suggestions shown: growth "
            f"{_fmt(g['suggestion_shown_cross_share_total'])}, bridging "
            f"{_fmt(b['suggestion_shown_cross_share_total'])}; "
            f"of the suggestions taken: growth {_fmt(g['suggestion_follow_cross_share_total'])}, bridging "
            f"{_fmt(b['suggestion_follow_cross_share_total'])}; taken / shown: growth "
            f"{_fmt(g['suggestion_accept_rate'])}, bridging {_fmt(b['suggestion_accept_rate'])}. Follows from "
            f"suggestions: growth {g['suggestion_follows_total']:,.0f}, bridging {b['suggestion_follows_total']:,.0f}"
            + (f" (the feed alone, no suggestions: {n['feed_follows_total']:,.0f} follows)" if n else "")
            + f". Share of all new follows that cross communities: growth {_fmt(g[cs])}, bridging {_fmt(b[cs])}"
            + (f", none {_fmt(n[cs])}" if n else "")
            + f"; higher under bridging in {count(p, 'growth', 'bridging', cs)} of {len(runs)} seeds."
        )
        mc = "modularity_change"
        out.append(
            f"- **{p}: modularity.** From {_fmt(g['modularity_start'])} (the same start in every arm of a seed) to "
            f"{_fmt(g['modularity_end'])} under growth ({g[mc]:+.4f}), {_fmt(b['modularity_end'])} under bridging "
            f"({b[mc]:+.4f})"
            + (f", {_fmt(n['modularity_end'])} with no suggestions ({n[mc]:+.4f})" if n else "")
            + f"; bridging minus growth per seed {each(p, 'growth', 'bridging', mc)}."
        )
        parts = []
        for key, label in (
            ("divisive_share_top10", "divisive share of the top 10 served"),
            ("satisfaction", "stated satisfaction"),
            ("engagement_rate", "engagement per impression"),
        ):
            parts.append(
                f"{label} {g[key]:.4f} (growth) vs {b[key]:.4f} (bridging)"
                + (f" vs {n[key]:.4f} (none)" if n else "")
                + f", bridging minus growth per seed {each(p, 'growth', 'bridging', key)}"
            )
        out.append(f"- **{p}: the feeds.** " + "; ".join(parts) + ".")
        if n is not None:
            vs = []
            for key, label in (("engagement_rate", "engagement per impression"), ("topic_entropy", "topic entropy")):
                vs.append(
                    f"{label} {n[key]:.4f} with none, higher with growth in {count(p, NONE, 'growth', key)} and with "
                    f"bridging in {count(p, NONE, 'bridging', key)} of {len(runs)} seeds"
                )
            out.append(f"- **{p}: suggestions against none.** " + "; ".join(vs) + ".")
    return out


def plot(series: Sequence[dict[str, dict[str, list[float | None]]]], arms: Sequence[str], path: Path) -> bool:
    """Modularity and the cross-community share of new follows over the steps (mean over seeds), one line per arm;
    False without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib comes with the simulator's report
        return False
    fig = Figure(figsize=(12, 4))
    axes = fig.subplots(1, 2)
    for ax, key, label in (
        (axes[0], "modularity", "modularity of the follow graph (by community)"),
        (axes[1], "new_follow_cross_share", "share of the step's new follows across communities"),
    ):
        for a in arms:
            ys = series_mean(series, a, key)
            ax.plot(range(1, len(ys) + 1), [float("nan") if y is None else y for y in ys], label=a)
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return True


def write_report(out: Path, data: dict[str, Any]) -> None:
    """report.md and modularity.png in ``out`` from a run's results (``results.json``'s content)."""
    raw: list[dict[str, Any]] = data["runs"]
    runs = [r["final"] for r in raw]
    series = [r["series"] for r in raw]
    cfg = raw[0]["config"]
    arms_cfg = cfg["suggestions"]["arms"]
    arms = list(arms_cfg)
    feed_policies = list(dict.fromkeys(a["feed_policy"] for a in arms_cfg.values()))
    sugg = list(dict.fromkeys(a["suggestion_policy"] for a in arms_cfg.values()))
    seeds = [r["seed"] for r in raw]
    mean = mean_over_seeds(runs)
    png = plot(series, arms, out / "modularity.png")
    days = cfg["steps"] * cfg["step_hours"] / 24
    head = cfg["suggestions"]["head"]
    ranked = sorted({str(o.get("ranked_by")) for r in runs for o in r.values() if o.get("ranked_by")})
    lines = [
        f"# People you may know in the simulator: growth vs bridging ({cfg['users']:,} people x {cfg['steps']} "
        f"steps of {cfg['step_hours']:g} h = {days:g} days, seed{'s' if len(seeds) > 1 else ''} "
        f"{', '.join(map(str, seeds))})",
        "",
        f"Command: `{data['command']}`  ",
        f"Machine: {data['machine']}; load average at the start {data['load_start']}; {data['seconds']:.0f} s in all.",
        "",
        "Every arm is a feed policy with a suggestion policy, served by the real feed pipeline and the real "
        "`SuggestionService` (sim/suggestions.py; docs/suggestions.md, 'In the simulator'). Everyone with a feed "
        f"session in a step is then shown {cfg['suggestions']['behaviour']['showing']['per_session']} suggestions "
        "and takes each with the acceptance rule's probability (Parameters, below); `none` shows no suggestions. "
        f"Suggestions were ordered by: {', '.join(ranked) or '-'}"
        + (
            " (the head trained once per seed on that seed's history, its newest follows held out: "
            f"{head['held_out_follows']:,.0f} in the first seed)"
            if head
            else ""
        )
        + ". Means over the seeds; each seed below and in results.json. Feed metrics are the loop's per-step "
        "metrics averaged over the steps.",
        "",
        "## The follow graph (mean over seeds)",
        "",
        table(mean, GRAPH),
        "",
        "## Modularity over time (mean over seeds)",
        "",
        modularity_table(series, arms, max(1, cfg["steps"] // 6)),
        "",
        "![modularity and cross-community share of new follows](modularity.png)"
        if png
        else "(matplotlib is not installed: no plot)",
        "",
        "## The feeds (mean over seeds)",
        "",
        table(mean, FEED),
        "",
        "## What the numbers say (computed from the tables)",
        "",
        *findings(runs, feed_policies, sugg, seeds),
        "",
    ]
    for r in raw:
        lines += [
            f"## Seed {r['seed']} ({r['seconds']:.0f} s)",
            "",
            table(r["final"], GRAPH),
            "",
            table(r["final"], FEED),
            "",
        ]
    lines += [
        "## Parameters",
        "",
        "```",
        json.dumps(
            {
                "sim": {
                    k: cfg[k] for k in ("users", "steps", "step_hours", "active_prob", "history_days", "retrain_every")
                },
                "suggestion_behaviour (sim/suggestions.toml)": cfg["suggestions"]["behaviour"],
                "head (first seed)": head,
            },
            indent=1,
        ),
        "```",
    ]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    console.print(table(mean, GRAPH))
    console.print(f"wrote {out / 'report.md'}" + (f", {out / 'modularity.png'}" if png else ""))


def register(app: typer.Typer) -> None:
    @app.command("simulate-suggestions")
    def simulate_suggestions_cmd(
        ctx: typer.Context,
        feed_policies: str = typer.Option("engagement,stated_preference", help="feed policies"),
        suggestion_policies: str = typer.Option(
            f"{NONE},growth,bridging", help=f"suggestion policies ({NONE}: no suggestions, the control)"
        ),
        users: int = typer.Option(600, help="synthetic people"),
        steps: int = typer.Option(30, help="simulation steps"),
        seeds: str = typer.Option("1", help="comma-separated seeds; the report gives each and their mean"),
        step_hours: float = typer.Option(6.0, help="simulated hours per step"),
        active_prob: float = typer.Option(0.2, help="probability that a person opens the feed in a step"),
        history_days: int = typer.Option(4, help="days of generated history the models are trained on"),
        retrain_every: int = typer.Option(10, help="steps between the feed's partial retrains (0 = never)"),
        head: bool = typer.Option(True, help="train the P(follow | suggested) head on the history (else fallback)"),
        out: Path = typer.Option(Path("sim-out/suggestions"), help="folder for results.json, report.md, the plot"),
        keep_stores: bool = typer.Option(False, help="keep each arm's store (OUT/stores/seed<k>/<arm>.db)"),
        report_from: Path | None = typer.Option(None, help="rebuild report.md beside this results.json, no run"),
    ) -> None:
        """Feed policies x suggestion policies with the real "people you may know" lever: cross-community follows,
        the follow graph's modularity over time, the feeds' divisive share and satisfaction (docs/suggestions.md)."""
        if report_from is not None:
            try:
                write_report(report_from.parent, json.loads(report_from.read_text()))
            except (OSError, ValueError, KeyError, IndexError) as e:
                fail(f"--report-from {report_from}: not a simulate-suggestions results.json ({e})")
            return
        settings = cli_settings(ctx)
        try:
            seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            fail(f"--seeds: not a list of integers: {seeds!r}")
        feeds = [p.strip() for p in feed_policies.split(",") if p.strip()]
        sugg = [p.strip() for p in suggestion_policies.split(",") if p.strip()]
        if users < 20 or steps < 1 or not seed_list or not feeds or not sugg or not 0 < active_prob <= 1:
            fail("need --users >= 20, --steps >= 1, 0 < --active-prob <= 1, a seed, a feed and a suggestion policy")
        known_feed = load_policies(settings.serving.policies_dir or None)
        known_sugg = [NONE, *builtin_policies()]
        bad = [p for p in feeds if p not in known_feed]
        if bad:
            fail(f"unknown feed policy {bad[0]!r}; expected one of {', '.join(known_feed)}")
        bad = [p for p in sugg if p not in known_sugg]
        if bad:
            fail(f"unknown suggestion policy {bad[0]!r}; expected one of {', '.join(known_sugg)}")
        if len(set(feeds)) != len(feeds) or len(set(sugg)) != len(sugg):
            fail("a policy named twice")
        arms = arms_for(feeds, sugg)
        behaviour = load_behaviour()
        load_start = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        raw: list[dict[str, Any]] = []
        t_all = time.perf_counter()
        for seed in seed_list:
            cfg = SimConfig(
                users=users,
                steps=steps,
                seed=seed,
                active_prob=active_prob,
                step_hours=step_hours,
                history_days=history_days,
                retrain_every=retrain_every,
            )
            folder = out / "stores" / f"seed{seed}"
            t = time.perf_counter()
            with console.status(f"seed {seed}: {len(arms)} arms") as status:

                def say(stage: str, done: int, total: int, seed: int = seed) -> None:
                    status.update(f"seed {seed}: {stage} {done}/{total}")

                try:
                    res = run_suggestion_simulation(
                        cfg, arms, folder, say, settings=settings, behaviour=behaviour, head=head
                    )
                except ValueError as e:
                    fail(str(e))
            secs = time.perf_counter() - t
            console.print(f"seed {seed}: {len(arms)} arms, {secs:.0f} s")
            raw.append(
                {
                    "seed": seed,
                    "seconds": secs,
                    "config": res.config,
                    "final": res.final,
                    "series": {
                        a: {k: [None if v != v else v for v in s.get(k, [])] for k in SERIES}
                        for a, s in res.series.items()
                    },
                    "timings": res.seconds,
                }
            )
            if not keep_stores:
                shutil.rmtree(folder, ignore_errors=True)
        if not keep_stores:
            shutil.rmtree(out / "stores", ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        m = machine()
        data = {
            "command": (
                f"glassfeed simulate-suggestions --feed-policies {','.join(feeds)} --suggestion-policies "
                f"{','.join(sugg)} --users {users} --steps {steps} --seeds {','.join(map(str, seed_list))} "
                f"--step-hours {step_hours:g} --active-prob {active_prob:g} --history-days {history_days} "
                f"--retrain-every {retrain_every}{'' if head else ' --no-head'} --out {out}"
            ),
            "machine": f"{m['cpu']}, {m['cores']} cores, {m['platform']}, Python {m['python']}",
            "load_start": load_start,
            "seconds": time.perf_counter() - t_all,
            "mean": mean_over_seeds([r["final"] for r in raw]),
            "runs": raw,
        }
        (out / "results.json").write_text(json.dumps(data, indent=1, default=str))
        write_report(out, data)
