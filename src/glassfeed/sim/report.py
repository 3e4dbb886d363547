"""Turn a :class:`SimResult` into ``results.json`` and a self-contained ``report.html``.

Plots are matplotlib PNGs embedded as base64 (no external files, scripts or CDNs): one metric-over-time plot
per metric with one line per policy, then a final comparison table and the amplification tables.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from glassfeed.sim.loop import SimResult

#: per-step metric -> (plot title, what it means)
METRICS: dict[str, tuple[str, str]] = {
    "engagement_rate": ("Engagement per impression", "share of scanned items liked, reposted or replied to"),
    "click_rate": ("Clicks per impression", "share of scanned items opened"),
    "time_spent_s": ("Time spent per session (s)", "seconds per feed session (scan + dwell)"),
    "satisfaction": ("Stated satisfaction", 'mean P("worth my time") over scanned items'),
    "regret": ("Regret", 'mean P("I regret seeing this") over scanned items'),
    "regretted_time_s": ("Regretted time per session (s)", "session time x mean regret"),
    "divisive_share_top10": (
        "Divisive share, top 10 served",
        "share of the top 10 served with divisiveness >= 0.5 (Milli et al. 2025)",
    ),
    "divisive_share_consumed": ("Divisive share, scanned", "share of scanned items with divisiveness >= 0.5"),
    "topic_entropy": ("Topic entropy of pages", "normalised Shannon entropy of each served page's topics"),
    "creator_gini": ("Creator Gini (per step)", "Gini of impressions across all users as creators"),
    "polarisation": ("Polarisation", "variance of users' leanings (DiMaggio et al. 1996)"),
    "mean_abs_leaning": ("Mean |leaning|", "mean distance of users' leanings from the centre"),
    "posts_created": ("Posts created", "original posts + replies made in the step"),
    # moderation arms only (sim/moderation.py): ground-truth toxicity of what was scanned
    "toxic_share_consumed": ("Toxic share, scanned", "share of scanned items toxic in ground truth (moderation arms)"),
    # notification arms only (sim/notify_world.py)
    "pushes": ("Pushes per step", "pushes delivered in the step, all people (notification arms)"),
    "push_sessions": ("Sessions started by a push", "feed sessions a push started in the step (notification arms)"),
}
FINAL_ROWS: list[tuple[str, str]] = [
    ("engagement_rate", "engagement / impression"),
    ("click_rate", "clicks / impression"),
    ("time_spent_s", "time per session (s)"),
    ("satisfaction", "stated satisfaction"),
    ("regret", "regret"),
    ("regretted_time_s", "regretted time per session (s)"),
    ("divisive_share_top10", "divisive share, top 10 served"),
    ("divisive_share_consumed", "divisive share, scanned"),
    ("topic_entropy", "topic entropy of pages"),
    ("topic_entropy_cumulative", "topic entropy, all scanned (per user)"),
    ("homogenisation_end", "homogenisation (Chaney), end"),
    ("polarisation_start", "polarisation, start"),
    ("polarisation_end", "polarisation, end"),
    ("bimodality_end", "bimodality coefficient, end"),
    ("creator_gini", "creator Gini, per step"),
    ("creator_gini_cumulative", "creator Gini, whole run"),
    ("posts_created", "posts created"),
    ("feed_requests", "feed requests"),
]
#: final rows shown only when a run has moderation arms (``sim/moderation.py``; docs/sim_moderation.md)
MODERATION_ROWS: list[tuple[str, str]] = [
    ("toxic_share_consumed", "toxic share, scanned"),
    ("toxic_share_top10", "toxic share, top 10 served"),
    ("nontoxic_divisive_share_consumed", "divisive share of non-toxic scanned"),
    ("toxic_prevalence", "toxic share of all posts (ground truth)"),
    ("actioned_share", "posts actioned (home)"),
    ("false_discovery", "actioned but not toxic (of actioned)"),
    ("false_positive_rate", "non-toxic posts actioned (FPR)"),
    ("recall", "toxic posts actioned (recall)"),
]
#: final rows shown only when a run has notification arms (``sim/notify_world.py``; the response model of
#: ``sim/notify.py``; per person and simulated day)
NOTIFICATION_ROWS: list[tuple[str, str]] = [
    ("sessions_per_day", "sessions / person-day"),
    ("notification_sessions_per_day", "sessions from a push / person-day"),
    ("minutes_per_day", "minutes / person-day"),
    ("worth_minutes_per_day", "worth-it minutes / person-day"),
    ("regretted_minutes_per_day", "regretted minutes / person-day"),
    ("regret_share", "regretted share of time"),
    ("satisfaction_per_day", "stated satisfaction / person-day"),
    ("pushes_per_day", "pushes / person-day"),
    ("pushes_in_quiet_per_day", "pushes in quiet hours (22-08) / person-day"),
    ("pushes_in_sleep_per_day", "pushes in sleep hours / person-day"),
    ("sleep_disruptions_per_day", "woken by a push / person-day"),
    ("opted_out_share", "opted out of pushes (share)"),
    ("median_hours_to_see_reply", "median hours to see a reply"),
]
COLOURS = {
    "engagement": "#d62728",
    "chronological": "#7f7f7f",
    "stated_preference": "#2ca02c",
    "bridging": "#1f77b4",
    "breadth": "#9467bd",
}


def write_json(result: SimResult, path: Path) -> None:
    path.write_text(json.dumps(_clean(result.to_dict()), indent=1, default=_json_default, allow_nan=False))


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(type(o).__name__)


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _plot(
    title: str, lines: Mapping[str, Sequence[tuple[float, float | None]]], ylabel: str = "", hline: float | None = None
) -> str:
    fig = Figure(figsize=(5.2, 2.9))  # no pyplot: no global figure registry, no backend to choose
    ax = fig.subplots()
    for name, pts in lines.items():
        pts = [(x, y) for x, y in pts if y is not None and math.isfinite(y)]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, label=name, color=COLOURS.get(name), lw=1.6)
    if hline is not None:
        ax.axhline(hline, color="black", lw=0.7, ls=":")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    return _png(fig)


def band_plot(title: str, bands: Mapping[str, Sequence[tuple[float, float, float]]], ylabel: str = "") -> str:
    """A large plot of a metric over steps: per policy a line (the mean across seeds) in a band (the lowest to the
    highest seed); ``bands``: policy -> [(mean, low, high)] per step, NaN where undefined."""
    fig = Figure(figsize=(9.0, 3.6))
    ax = fig.subplots()
    for name, pts in bands.items():
        rows = [(i, m, lo, hi) for i, (m, lo, hi) in enumerate(pts) if math.isfinite(m)]
        if rows:
            xs, ms, los, his = zip(*rows)
            colour = COLOURS.get(name)
            ax.fill_between(xs, los, his, color=colour, alpha=0.18, lw=0)
            ax.plot(xs, ms, label=name, color=colour, lw=1.8)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("step", fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return _png(fig)


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3f}"
    return html.escape(str(v))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(c) if i else html.escape(str(c))}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def final_table_rows(result: SimResult) -> tuple[list[str], list[list[Any]]]:
    """(header, rows) of the final comparison: one row per metric, one column per policy."""
    pols = list(result.final)
    moderated = any("toxic_prevalence" in f for f in result.final.values())
    notified = any("notification_policy" in f for f in result.final.values())
    keys = FINAL_ROWS + (MODERATION_ROWS if moderated else []) + (NOTIFICATION_ROWS if notified else [])
    rows = [[label, *[result.final[p].get(key) for p in pols]] for key, label in keys]
    return ["metric", *pols], rows


def markdown_table(result: SimResult) -> str:
    """The final comparison as a Markdown table (for docs)."""
    header, rows = final_table_rows(result)
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join([r[0], *[_fmt(c) for c in r[1:]]]) + " |" for r in rows]
    return "\n".join(out)


def write_html(result: SimResult, path: Path, headline: str = "") -> None:
    """The self-contained HTML report; ``headline`` (HTML, ``sim/headline.py``) goes first, under the title."""
    cfg = result.config
    pols = list(result.series)
    figs: list[str] = []
    for key, (title, desc) in METRICS.items():
        lines = {p: list(enumerate(result.series[p].get(key, []))) for p in pols}
        if any(lines.values()):
            figs.append(
                f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{_plot(title, lines)}">'
                f"<figcaption>{html.escape(desc)}</figcaption></figure>"
            )
    for g in ("left", "right", "centre"):
        amp = {p: list(enumerate(s.get(g, []))) for p, s in result.amplification_series.items()}
        if any(amp.values()):
            t = f"Amplification of {g}-leaning authors vs chronological"
            figs.append(
                f'<figure><img alt="{t}" src="data:image/png;base64,{_plot(t, amp, hline=0.0)}">'
                "<figcaption>Huszar et al. 2022: reach among the step's active users under the policy / "
                "under the chronological feed - 1</figcaption></figure>"
            )
    hl = {p: [(k, v) for k, v in pts] for p, pts in result.homogenisation.items()}
    if any(hl.values()):
        t = "Homogenisation (Chaney et al. 2018)"
        figs.append(
            f'<figure><img alt="{t}" src="data:image/png;base64,{_plot(t, hl, hline=0.0)}">'
            "<figcaption>Jaccard of nearest-neighbour users' cumulative consumption minus the same under an "
            "ideal recommender (panel of users)</figcaption></figure>"
        )
    header, rows = final_table_rows(result)
    amp_html = []
    for grouping in ("leaning", "community"):
        groups = sorted(
            {g for a in result.amplification.values() for g in a.get(grouping, {})}, key=lambda s: (len(s), s)
        )
        if groups:
            amp_rows = [[p, *[result.amplification[p][grouping].get(g) for g in groups]] for p in result.amplification]
            amp_html.append(f"<h3>By author {grouping}</h3>" + _table(["policy", *groups], amp_rows))
    secs = result.seconds.get("worlds", {})
    time_rows = [
        [p, s.get("requests"), s.get("loop"), s.get("rank"), s.get("respond"), s.get("ingest"), s.get("retrain")]
        for p, s in secs.items()
    ]
    cfg_rows = [[k, json.dumps(v) if isinstance(v, (dict, list)) else v] for k, v in cfg.items()]
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>glassfeed simulation report</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:0.5em 0 1.5em}} td,th{{border:1px solid #ccc;padding:3px 8px;
text-align:right;font-size:13px}} td:first-child,th:first-child{{text-align:left}}
figure{{display:inline-block;margin:6px;vertical-align:top;width:530px}} figcaption{{font-size:12px;color:#555}}
figure.wide{{width:100%}} .warn{{background:#fff4d6;border-left:4px solid #e0a800;padding:6px 10px}}
img{{max-width:100%}} code{{background:#f4f4f4;padding:1px 3px}}
</style></head><body>
<h1>glassfeed simulation</h1>
<p>{cfg["users"]:,} users, {cfg["steps"]} steps of {cfg["step_hours"]:g} h, each user active with probability
{cfg["active_prob"]:g} per step, seed {cfg["seed"]}, policies {", ".join(html.escape(p) for p in pols)}.
Every feed was ranked by <code>glassfeed.feed.pipeline.rank</code> on the policy's own store; every reaction
went back through the Ingestor. Models: {html.escape(str(cfg["retrain"]))} retrain every {cfg["retrain_every"]}
steps. See <code>docs/simulation.md</code> for the model and each metric's definition.</p>
{headline}
<h2>Final comparison</h2>
<p>Per-step metrics are averaged over all steps; "end" values are measured after the last step.</p>
{_table(header, rows)}
<h2>Amplification vs the chronological control (whole run)</h2>
<p>Huszar et al. 2022: (share of users who saw any post of the group under the policy) / (same share under
the chronological feed) - 1. 0 = no amplification, 1 = twice the reach.</p>
{"".join(amp_html) or "<p>(no chronological run, so no control)</p>"}
<h2>Over time</h2>
{"".join(figs)}
<h2>Run time (s)</h2>
{_table(["policy", "feed requests", "loop", "rank", "respond", "ingest", "retrain"], time_rows)}
<h2>Configuration</h2>
{_table(["parameter", "value"], cfg_rows)}
</body></html>
"""
    path.write_text(doc)


def write_report(result: SimResult, folder: Path, headline: str = "") -> tuple[Path, Path]:
    """Write ``results.json`` and ``report.html`` (``headline`` HTML first in it) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    j, h = folder / "results.json", folder / "report.html"
    write_json(result, j)
    write_html(result, h, headline)
    return h, j
