"""Same-run comparison of two source trees: feed latency, simulator speed and offline evaluation, old vs new.

Each tree runs ITS OWN ``benchmarks/`` scripts on ITS OWN ``src/`` (a fresh subprocess per measurement, started
in the tree with ``PYTHONPATH=<tree>/src`` and checked to import ``glassfeed`` and ``benchmarks`` from there),
alternately for ``--rounds`` rounds (``old new, new old, ...``; ``--order abab`` puts old first every round), so
both see the same machine load. The harness imports no ``glassfeed`` code itself, so it runs while either tree
is broken and reports which run failed.

Measurements (``--only feed,sim,eval``; all three by default):

- ``feed``: ``bench_feed.in_process`` (the in-process part only: p50/p99 of a 50-item page for random users).
  One store is generated once with the OLD tree's ``glassfeed generate``; each tree trains its own models
  (``glassfeed train --max-rows 200000``, as ``bench_feed.build_store`` does) on its own copy, and every round
  runs on a fresh copy of that trained store (the benchmark writes impressions). Trained stores are cached in
  ``--work`` and reused while the tree's ``src/`` is unchanged (content hash); ``--fresh`` rebuilds them.
- ``sim``: ``bench_simulate.main`` at a reduced size (default 5,000 users x 30 steps, one retrain in the loop;
  ``OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=1`` as docs/benchmarks.md ran it): loop seconds and feed requests/s.
- ``eval``: ``bench_pipeline_eval.main --protocols <protocol>``: the pipeline's metrics (must be equal or
  better), the baselines', and the whole run's wall time.

Prints, and writes to ``bench-results/compare-<name>.json`` and ``.md``, a table: metric, old median, new median,
ratio new/old and a verdict (time: ratio <= tolerance; rate: ratio >= 1/tolerance; quality: new >= old), with
the machine and the load average before/after every run. Beside the benchmarks' own figures every measurement
reports its processes' CPU seconds (user + sys, children included), which a busy machine disturbs less than wall
time. Exit status: 0 every gate metric ok, 1 some gate metric worse, 2 a measurement failed.

Usage: python -m benchmarks.compare_commits --old ../gf-base --new . [--only feed,sim,eval] [--rounds 3]
[--name NAME] [--work /tmp/gf-compare] [--fresh] (sizes: --feed-users/--feed-days/--feed-requests/--feed-repeats,
--sim-users/--sim-steps/--sim-args, --eval-protocol/--eval-max-users)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import machine

MEASUREMENTS = ("feed", "sim", "eval")

#: Runs inside a tree (cwd = tree, PYTHONPATH = tree/src): one measurement, its result dict to spec["result"].
_DRIVER = r"""
import json, os, sys, time
from pathlib import Path
spec = json.loads(sys.argv[1])
import glassfeed
tree = Path(spec["tree"]).resolve()
src = Path(glassfeed.__file__).resolve()
import benchmarks
if tree / "src" not in src.parents or tree not in Path(benchmarks.__file__).resolve().parents:
    raise SystemExit(f"glassfeed from {src}, benchmarks from {benchmarks.__file__}: not both from {tree}")
load_before = os.getloadavg()
t0 = time.perf_counter()
if spec["kind"] == "feed":
    from benchmarks.bench_feed import in_process
    res = in_process(Path(spec["db"]), spec["requests"], spec["repeats"])
elif spec["kind"] == "sim":
    from benchmarks.bench_simulate import main
    res = main(spec["argv"])
elif spec["kind"] == "eval":
    from benchmarks.bench_pipeline_eval import main
    main(spec["argv"])
    res = json.loads((Path(spec["out"]) / f"pipeline-{spec['protocol']}.json").read_text())
else:
    raise SystemExit(f"unknown measurement {spec['kind']!r}")
wall = time.perf_counter() - t0
Path(spec["result"]).write_text(json.dumps({"result": res, "wall_s": wall, "glassfeed": str(src),
                                            "load_before": load_before, "load_after": os.getloadavg()},
                                           default=str))
"""

#: A metric: name, direction, gate (one of the issue's must-show figures) and its path in the result dict.
#: Directions: "time" (lower is better), "rate" (higher is better), "quality" (higher is better and must not fall
#: at all), "info" (reported, not judged).
Metric = tuple[str, str, bool, tuple[str | int, ...]]


def _feed_metrics() -> list[Metric]:
    return [
        ("feed p50 ms (50-item page)", "time", True, ("p50_ms",)),
        ("feed p99 ms (50-item page)", "time", True, ("p99_ms",)),
        ("feed state load s", "time", False, ("state_load_s",)),
        ("feed candidates/request (median)", "info", False, ("candidates_median",)),
        ("feed impression log p50 ms", "time", False, ("impression_log_p50_ms",)),
    ]


def _sim_metrics() -> list[Metric]:
    return [
        ("sim loop s", "time", True, ("loop_s",)),
        ("sim feed requests/s", "rate", True, ("feed_requests_per_s",)),
        ("sim loop rank s", "time", False, ("loop_split_s", "rank")),
        ("sim loop ingest s", "time", False, ("loop_split_s", "ingest")),
        ("sim loop retrain s", "time", False, ("loop_split_s", "retrain")),
        ("sim history setup s", "time", False, ("history_setup_s",)),
        ("sim feed requests", "info", False, ("feed_requests",)),
    ]


def _eval_metrics(sample: dict) -> list[Metric]:
    """Every metric of every result row (pipeline variants and baselines), found in the first run's JSON."""
    out: list[Metric] = []
    for vname, var in sample["variants"].items():
        for i, row in enumerate(var["results"]):
            label = row["model"] if i else f"pipeline {vname}"
            for key in row["metrics"]:
                if key != "users":
                    out.append(
                        (
                            f"eval {label} {key}",
                            "quality",
                            i == 0 and key.startswith("ndcg@"),
                            ("variants", vname, "results", i, "metrics", key),
                        )
                    )
        out.append((f"eval {vname} train s", "time", False, ("variants", vname, "seconds", "train")))
        out.append((f"eval {vname} rank s", "time", False, ("variants", vname, "results", 0, "rank_seconds")))
    out.append(("eval wall s (whole benchmark)", "time", True, ("_wall_s",)))
    return out


def _dig(d: Any, path: tuple[str | int, ...]) -> float:
    for k in path:
        d = d[k]
    return float(d)


def _git(tree: Path, *args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""


def tree_info(tree: Path) -> dict[str, Any]:
    """Commit, number of uncommitted changes and a content hash of ``src/`` (read-only git queries)."""
    dirty = [ln for ln in _git(tree, "status", "--porcelain").splitlines() if ln.strip()]
    return {
        "path": str(tree),
        "commit": _git(tree, "rev-parse", "--short", "HEAD").strip() or "unknown",
        "uncommitted_files": len(dirty),
        "src_hash": src_hash(tree),
    }


def src_hash(tree: Path) -> str:
    """SHA-1 over every file in ``<tree>/src`` except caches: the key for reusing a tree's trained store."""
    h = hashlib.sha1()
    for p in sorted((tree / "src").rglob("*")):
        skip = any(part == "__pycache__" or part.endswith(".egg-info") for part in p.parts)
        if p.is_file() and not skip:
            h.update(str(p.relative_to(tree)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


class Runner:
    """Starts subprocesses in one tree with that tree's ``src`` first on the path; one log per run in ``logs``."""

    def __init__(self, side: str, tree: Path, python: str, logs: Path, timeout: float) -> None:
        self.side, self.tree, self.python, self.logs, self.timeout = side, tree, python, logs, timeout
        logs.mkdir(parents=True, exist_ok=True)
        self.n = 0
        self.cpu_s = 0.0

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = str(self.tree / "src")
        env.update(extra or {})
        return env

    def run(self, args: list[str], label: str, extra_env: dict[str, str] | None = None) -> float:
        """Run ``python <args>`` in the tree; returns wall seconds (CPU seconds of it and its children in
        ``self.cpu_s``); raises with the log's tail on failure."""
        self.n += 1
        log = self.logs / f"{self.side}-{self.n:02d}-{label}.log"
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        with log.open("w") as fh:
            proc = subprocess.run(
                [self.python, *args],
                cwd=self.tree,
                env=self.env(extra_env),
                stdout=fh,
                stderr=subprocess.STDOUT,
                timeout=self.timeout,
            )
        wall = time.perf_counter() - t
        ru2 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu_s = ru2.ru_utime + ru2.ru_stime - ru.ru_utime - ru.ru_stime
        if proc.returncode:
            tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-25:])
            raise RuntimeError(f"{self.side} ({self.tree}) {label} exited {proc.returncode}; log {log}:\n{tail}")
        return wall

    def measure(self, spec: dict[str, Any], extra_env: dict[str, str] | None = None) -> dict[str, Any]:
        """One measurement through the driver; returns the benchmark's result plus wall time and loads."""
        res_path = self.logs / f"{self.side}-{self.n + 1:02d}-{spec['kind']}.json"
        spec = {**spec, "tree": str(self.tree), "result": str(res_path)}
        wall = self.run(["-c", _DRIVER, json.dumps(spec)], spec["kind"], extra_env)
        out = json.loads(res_path.read_text())
        out["process_wall_s"], out["process_cpu_s"] = wall, self.cpu_s
        return out


def _copy_store(src: Path, dst: Path) -> None:
    """Copy a SQLite store (with any -wal/-shm files) and its ``<db>.models`` folder."""
    for suffix in ("", "-wal", "-shm"):
        s = src.with_name(src.name + suffix)
        d = dst.with_name(dst.name + suffix)
        if d.exists():
            d.unlink()
        if s.exists():
            shutil.copy2(s, d)
    models, dmodels = src.with_name(src.name + ".models"), dst.with_name(dst.name + ".models")
    if dmodels.exists():
        shutil.rmtree(dmodels)
    if models.exists():
        shutil.copytree(models, dmodels)


def _remove_store(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    shutil.rmtree(db.with_name(db.name + ".models"), ignore_errors=True)


def prepare_feed(
    runners: dict[str, Runner], infos: dict[str, dict], a: argparse.Namespace, say: Callable[[str], None]
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Generate one store with the old tree, then let each tree train its own copy (cached by src hash)."""
    setup: dict[str, Any] = {}
    key = f"{a.feed_users}x{a.feed_days}-s{a.seed}-{infos['old']['src_hash']}"
    gen_dir = a.work / "feed-generated"
    gen = gen_dir / f"gen-{key}.db"
    if a.fresh or not (gen_dir / f"gen-{key}.done").exists():
        gen_dir.mkdir(parents=True, exist_ok=True)
        _remove_store(gen)
        say(f"feed: generating {a.feed_users} users x {a.feed_days} days with the old tree")
        setup["generate_s"] = runners["old"].run(
            [
                "-m",
                "glassfeed.cli",
                "generate",
                "--users",
                str(a.feed_users),
                "--days",
                str(a.feed_days),
                "--seed",
                str(a.seed),
                "--db",
                str(gen),
            ],
            "generate",
            {"OPENBLAS_NUM_THREADS": "1"},
        )
        (gen_dir / f"gen-{key}.done").write_text(json.dumps(setup))
        say(f"feed: generated in {setup['generate_s']:.1f} s")
    else:
        setup["generate_s"] = "cached"
    trained: dict[str, Path] = {}
    for side, r in runners.items():
        folder = a.work / f"feed-{side}"
        folder.mkdir(parents=True, exist_ok=True)
        db = folder / "trained.db"
        stamp = folder / "trained.done"
        want = {"generated": key, "tree": str(r.tree), "src_hash": infos[side]["src_hash"], "max_rows": a.feed_max_rows}
        have = json.loads(stamp.read_text()) if stamp.exists() else {}
        if a.fresh or {k: have.get(k) for k in want} != want:
            stamp.unlink(missing_ok=True)
            _remove_store(db)
            _copy_store(gen, db)
            say(f"feed: training the {side} tree's models on its copy")
            want["train_s"] = r.run(
                ["-m", "glassfeed.cli", "train", "--db", str(db), "--max-rows", str(a.feed_max_rows)],
                "train",
                {"OPENBLAS_NUM_THREADS": "1"},
            )
            stamp.write_text(json.dumps(want))
            say(f"feed: {side} trained in {want['train_s']:.1f} s")
            setup[f"train_{side}_s"] = want["train_s"]
        else:
            setup[f"train_{side}_s"] = f"cached ({have.get('train_s', 0):.1f} s when built)"
        trained[side] = db
    return trained, setup


def _median(xs: list[float | None]) -> float | None:
    known = [x for x in xs if x is not None]
    return statistics.median(known) if known else None


def verdict(direction: str, gate: bool, old: float | None, new: float | None, tol: float) -> str:
    """ "ok", or what is wrong: upper case for a gate metric (fails the comparison), lower case for the others."""
    if old is None or new is None:
        return "MISSING" if gate else "missing"
    if direction == "info":
        return "same" if old == new else "differs"
    if direction == "quality":
        good = new >= old - 1e-12
    elif old == 0:
        good = new == 0
    elif direction == "time":
        good = new / old <= tol
    else:
        good = new / old >= 1 / tol
    return "ok" if good else ("WORSE" if gate else "worse")


def summarise(kind: str, runs: dict[str, list[dict]], metrics: list[Metric], tol: float) -> list[dict]:
    rows = []
    for name, direction, gate, path in metrics:
        vals: dict[str, list[float | None]] = {}
        for side in ("old", "new"):
            vals[side] = []
            for run in runs[side]:
                try:
                    vals[side].append(
                        _dig({**run["result"], "_wall_s": run["wall_s"], "_cpu_s": run["process_cpu_s"]}, path)
                    )
                except (KeyError, IndexError, TypeError, ValueError):
                    vals[side].append(None)
        old, new = _median(vals["old"]), _median(vals["new"])
        ratio = new / old if old not in (None, 0) and new is not None else None
        rows.append(
            {
                "measurement": kind,
                "metric": name,
                "direction": direction,
                "gate": gate,
                "old": vals["old"],
                "new": vals["new"],
                "old_median": old,
                "new_median": new,
                "ratio": ratio,
                "verdict": verdict(direction, gate, old, new, tol),
            }
        )
    return rows


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if float(x).is_integer() and abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.4f}" if abs(x) < 1 else f"{x:.2f}"


def to_markdown(report: dict) -> str:
    old, new = report["trees"]["old"], report["trees"]["new"]
    lines = [
        f"# Commit comparison `{report['name']}`",
        "",
        f"- when: {report['started']} (UTC), {report['elapsed_s']:.0f} s in all",
        f"- machine: {report['machine']}",
        f"- old: `{old['path']}` at {old['commit']} ({old['uncommitted_files']} uncommitted files, "
        f"src {old['src_hash']})",
        f"- new: `{new['path']}` at {new['commit']} ({new['uncommitted_files']} uncommitted files, "
        f"src {new['src_hash']})",
        f"- command: `{report['command']}`",
        f"- rounds: {report['rounds']} (order {report['order']}); medians over rounds; tolerance "
        f"{report['tolerance']} (time ratio <= tol, rate ratio >= 1/tol, quality new >= old)",
        f"- sizes: {json.dumps(report['sizes'])}",
        "",
    ]
    for kind, m in report["measurements"].items():
        lines.append(f"## {kind}")
        lines.append("")
        if m.get("error"):
            lines += [f"**failed**: {m['error'].splitlines()[0]}", "", "```", m["error"], "```", ""]
        if m.get("setup"):
            lines.append(f"setup: {json.dumps(m['setup'])}")
            lines.append("")
        loads = [f"{r['side']} {r['load_before'][0]:.2f}->{r['load_after'][0]:.2f}" for r in m.get("order", [])]
        if loads:
            lines.append(f"load average (1 min) before->after each run, in order: {', '.join(loads)}")
            lines.append("")
        if m.get("rows"):
            lines += [
                "| metric | gate | old median | new median | new/old | verdict | old runs | new runs |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for r in m["rows"]:
                ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3f}"
                lines.append(
                    f"| {r['metric']} | {'yes' if r['gate'] else ''} | {_fmt(r['old_median'])} | "
                    f"{_fmt(r['new_median'])} | {ratio} | {r['verdict']} | "
                    f"{', '.join(_fmt(v) for v in r['old'])} | {', '.join(_fmt(v) for v in r['new'])} |"
                )
            lines.append("")
    gates = [r for m in report["measurements"].values() for r in m.get("rows", []) if r["gate"]]
    bad = [r["metric"] for r in gates if r["verdict"] != "ok"]
    failed = [k for k, m in report["measurements"].items() if m.get("error")]
    lines.append(
        f"**Gate ({len(gates)} metrics): "
        + ("all ok" if not bad and not failed else f"not met: {', '.join(bad + [f'{k} failed' for k in failed])}")
        + "**"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", type=Path, required=True, help="the previous commit's tree (a worktree)")
    ap.add_argument("--new", type=Path, default=Path("."), help="the tree under test (default: this one)")
    ap.add_argument("--only", default=",".join(MEASUREMENTS), help="comma-separated subset of feed,sim,eval")
    ap.add_argument("--rounds", type=int, default=3, help="alternating old/new rounds per measurement")
    ap.add_argument(
        "--order",
        choices=("abba", "abab"),
        default="abba",
        help="abba (default): the side that goes first alternates (old new, new old, ...), which cancels"
        " a load that drifts during the run; abab: old first in every round",
    )
    ap.add_argument("--name", default=None, help="result name (default <old commit>-vs-<new commit>)")
    ap.add_argument("--python", default=sys.executable, help="interpreter for both trees (same venv)")
    ap.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/gf-compare"),
        help="scratch folder: generated/trained feed stores (reused while src is unchanged), logs",
    )
    ap.add_argument("--fresh", action="store_true", help="regenerate and retrain the feed stores")
    ap.add_argument("--tolerance", type=float, default=1.05)
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed for one subprocess")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--feed-users", type=int, default=10_000)
    ap.add_argument("--feed-days", type=int, default=30)
    ap.add_argument("--feed-max-rows", type=int, default=200_000, help="glassfeed train --max-rows")
    ap.add_argument("--feed-requests", type=int, default=300, help="requests per in-process run")
    ap.add_argument("--feed-repeats", type=int, default=3, help="in-process runs per round (after a warm-up)")
    ap.add_argument("--sim-users", type=int, default=5000)
    ap.add_argument("--sim-steps", type=int, default=30, help="30 > retrain-every 25: the loop retrains once")
    ap.add_argument("--sim-args", default="", help="extra bench_simulate arguments, space-separated")
    ap.add_argument("--eval-protocol", default="ms-ml100k")
    ap.add_argument("--eval-max-users", type=int, default=None)
    a = ap.parse_args(argv)
    only = [m.strip() for m in a.only.split(",") if m.strip()]
    if unknown := set(only) - set(MEASUREMENTS):
        ap.error(f"--only: unknown {', '.join(sorted(unknown))}; expected feed, sim, eval")
    trees = {"old": a.old.resolve(), "new": a.new.resolve()}
    for side, tree in trees.items():
        if not (tree / "src" / "glassfeed").is_dir() or not (tree / "benchmarks").is_dir():
            ap.error(f"--{side} {tree}: no src/glassfeed or benchmarks/ there")
    infos = {side: tree_info(tree) for side, tree in trees.items()}
    name = a.name or f"{infos['old']['commit']}-vs-{infos['new']['commit']}"
    a.work = a.work.resolve()
    started, t_all = datetime.now(UTC).strftime("%Y-%m-%d %H:%M"), time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t_all:7.1f} s | load {os.getloadavg()[0]:.2f}] {msg}", flush=True)

    say(f"machine: {machine()}")
    for side in trees:
        say(f"{side}: {infos[side]}")
    logs = a.work / "logs" / f"{name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
    runners = {side: Runner(side, tree, a.python, logs, a.timeout) for side, tree in trees.items()}
    say(f"logs: {logs}")
    sizes: dict[str, Any] = {}
    report: dict[str, Any] = {
        "name": name,
        "started": started,
        "machine": machine(),
        "trees": infos,
        "command": "python -m benchmarks.compare_commits " + " ".join(sys.argv[1:] if argv is None else argv),
        "rounds": a.rounds,
        "order": a.order,
        "tolerance": a.tolerance,
        "sizes": sizes,
        "logs": str(logs),
        "environment": {
            k: v for k, v in os.environ.items() if k.startswith("GLASSFEED_") or k.endswith("_NUM_THREADS")
        },
        "measurements": {},
    }
    for kind in [m for m in MEASUREMENTS if m in only]:
        m: dict[str, Any] = {"order": []}
        report["measurements"][kind] = m
        runs: dict[str, list[dict]] = {"old": [], "new": []}
        t_kind = time.perf_counter()
        env: dict[str, str] = {}
        trained: dict[str, Path] = {}
        sim_argv: list[str] = []
        eval_argv: list[str] = []
        try:
            if kind == "feed":
                sizes["feed"] = {
                    "users": a.feed_users,
                    "days": a.feed_days,
                    "max_rows": a.feed_max_rows,
                    "requests": a.feed_requests,
                    "repeats": a.feed_repeats,
                }
                trained, m["setup"] = prepare_feed(runners, infos, a, say)
            elif kind == "sim":
                sim_argv = [
                    "--users",
                    str(a.sim_users),
                    "--steps",
                    str(a.sim_steps),
                    "--seed",
                    str(a.seed),
                    *a.sim_args.split(),
                ]
                sizes["sim"] = " ".join(sim_argv)
                env = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}  # as docs/benchmarks.md ran it
            else:
                eval_argv = ["--protocols", a.eval_protocol]
                if a.eval_max_users:
                    eval_argv += ["--max-users", str(a.eval_max_users)]
                sizes["eval"] = " ".join(eval_argv)
            for rnd in range(a.rounds):
                sides = ["old", "new"] if a.order == "abab" or rnd % 2 == 0 else ["new", "old"]
                for side in sides:
                    r = runners[side]
                    db = a.work / f"feed-{side}" / "round.db"
                    if kind == "feed":
                        _copy_store(trained[side], db)
                        spec = {"kind": "feed", "db": str(db), "requests": a.feed_requests, "repeats": a.feed_repeats}
                    elif kind == "sim":
                        spec = {"kind": "sim", "argv": sim_argv}
                    else:
                        eval_out = a.work / f"eval-{side}"
                        shutil.rmtree(eval_out, ignore_errors=True)
                        spec = {
                            "kind": "eval",
                            "argv": [*eval_argv, "--out", str(eval_out)],
                            "out": str(eval_out),
                            "protocol": a.eval_protocol,
                        }
                    say(f"{kind} round {rnd + 1}/{a.rounds}: {side}")
                    res = r.measure(spec, env)
                    if kind == "feed":
                        _remove_store(db)
                    runs[side].append(res)
                    m["order"].append(
                        {
                            "side": side,
                            "round": rnd + 1,
                            "wall_s": res["wall_s"],
                            "process_wall_s": res["process_wall_s"],
                            "process_cpu_s": res["process_cpu_s"],
                            "load_before": res["load_before"],
                            "load_after": res["load_after"],
                        }
                    )
                    say(f"{kind} round {rnd + 1}/{a.rounds}: {side} done in {res['process_wall_s']:.1f} s")
        except Exception as e:  # report what was measured; the other measurements still run
            m["error"] = f"{type(e).__name__}: {e}"
            say(f"{kind} FAILED: {m['error']}")
        m["seconds"] = time.perf_counter() - t_kind
        m["runs"] = runs
        if runs["old"] and runs["new"]:
            metrics = (
                {"feed": _feed_metrics, "sim": _sim_metrics}[kind]()
                if kind != "eval"
                else _eval_metrics(runs["old"][0]["result"])
            )
            metrics.append((f"{kind} process CPU s (user+sys, with children)", "time", False, ("_cpu_s",)))
            m["rows"] = summarise(kind, runs, metrics, a.tolerance)
        say(f"{kind}: {m['seconds']:.0f} s")
    report["elapsed_s"] = time.perf_counter() - t_all
    md = to_markdown(report)
    print("\n" + md)
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / f"compare-{name}.json").write_text(json.dumps(report, indent=1, default=str))
    (out / f"compare-{name}.md").write_text(md)
    say(f"wrote {out / f'compare-{name}.json'} and .md")
    return report


if __name__ == "__main__":
    report = main()
    failed = any(m.get("error") for m in report["measurements"].values())
    bad = any(r["gate"] and r["verdict"] != "ok" for m in report["measurements"].values() for r in m.get("rows", []))
    sys.exit(2 if failed else 1 if bad else 0)
