"""``glassfeed simulate-ads``: feed policies x ad loads on a synthetic society with the real ad lever
(``sim/ads.py``), several seeds; writes results.json, report.md (the revenue-vs-wellbeing curve as tables, with
what the numbers say) and curve.png (when matplotlib is installed)."""

from __future__ import annotations

import itertools
import json
import platform
import shutil
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from glassfeed.ads.policy import load_ad_policy
from glassfeed.cli_support import console, fail
from glassfeed.sim.ads import AdBehaviour, MarketParams, arms_for, run_ad_simulation
from glassfeed.sim.loop import SimConfig

#: The curve's columns: (key in an arm's outcome, header).
CURVE: tuple[tuple[str, str], ...] = (
    ("impressions_per_session", "ads served / session"),
    ("ads_seen_per_session_total", "ads scanned / session"),
    ("ctr", "CTR (clicks / served)"),
    ("revenue_per_1k_sessions", "revenue / 1,000 sessions"),
    ("sessions", "sessions"),
    ("minutes_per_session", "minutes / session"),
    ("engagements_per_session", "engagements / session"),
    ("engagement_rate", "engagement / impression"),
    ("satisfaction_all", "satisfaction (all scanned)"),
    ("regret_all", "regret (all scanned)"),
    ("regretted_minutes_per_session", "regretted min / session"),
    ("divisive_share_top10", "divisive share, top 10 served"),
)
#: Per-step series left out of results.json (the finals are kept; plots over time are the loop's report).
PER_STEP = ("series", "amplification_series")
#: More of each arm: the organic feed alone, the ads' side, the lever's checks.
MORE: tuple[tuple[str, str], ...] = (
    ("satisfaction", "satisfaction (posts scanned)"),
    ("regret", "regret (posts scanned)"),
    ("divisive_share_consumed", "divisive share, scanned"),
    ("organic_seen_per_session", "posts scanned / session"),
    ("revenue_per_1k_ads", "revenue / 1,000 ads served"),
    ("cpm_price", "mean CPM price paid (per 1,000)"),
    ("seen_share", "ads scanned / ads served"),
    ("fill_rate", "fill rate (served / places)"),
    ("ctr_seen", "clicks / ads scanned"),
    ("hides_per_1k_sessions", "hides / 1,000 sessions"),
    ("revenue_cpm_share", "revenue share from CPM"),
    ("budget_spent_share", "share of daily budgets spent"),
    ("budget_bound_share", "campaign-days at >= 90% of budget"),
    ("load_violations", "pages breaking the ad load"),
)


def outcome(final: dict[str, Any]) -> dict[str, Any]:
    """An arm's outcome as the report shows it: the loop's metrics and the ads' (``AdWorld.final_extra``), with
    times in minutes."""
    o = dict(final)
    o["minutes_per_session"] = _div(final.get("time_spent_s"), 60.0)
    o["regretted_minutes_per_session"] = _div(final.get("regretted_time_s"), 60.0)
    o["hides_per_1k_sessions"] = _div(1000.0 * final.get("ad_hides", 0), final.get("sessions"))
    rev = final.get("revenue") or 0.0
    o["revenue_cpm_share"] = _div(final.get("revenue_cpm"), rev) if rev else None
    return o


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else float(a) / float(b)


def mean_over_seeds(runs: Sequence[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per arm, the mean of each numeric outcome over the seeds (None where a seed has none)."""
    out: dict[str, dict[str, Any]] = {}
    for arm in runs[0]:
        keys = runs[0][arm].keys()
        row: dict[str, Any] = {}
        for k in keys:
            vals = [r[arm].get(k) for r in runs]
            nums = [float(v) for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if len(nums) == len(vals) and len(set(nums)) == 1:
                row[k] = vals[0]  # the same in every seed (the ad load, ...): kept exactly, it is a key
            elif len(nums) == len(vals):
                row[k] = statistics.fmean(nums)
            else:
                row[k] = vals[0] if len({json.dumps(v) for v in vals}) == 1 else None
        out[arm] = row
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    if isinstance(v, float):
        if v == 0:
            return "0"
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.4f}" if abs(v) < 0.1 else f"{v:.3f}"
    return str(v)


def table(outcomes: dict[str, dict[str, Any]], columns: Sequence[tuple[str, str]], currency: str) -> str:
    """One row per arm (policy, ad load), one column per ``columns``."""
    head = ["policy", "ad load"] + [h.replace("revenue /", f"revenue ({currency}) /") for _, h in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for o in outcomes.values():
        cells = [str(o["feed_policy"]), f"{100 * o['ad_load']:g}%"] + [_fmt(o.get(k)) for k, _ in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _f(o: dict[str, Any] | None, key: str) -> str:
    v = None if o is None else o.get(key)
    return "-" if v is None else f"{v:.2f}"


def _f3(o: dict[str, Any] | None, key: str) -> str:
    v = None if o is None else o.get(key)
    return "-" if v is None else f"{v:.4f}"


def _pct(a: float, b: float) -> str:
    return f"{100 * (b - a) / a:+.1f}%" if a else "n/a"


def findings(
    mean: dict[str, dict[str, Any]],
    runs: Sequence[dict[str, dict[str, Any]]],
    policies: Sequence[str],
    loads: Sequence[float],
    currency: str,
    seed_ids: Sequence[int] = (),
) -> list[str]:
    """What the curve says, computed from the means (and, for directions, from each seed): no number here that the
    run did not measure."""
    lo, hi = min(loads), max(loads)
    some = [x for x in loads if x > 0]
    first = min(some) if some else lo
    by = {(o["feed_policy"], o["ad_load"]): o for o in mean.values()}
    seeds = [{(o["feed_policy"], o["ad_load"]): o for o in r.values()} for r in runs]
    out = []

    def change(a: dict[str, Any], b: dict[str, Any], key: str, digits: int = 3) -> str:
        x, y = a[key], b[key]
        return f"{x:.{digits}f} -> {y:.{digits}f} ({_pct(x, y)})"

    for p in policies:
        a, b, f = by.get((p, lo)), by.get((p, hi)), by.get((p, first))
        if a is None or b is None or f is None:
            continue
        rising = sum(
            all(
                s[(p, x)]["revenue_per_1k_sessions"] < s[(p, y)]["revenue_per_1k_sessions"]
                for x, y in itertools.pairwise(sorted(loads))
            )
            for s in seeds
        )
        best = max(sorted(loads), key=lambda x: by[(p, x)]["revenue_per_1k_sessions"])
        out += [
            f"- **{p}: revenue.** Per 1,000 sessions {a['revenue_per_1k_sessions']:.2f} {currency} at {100 * lo:g}%, "
            f"{f['revenue_per_1k_sessions']:.2f} at {100 * first:g}%, {b['revenue_per_1k_sessions']:.2f} at "
            f"{100 * hi:g}% (highest mean at {100 * best:g}%); it rose at every step of the load in {rising} of "
            f"{len(seeds)} seeds. Ads served per session {f['impressions_per_session']:.2f} -> "
            f"{b['impressions_per_session']:.2f} from {100 * first:g}% to {100 * hi:g}%, ads scanned "
            f"{f['ads_seen_per_session_total']:.2f} -> {b['ads_seen_per_session_total']:.2f}; revenue per 1,000 ads "
            f"served {_f(f, 'revenue_per_1k_ads')} -> {_f(b, 'revenue_per_1k_ads')}, mean CPM price "
            f"{_f(f, 'cpm_price')} -> {_f(b, 'cpm_price')}, clicks per ad served {_f3(f, 'ctr')} -> {_f3(b, 'ctr')}, "
            f"fill rate {_f(f, 'fill_rate')} -> {_f(b, 'fill_rate')}, campaign-days at >= 90% of the daily budget "
            f"{_f(f, 'budget_bound_share')} -> {_f(b, 'budget_bound_share')}.",
            f"- **{p}: people, {100 * lo:g}% -> {100 * hi:g}%.** Minutes per session "
            f"{change(a, b, 'minutes_per_session')}; sessions {a['sessions']:,.0f} -> {b['sessions']:,.0f} "
            f"({_pct(a['sessions'], b['sessions'])}); posts scanned per session "
            f"{change(a, b, 'organic_seen_per_session')}; engagements per session "
            f"{change(a, b, 'engagements_per_session')}; engagement per impression "
            f"{change(a, b, 'engagement_rate')}; satisfaction of everything scanned "
            f"{change(a, b, 'satisfaction_all')} (of the posts alone {change(a, b, 'satisfaction')}); regret of "
            f"everything scanned {change(a, b, 'regret_all')}; regretted minutes per session "
            f"{change(a, b, 'regretted_minutes_per_session')}; divisive share of the top 10 served "
            f"{change(a, b, 'divisive_share_top10')}.",
        ]
    if len(policies) >= 2:
        p, q = policies[0], policies[1]
        for load in sorted({lo, hi}):
            a, b = by.get((p, load)), by.get((q, load))
            if a is None or b is None:
                continue
            out.append(
                f"- **At {100 * load:g}%, {p} vs {q}:** revenue per 1,000 sessions {a['revenue_per_1k_sessions']:.2f} "
                f"vs {b['revenue_per_1k_sessions']:.2f}, minutes per session {a['minutes_per_session']:.3f} vs "
                f"{b['minutes_per_session']:.3f}, satisfaction {a['satisfaction_all']:.3f} vs "
                f"{b['satisfaction_all']:.3f}, regretted minutes per session "
                f"{a['regretted_minutes_per_session']:.3f} vs {b['regretted_minutes_per_session']:.3f}, divisive "
                f"share {a['divisive_share_top10']:.3f} vs {b['divisive_share_top10']:.3f}."
            )
        a, b = by.get((p, lo)), by.get((q, hi))
        if a is not None and b is not None:
            sat, reg = "satisfaction_all", "regretted_minutes_per_session"
            per_seed = "; ".join(
                f"seed {k}: {s[(q, hi)][sat]:.3f} vs {s[(p, lo)][sat]:.3f}, "
                f"{s[(q, hi)][reg]:.3f} vs {s[(p, lo)][reg]:.3f}"
                for k, s in zip(seed_ids or range(1, len(seeds) + 1), seeds)
            )
            out.append(
                f"- **{q} at {100 * hi:g}% against {p} at {100 * lo:g}%:** satisfaction {b['satisfaction_all']:.3f} vs "
                f"{a['satisfaction_all']:.3f}, regretted minutes per session "
                f"{b['regretted_minutes_per_session']:.3f} vs {a['regretted_minutes_per_session']:.3f}, minutes per "
                f"session {b['minutes_per_session']:.3f} vs {a['minutes_per_session']:.3f}, revenue per 1,000 "
                f"sessions {b['revenue_per_1k_sessions']:.2f} vs {a['revenue_per_1k_sessions']:.2f} (each run, "
                f"satisfaction and regretted minutes: {per_seed})."
            )
    return out


def plot(mean: dict[str, dict[str, Any]], policies: Sequence[str], currency: str, path: Path) -> bool:
    """The revenue-vs-wellbeing curve (one line per policy, a point per ad load) as a PNG; False without
    matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is not a dependency of this command
        return False
    panels = (
        ("satisfaction_all", "stated satisfaction (all scanned)"),
        ("regretted_minutes_per_session", "regretted minutes / session"),
        ("minutes_per_session", "minutes / session"),
    )
    fig = Figure(figsize=(13, 4.2))
    axes = fig.subplots(1, len(panels))
    for ax, (key, label) in zip(axes, panels):
        for p in policies:
            pts = sorted((o["ad_load"], o) for o in mean.values() if o["feed_policy"] == p)
            xs = [o["revenue_per_1k_sessions"] for _, o in pts]
            ys = [o[key] for _, o in pts]
            ax.plot(xs, ys, marker="o", label=p)
            for (load, _), x, y in zip(pts, xs, ys):
                ax.annotate(f"{100 * load:g}%", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel(f"revenue per 1,000 sessions ({currency})")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("Revenue vs wellbeing over ad load (labels: max share of a page's places that are ads)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def _advertiser_row(a: dict[str, Any]) -> str:
    unit = "per click" if a["objective"] == "clicks" else "per 1,000"
    who = f"people interested in {a['topic']}" if a["targeted"] else "none"
    return f"| c{a['index']}-{a['topic']} | {a['topic']} | {unit} | {a['bid']:.2f} | {a['daily_budget']:.2f} | {who} |"


def _floats(text: str, name: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        fail(f"--{name}: not a list of numbers: {text!r}")


def write_report(out: Path, data: dict[str, Any]) -> None:
    """report.md and curve.png in ``out`` from a run's results (``results.json``'s content): the mean is computed
    again from each seed's outcomes, so a report can be rebuilt without running (``--report-from``)."""
    runs: list[dict[str, dict[str, Any]]] = data["outcomes"]
    raw: list[dict[str, Any]] = data["runs"]
    cfg0 = raw[0]["result"]["config"]
    arms = cfg0["ads"]["arms"]
    names = list(dict.fromkeys(a["feed_policy"] for a in arms.values()))
    loads = sorted({a["ad_load"] for a in arms.values()})
    seed_list = [r["seed"] for r in raw]
    min_gap = cfg0["ads"]["min_gap"]
    currency = load_ad_policy().currency
    mean = mean_over_seeds(runs)
    days = cfg0["steps"] * cfg0["step_hours"] / 24
    total = data.get("seconds")
    took = f"{total:.0f} s in all" if total is not None else f"{sum(r['seconds'] for r in raw):.0f} s for the seeds"
    png = plot(mean, names, currency, out / "curve.png")
    lines = [
        f"# Ads in the feed: revenue vs wellbeing ({cfg0['users']:,} people x {days:g} days, "
        f"seed{'s' if len(seed_list) > 1 else ''} {', '.join(map(str, seed_list))})",
        "",
        f"Command: `{data['command']}`  ",
        f"Machine: {data['machine']}; {took}.",
        "",
        "Every arm is a feed policy with an ad load (its `[ads] max_share`; first ad at the policy's "
        f"`first_position`, {'the even spacing of the load' if not min_gap else f'{min_gap} posts'} between "
        "ads), served by the real pipeline and the real `AdService` (sim/ads.py; docs/ads.md). Revenue is what "
        "the ad log billed (CPM when served, CPC when clicked). Times include the time on ads; satisfaction "
        "and regret '(all scanned)' average every item scanned, ads included. Means over the seeds; each seed "
        "below and in results.json.",
        "",
        "## The curve (mean over seeds)",
        "",
        table(mean, CURVE, currency),
        "",
        "![revenue vs wellbeing](curve.png)" if png else "(matplotlib is not installed: no plot)",
        "",
        "## What the numbers say (computed from the tables)",
        "",
        *findings(mean, runs, names, loads, currency, seed_list),
        "",
        "## More of each arm (mean over seeds)",
        "",
        table(mean, MORE, currency),
        "",
    ]
    for r, o in zip(raw, runs):
        lines += [f"## Seed {r['seed']} ({r['seconds']:.0f} s)", "", table(o, CURVE, currency), ""]
    lines += [
        "## Parameters",
        "",
        "```",
        json.dumps(
            {
                "sim": {k: cfg0[k] for k in ("users", "steps", "step_hours", "active_prob", "history_days")},
                "ad_behaviour": cfg0["ads"]["behaviour"],
                "market": cfg0["ads"]["market"],
            },
            indent=1,
        ),
        "```",
        "",
        "Advertisers of the first seed (one campaign and one creative each):",
        "",
        "| campaign | topic | bids | bid | daily budget | targeting |",
        "|---|---|---|---|---|---|",
        *[_advertiser_row(a) for a in cfg0["ads"]["advertisers"]],
    ]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    console.print(table(mean, CURVE, currency))
    console.print(f"wrote {out / 'report.md'}" + (f", {out / 'curve.png'}" if png else ""))


def register(app: typer.Typer) -> None:
    @app.command("simulate-ads")
    def simulate_ads_cmd(
        users: int = typer.Option(500, help="synthetic people"),
        days: float = typer.Option(2.0, help="simulated days"),
        seeds: str = typer.Option("1", help="comma-separated seeds; the report gives each and their mean"),
        policies: str = typer.Option("engagement,bridging", help="feed policies"),
        ad_loads: str = typer.Option("0,0.1,0.25", "--ad-loads", help="ad loads: max share of a page's places"),
        step_hours: float = typer.Option(2.0, help="hours per step (pacing spreads budgets over the day)"),
        sessions_per_day: float = typer.Option(0.8, help="expected sessions per person and day (before grudges)"),
        history_days: int = typer.Option(3, help="days of generated history the models are trained on"),
        min_gap: int = typer.Option(0, help="posts between two ads; 0: the even spacing of each load"),
        out: Path = typer.Option(Path("sim-out/ads"), help="folder for results.json, report.md and curve.png"),
        keep_stores: bool = typer.Option(False, help="keep each arm's store (OUT/stores/seed<k>/<arm>.db)"),
        report_from: Path | None = typer.Option(
            None, help="rebuild report.md, curve.png and the mean beside this results.json, without running"
        ),
    ) -> None:
        """Feed policies x ad loads with the real ad lever: revenue per 1,000 sessions beside engagement,
        satisfaction, regretted time and divisive share (docs/ads.md)."""
        if report_from is not None:
            try:
                data = json.loads(report_from.read_text())
                data["mean"] = mean_over_seeds(data["outcomes"])  # as this version computes it
                report_from.write_text(json.dumps(data, indent=1, default=str))
                write_report(report_from.parent, data)
            except (OSError, ValueError, KeyError, IndexError) as e:
                fail(f"--report-from {report_from}: not a simulate-ads results.json ({e})")
            return
        try:
            seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            fail(f"--seeds: not a list of integers: {seeds!r}")
        names = [p.strip() for p in policies.split(",") if p.strip()]
        loads = sorted(set(_floats(ad_loads, "ad-loads")))
        if users < 20 or days <= 0 or not seed_list or not names or not loads:
            fail("need --users >= 20, --days > 0, at least one seed, one policy and one ad load")
        if any(not 0 <= a <= 0.5 for a in loads):
            fail("--ad-loads: each in [0, 0.5] (the feed policy's max_share bounds)")
        steps = round(days * 24 / step_hours)
        if steps < 1 or not 0 < sessions_per_day * step_hours / 24 <= 1:
            fail("--step-hours: need at least one step, and sessions per day x step hours / 24 in (0, 1]")
        arms = arms_for(names, loads)
        behaviour, market = AdBehaviour(), MarketParams()
        runs: list[dict[str, dict[str, Any]]] = []
        raw: list[dict[str, Any]] = []
        t_all = time.perf_counter()
        for seed in seed_list:
            cfg = SimConfig(
                users=users,
                steps=steps,
                seed=seed,
                active_prob=sessions_per_day * step_hours / 24,
                step_hours=step_hours,
                history_days=history_days,
                retrain_every=max(1, round(24 / step_hours)),
            )
            folder = out / "stores" / f"seed{seed}"
            t = time.perf_counter()
            with console.status(f"seed {seed}: {len(arms)} arms") as status:

                def say(stage: str, done: int, total: int, seed: int = seed) -> None:
                    status.update(f"seed {seed}: {stage} {done}/{total}")

                try:
                    res = run_ad_simulation(cfg, arms, folder, say, behaviour=behaviour, market=market, min_gap=min_gap)
                except ValueError as e:
                    fail(str(e))
            secs = time.perf_counter() - t
            console.print(f"seed {seed}: {len(arms)} arms, {secs:.0f} s")
            runs.append({arm: outcome(f) for arm, f in res.final.items()})
            kept = {k: v for k, v in res.to_dict().items() if k not in PER_STEP}  # finals, config, timings
            raw.append({"seed": seed, "seconds": secs, "result": kept})
            if not keep_stores:
                shutil.rmtree(folder, ignore_errors=True)
        if not keep_stores:
            shutil.rmtree(out / "stores", ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        machine = f"{platform.platform()} | Python {platform.python_version()} | {platform.machine()}"
        command = (
            f"glassfeed simulate-ads --users {users} --days {days:g} --seeds {seeds} --policies {','.join(names)} "
            f"--ad-loads {','.join(f'{a:g}' for a in loads)} --step-hours {step_hours:g} "
            f"--sessions-per-day {sessions_per_day:g} --history-days {history_days} --min-gap {min_gap} --out {out}"
        )
        data = {
            "command": command,
            "machine": machine,
            "seconds": time.perf_counter() - t_all,
            "mean": mean_over_seeds(runs),
            "outcomes": runs,
            "runs": raw,
        }
        (out / "results.json").write_text(json.dumps(data, indent=1, default=str))
        write_report(out, data)
