"""The transparency report (DSA Art. 15 and 24): counts over a period, read from the moderation log alone.

Notices by category (and how many came from trusted flaggers), reports by category, actions by type and ground,
the share of actions taken by automated means, the median time from a notice or report to the decision that
resolved it, appeals received, decided and reversed, and the median time to decide an appeal.
"""

from __future__ import annotations

import html
import statistics
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from glassfeed.store import ModerationRecord


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _median_h(values: list[float]) -> float | None:
    return round(statistics.median(values) / 3600.0, 3) if values else None


def transparency_report(records: Sequence[ModerationRecord], t_from: float, t_to: float) -> dict[str, Any]:
    """The counts for records made in ``[t_from, t_to)`` (``records``: the whole log, oldest first; earlier
    records are read to time the decisions and appeals of the period)."""
    by_seq = {r.seq: r for r in records}
    inside = [r for r in records if t_from <= r.ts < t_to]
    notices = [r for r in inside if r.kind == "notice"]
    reports = [r for r in inside if r.kind == "report"]
    decisions = [r for r in inside if r.kind == "decision"]
    first_firing: dict[
        tuple[int | None, str], int
    ] = {}  # (post, rule) -> its first record: two workers starting at once may both log one firing
    for r in records:
        if r.kind == "automated":
            first_firing.setdefault((r.post, r.body["rule"]), r.seq)
    automated = [
        r
        for r in inside
        if r.kind == "automated" and r.body["action"] != "review" and first_firing[(r.post, r.body["rule"])] == r.seq
    ]
    appeals = [r for r in inside if r.kind == "appeal"]
    outcomes = [r for r in inside if r.kind == "appeal_decision"]
    actions = Counter(r.body["action"] for r in decisions) + Counter(r.body["action"] for r in automated)
    grounds = Counter(r.body["ground"] for r in decisions) + Counter({"incompatible": len(automated)})
    to_action = [
        r.ts - by_seq[c].ts
        for r in decisions
        for c in r.body.get("cases", [])
        if c in by_seq and by_seq[c].kind in ("notice", "report")
    ]
    to_appeal = [r.ts - by_seq[r.ref].ts for r in outcomes if r.ref in by_seq]
    n_actions = len(decisions) + len(automated)
    return {
        "period": {"from": _iso(t_from), "to": _iso(t_to)},
        "notices": {
            "total": len(notices),
            "by_category": dict(Counter(r.body["category"] for r in notices)),
            "from_trusted_flaggers": sum(1 for r in notices if r.body.get("trusted")),
        },
        "reports": {"total": len(reports), "by_category": dict(Counter(r.body["category"] for r in reports))},
        "actions": {
            "total": n_actions,
            "by_type": dict(actions),
            "by_ground": {k: v for k, v in grounds.items() if v},
            "by_moderators": len(decisions),
            "automated": len(automated),
            "automated_share": round(len(automated) / n_actions, 4) if n_actions else None,
            "median_hours_notice_to_action": _median_h(to_action),
        },
        "appeals": {
            "received": len(appeals),
            "decided": len(outcomes),
            "reversed": sum(1 for r in outcomes if r.body["outcome"] == "reversed"),
            "upheld": sum(1 for r in outcomes if r.body["outcome"] == "upheld"),
            "median_hours_to_decide": _median_h(to_appeal),
        },
    }


def report_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (no script, no external resource)."""

    def table(title: str, rows: dict[str, Any]) -> str:
        body = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows.items()
        )
        return f"<h2>{html.escape(title)}</h2><table>{body or '<tr><td>none</td></tr>'}</table>"

    p = report["period"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Transparency report</title>",
        "<style>body{font:15px system-ui;margin:2em;max-width:50em}th{text-align:left;padding-right:2em}</style>",
        f"</head><body><h1>Transparency report</h1><p>{html.escape(p['from'])} to {html.escape(p['to'])}",
        " (EU Digital Services Act, Articles 15 and 24)</p>",
        table("Notices of illegal content (Art. 16), by category", report["notices"]["by_category"]),
        f"<p>From trusted flaggers: {report['notices']['from_trusted_flaggers']}</p>",
        table("Reports against the terms, by category", report["reports"]["by_category"]),
        table("Actions by type", report["actions"]["by_type"]),
        table("Actions by ground", report["actions"]["by_ground"]),
        table(
            "Automation and speed",
            {
                "actions by moderators": report["actions"]["by_moderators"],
                "actions by automated rules": report["actions"]["automated"],
                "automated share": report["actions"]["automated_share"],
                "median hours from notice or report to action": report["actions"]["median_hours_notice_to_action"],
            },
        ),
        table("Appeals (Art. 20)", report["appeals"]),
        "</body></html>",
    ]
    return "".join(parts)
