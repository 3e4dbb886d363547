"""Memory of the serving state: resident memory of one server process, by phase and by component, at several
network sizes, for one or more code trees measured in the same run on the same stores (issue 12, item 6).

For each size (``--sizes``, users; ``--days`` of history) the store is generated and trained once with the
running interpreter's ``glassfeed`` (``glassfeed generate`` then ``glassfeed train``) and cached in ``--folder``
(re-runs reuse it). Then, for each tree (``--tree name=path``, each run in its own process with
``PYTHONPATH=<path>/src`` on a fresh copy of the store, since serving logs impressions into it), the child
process records ``VmRSS`` after ``gc.collect()`` and ``malloc_trim(0)``:

1. ``import``: after importing the serving code (numpy, the store, the state, the feed service, the trainer);
2. ``store``: after opening the store (its id maps);
3. ``state``: after ``ServingState.from_store`` with the trained factors;
4. ``service``: after ``FeedService`` (models loaded; it is handed the state of step 3 instead of building a second);
5. ``served``: after ``--pages`` first pages of 50 for random people with impressions logged (which fills the
   posts shown, the paging sessions and the ``why`` cache) and flushed back into the state.

After step 5 it walks the objects each part of the state (``users``, ``posts``, ``graph``, ``counters``,
``feedback``, ``topics``; one row per attribute), the service (``sessions``, ``explanations``, ``models``) and
the store's id maps hold, counting every object once (``sys.getsizeof``; a numpy array's buffer once, through
its base).

The growth law is per-component accounting, not a regression: the generator grows users, follows, posts and
events in nearly fixed proportions, so three sizes cannot separate four per-unit costs by least squares. Each
attribute is charged to the count that drives its size (``DRIVER``: per user, per follow edge, per post, per
event); bytes per unit are the charged bytes over that count, shown at every size to check they are constant.
The headline is bytes per stored event of the serving process: (RSS after ``service`` minus RSS after
``import``) / stored events, per tree, and the ratio of the trees; a least-squares line of that RSS against
stored events over the sizes gives the marginal bytes per event. The first tree also runs with ``[state]
post_retention_days = --retention-days`` (0: not), and every tree's law is carried to ``--project-users`` people
on ``--machine-gib`` machines (``project``: replicated against partitioned by person).

Usage: python -m benchmarks.bench_memory --folder var/bench-memory --tree current=. --tree baseline=../gf-base
[--sizes 2000,10000,50000] [--days 30] [--pages 2000] [--retention-days 7] [--name memory]
[--from-json bench-results/memory.json: print a saved run's report again]
Results: bench-results/<name>.json and .md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: What drives each state attribute's size (``part.attribute`` as the child names them); anything else is
#: reported as "other". Attributes a tree does not have are simply absent from its rows.
DRIVER: dict[str, str] = {
    **dict.fromkeys(
        [
            "users._ids",
            "users._handles",
            "users._interests",
            "users._community",
            "users._topics",
            "graph._followers",
            "counters._user_side",
            "counters._user_topic",
            "counters._user_events",
            "counters._user_engaged",
            "counters._user_vec",
            "feedback._muted_words",
            "feedback._prefs",
            "store._user_idx",
        ],
        "user",
    ),
    **dict.fromkeys(
        ["graph._following", "graph._follows", "graph._blocked", "graph._blocked_by", "graph._muted"], "edge"
    ),
    **dict.fromkeys(
        [
            "posts._ids",
            "posts._author",
            "posts._created",
            "posts._topic",
            "posts._is_reply",
            "posts._moderation",
            "posts._divisiveness",
            "posts._text_len",
            "posts._text",
            "posts._text_lower",
            "posts._topic_names",
            "posts._labels",
            "posts._by_author",
            "posts._topics",
            "counters._counters",
            "counters._totals",
            "counters._trend",
            "counters._side_likes",
            "counters._post_vec",
            "store._post_idx",
        ],
        "post",
    ),
    **dict.fromkeys(
        [
            "feedback._affinity",
            "feedback._see_less",
            "feedback._seen",
            "feedback._reported",
            "counters._recent",
            "counters._recent_np",
        ],
        "event",
    ),
}
UNITS = ("user", "edge", "post", "event")
#: With the state partitioned by user (docs/scaling.md), what every partition still holds: the posts and their
#: per-post counters and vectors, the id maps, and what other people's feeds read of a person (their recent likes
#: and reposts for social proof, their name, learned factor and side, follower count); the models. The rest (what a
#: person's own feed reads of them: follows, affinities, seen posts, see-less, topic profile) is partitioned.
REPLICATED = {
    "counters._counters", "counters._totals", "counters._trend", "counters._side_likes", "counters._post_vec",
    "counters._recent", "counters._recent_np", "counters._user_vec", "counters._user_side", "graph._followers",
    "users._ids", "users._handles", "users._community", "store._post_idx", "store._user_idx", "service.models",
}  # fmt: skip
#: What an aged-out post keeps under ``[state] post_retention_days``: its id (the state's, for exports) and the
#: store's id map entry; everything else per post goes with the window.
RETENTION_KEEPS = {"posts._ids", "store._post_idx"}
#: Bounded caches of the feed service (paging sessions, "why" pages) and its policies: a fixed cost per process.
FIXED = {"service.sessions", "service.explanations", "service.shared_pages", "service.policies"}
PHASES = ("import", "store", "state", "service", "served")


# ---------------------------------------------------------------------------------------------- child process
def _rss() -> dict[str, int]:
    """VmRSS and VmHWM of this process and the bytes SQLite holds (``sqlite``), after a full collection and
    returning free heap to the system."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    out = {"sqlite": 0}
    try:  # SQLite's own heap (page cache, statements): the library Python's sqlite3 module is linked to
        lib = ctypes.CDLL("libsqlite3.so.0")
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        out["sqlite"] = int(lib.sqlite3_memory_used())
    except OSError:
        pass
    for ln in Path("/proc/self/status").read_text().splitlines():
        if ln.startswith(("VmRSS:", "VmHWM:")):
            k, v = ln.split(":")
            out[k] = int(v.split()[0]) * 1024
    return out


def deep_bytes(root: Any, seen: set[int]) -> int:
    """Bytes of ``root`` and everything it holds that ``seen`` does not already name (ids are added to it):
    ``sys.getsizeof`` of containers, strings, numbers and objects; a numpy array's buffer once (a view counts its
    header and its base). Functions, methods, classes and modules are not followed."""
    import types

    import numpy as np

    skip = (types.FunctionType, types.MethodType, types.BuiltinFunctionType, types.ModuleType, type)
    total = 0
    stack = [root]
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, skip):
            continue
        seen.add(id(o))
        if isinstance(o, np.ndarray):
            total += sys.getsizeof(o)  # includes the buffer when the array owns it
            if o.base is not None:
                stack.append(o.base)
            continue
        total += sys.getsizeof(o)
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set, frozenset)) or type(o).__name__ == "deque":
            stack.extend(o)
        elif isinstance(o, (str, bytes, int, float, bool, complex)) or o is None:
            pass
        else:
            if hasattr(o, "__dict__"):
                stack.append(vars(o))
            for cls in type(o).__mro__:
                for s in getattr(cls, "__slots__", ()):
                    if hasattr(o, s):
                        stack.append(getattr(o, s))
    return total


def _attrs(o: Any) -> dict[str, Any]:
    if hasattr(o, "__dict__"):
        return dict(vars(o))
    return {s: getattr(o, s) for cls in type(o).__mro__ for s in getattr(cls, "__slots__", ()) if hasattr(o, s)}


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One tree on one store copy: RSS by phase, timings, and bytes by component (see the module doc)."""
    rss: dict[str, dict[str, int]] = {}
    secs: dict[str, float] = {}
    import numpy as np

    import glassfeed
    import glassfeed.feed.service as service_mod
    from glassfeed.feed.train import load_factors
    from glassfeed.ingest import Ingestor
    from glassfeed.settings import load_settings
    from glassfeed.state import ServingState
    from glassfeed.store.sqlite import SQLiteStore

    rss["import"] = _rss()
    settings = load_settings(environ={}, **spec.get("overrides", {}))  # the packaged defaults, plus the run's
    t = time.perf_counter()
    store = SQLiteStore(spec["db"])
    secs["store"] = time.perf_counter() - t
    rss["store"] = _rss()
    t = time.perf_counter()
    user_vec, side = load_factors(spec["models"])
    state = ServingState.from_store(store, settings.state, user_vec=user_vec, side=side)
    del user_vec, side
    secs["state"] = time.perf_counter() - t
    rss["state"] = _rss()

    class _Built:  # FeedService.reload builds its state through ``ServingState.from_store``: hand it the one above
        @staticmethod
        def from_store(*_a: Any, **_k: Any) -> Any:
            return state

    service_mod.ServingState = _Built  # type: ignore[misc,assignment]
    t = time.perf_counter()
    svc = service_mod.FeedService(Ingestor(store), settings, clock="data", models_folder=spec["models"])
    secs["service"] = time.perf_counter() - t
    rss["service"] = _rss()

    rng = np.random.default_rng(spec["seed"])
    users = rng.integers(1, state.users.n + 1, spec["pages"])
    t = time.perf_counter()
    items = 0
    took = []
    for u in users.tolist():
        t1 = time.perf_counter()
        items += len(svc.feed(state.users.id_of(u), limit=50)["items"])
        took.append(time.perf_counter() - t1)
    svc.flush_impressions()
    secs["serve"] = time.perf_counter() - t
    secs["page_p50_ms"] = float(np.percentile(took, 50) * 1e3)
    secs["page_p99_ms"] = float(np.percentile(took, 99) * 1e3)
    rss["served"] = _rss()

    seen: set[int] = set()
    parts: dict[str, int] = {}
    for name in ("topics", "users", "posts", "graph", "counters", "feedback"):
        for attr, val in _attrs(getattr(state, name)).items():
            parts[f"{name}.{attr}"] = deep_bytes(val, seen)
    for attr in ("_user_idx", "_post_idx"):
        parts[f"store.{attr}"] = deep_bytes(getattr(store, attr), seen)
    for attr in ("sessions", "explanations", "models", "shared_pages", "policies"):
        if hasattr(svc, attr):
            parts[f"service.{attr}"] = deep_bytes(getattr(svc, attr), seen)
    svc.close()
    return {
        "glassfeed": glassfeed.__file__,
        "rss": rss,
        "seconds": secs,
        "pages": spec["pages"],
        "items": items,
        "parts": parts,
    }


# ---------------------------------------------------------------------------------------------- parent process
def ensure_store(folder: Path, users: int, days: int, seed: int) -> tuple[Path, Path, dict[str, float]]:
    """(store, model version folder, generate/train seconds) for this size, generated and trained once."""
    db = folder / f"u{users}_d{days}_s{seed}.db"
    done = db.with_name(db.name + ".done")
    times: dict[str, float] = {}
    if not done.exists():
        for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            p.unlink(missing_ok=True)
        shutil.rmtree(db.with_name(db.name + ".models"), ignore_errors=True)
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        gf = [sys.executable, "-m", "glassfeed.cli"]
        t = time.perf_counter()
        size = ["--users", str(users), "--days", str(days), "--seed", str(seed), "--start", "2026-01-01"]
        subprocess.run([*gf, "generate", *size, "--db", str(db)], check=True, env=env)
        times["generate_s"] = time.perf_counter() - t
        t = time.perf_counter()
        subprocess.run([*gf, "train", "--db", str(db)], check=True, env=env)
        times["train_s"] = time.perf_counter() - t
        done.write_text(json.dumps(times))
    else:
        times = json.loads(done.read_text() or "{}")
    models = db.with_name(db.name + ".models")
    pointer = models / "CURRENT"
    version = models / pointer.read_text().strip() if pointer.is_file() else models
    return db, version, times


def counts(db: Path) -> dict[str, int]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        q = {
            "users": "SELECT COUNT(*) FROM users",
            "posts": "SELECT COUNT(*) FROM posts",
            "edge": "SELECT COUNT(*) FROM follows",
            "events": "SELECT COUNT(*) FROM events",
            "impressions": "SELECT COUNT(*) FROM events WHERE kind = 1",
        }
        return {k: int(con.execute(s).fetchone()[0]) for k, s in q.items()}
    finally:
        con.close()


def run_tree(
    tree: Path, db: Path, models: Path, pages: int, seed: int, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The child measurement for ``tree`` on a private copy of ``db``."""
    with tempfile.TemporaryDirectory(prefix="gf-mem-", dir=db.parent) as tmp:
        copy = Path(tmp) / db.name
        for suffix in ("", "-wal"):
            src = db.with_name(db.name + suffix)
            if src.exists():
                shutil.copyfile(src, copy.with_name(copy.name + suffix))
        spec = {"db": str(copy), "models": str(models), "pages": pages, "seed": seed, "overrides": overrides or {}}
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GLASSFEED_CONFIG")}
        env["PYTHONPATH"] = str(tree / "src")
        env["OPENBLAS_NUM_THREADS"] = "1"
        out = Path(tmp) / "result.json"
        subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec), "--child-out", str(out)],
            check=True,
            env=env,
            cwd=tmp,
        )
        return dict(json.loads(out.read_text()))


def law(result: dict[str, Any], n: dict[str, int]) -> dict[str, Any]:
    """Bytes charged to each unit (``DRIVER``), per unit, and the RSS deltas per stored event."""
    charged = dict.fromkeys([*UNITS, "other"], 0)
    for key, b in result["parts"].items():
        charged[DRIVER.get(key, "other")] += b
    per = {"user": n["users"], "edge": n["edge"], "post": n["posts"], "event": n["events"]}
    rss = {k: v["VmRSS"] for k, v in result["rss"].items()}
    return {
        "charged": charged,
        "per_unit": {u: charged[u] / per[u] for u in UNITS},
        "state_rss": rss["state"] - rss["store"],
        "service_rss": rss["service"] - rss["import"],
        "served_rss": rss["served"] - rss["import"],
        "bytes_per_event_service": (rss["service"] - rss["import"]) / n["events"],
        "bytes_per_event_served": (rss["served"] - rss["import"]) / n["events"],
    }


def fit_line(x: list[float], y: list[float]) -> tuple[float, float]:
    """Least-squares (intercept, slope)."""
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxx = sum((a - mx) ** 2 for a in x)
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx if sxx else 0.0
    return my - slope * mx, slope


def report(runs: list[dict[str, Any]], trees: list[str], header: str) -> str:
    mb = 1e6
    lines = [header, ""]
    lines.append("| users | stored events | posts | follow edges | tree | " + " | ".join(PHASES) + " | state − store | "
                 "service − import | served − import | bytes/event (service) | bytes/event (served) |")  # fmt: skip
    lines.append("|" + "---|" * (5 + len(PHASES) + 5))
    for r in runs:
        n = r["counts"]
        for t in trees:
            res, lw = r["trees"][t], r["law"][t]
            rss = [res["rss"][p]["VmRSS"] / mb for p in PHASES]
            lines.append(
                f"| {n['users']:,} | {n['events']:,} | {n['posts']:,} | {n['edge']:,} | {t} | "
                + " | ".join(f"{v:,.0f}" for v in rss)
                + f" | {lw['state_rss'] / mb:,.0f} | {lw['service_rss'] / mb:,.0f} | {lw['served_rss'] / mb:,.0f} | "
                f"{lw['bytes_per_event_service']:,.0f} | {lw['bytes_per_event_served']:,.0f} |"
            )
    lines += ["", "RSS in MB (10^6 bytes). Bytes per unit, charged by component (`DRIVER`), after serving:", ""]
    lines.append("| users | tree | " + " | ".join(f"per {u}" for u in UNITS) + " | other (MB) |")
    lines.append("|" + "---|" * (3 + len(UNITS)))
    for r in runs:
        for t in trees:
            lw = r["law"][t]
            lines.append(
                f"| {r['counts']['users']:,} | {t} | "
                + " | ".join(f"{lw['per_unit'][u]:,.1f}" for u in UNITS)
                + f" | {lw['charged']['other'] / mb:,.1f} |"
            )
    lines += ["", "Largest components after serving (MB), at the largest size:", ""]
    big = runs[-1]
    keys = sorted({k for t in trees for k in big["trees"][t]["parts"]})
    keys.sort(key=lambda k: -max(big["trees"][t]["parts"].get(k, 0) for t in trees))
    lines.append("| component | driver | " + " | ".join(trees) + " |")
    lines.append("|" + "---|" * (2 + len(trees)))
    for k in keys[:25]:
        vals = [big["trees"][t]["parts"].get(k) for t in trees]
        cells = " | ".join("–" if v is None else f"{v / mb:,.1f}" for v in vals)
        lines.append(f"| {k} | {DRIVER.get(k, 'other')} | {cells} |")
    if len(runs) > 1:
        lines += ["", "Least-squares line of (RSS after `service` − RSS after `import`) against stored events:", ""]
        for t in trees:
            x = [float(r["counts"]["events"]) for r in runs]
            for label, key in (("service", "service_rss"), ("served", "served_rss")):
                a, b = fit_line(x, [float(r["law"][t][key]) for r in runs])
                lines.append(f"- {t}, {label}: {a / mb:,.1f} MB + {b:,.1f} bytes × events")
    if len(trees) > 1:
        lines += ["", f"Ratio of bytes per stored event, {trees[0]} / {trees[1]}:", ""]
        for r in runs:
            a, b = r["law"][trees[0]], r["law"][trees[1]]
            svc = a["bytes_per_event_service"] / b["bytes_per_event_service"]
            served = a["bytes_per_event_served"] / b["bytes_per_event_served"]
            lines.append(f"- {r['counts']['users']:,} users: service {svc:.3f}, served {served:.3f}")
    return "\n".join(lines) + "\n"


def project(
    runs: list[dict[str, Any]],
    tree: str,
    days: int,
    users: int,
    window_days: float,
    machine_gib: float,
    measured_window: float = 0.0,
    ref_peak: float = 0.0,
) -> str:
    """The measured law carried to ``users`` people (see docs/scaling.md for the assumptions), from the largest run
    of ``tree``: every count grows in proportion to the people (the generator's per-person activity over ``days``);
    component bytes are scaled by their count and multiplied by the measured ratio of (RSS after serving − RSS
    after import − SQLite's heap) to the bytes the walk found (allocator overhead and what the walk cannot see);
    the import and SQLite's heap are a fixed cost per process, and so are the bounded caches (``FIXED``). A tree
    run with a post retention window (``measured_window`` days) is projected as measured, and with a rebuild
    that peaks as ``ref_peak`` (the run without a window: a rebuild reading only the window's posts); one without
    is also projected with ``window_days`` (per-post components but ``RETENTION_KEEPS`` scaled by the window)."""
    big = runs[-1]
    n, res = big["counts"], big["trees"][tree]
    rss = res["rss"]
    parts: dict[str, int] = res["parts"]
    fixed_parts = sum(b for k, b in parts.items() if k in FIXED)
    walked = sum(parts.values())
    over = (rss["served"]["VmRSS"] - rss["import"]["VmRSS"] - rss["served"]["sqlite"]) / walked
    base = rss["import"]["VmRSS"] + rss["served"]["sqlite"] + over * fixed_parts
    peak = rss["served"]["VmHWM"] / rss["served"]["VmRSS"]
    scale = users / n["users"]
    per_unit = {"user": n["users"], "edge": n["edge"], "post": n["posts"], "event": n["events"]}
    law_b = {u: over * sum(b for k, b in parts.items() if DRIVER.get(k) == u) / per_unit[u] for u in UNITS}
    gb = 1e9

    def held(replicated: bool, share: Callable[[str], float]) -> float:
        """Bytes of the replicated (or partitioned) components at ``users``, each times ``share(component)``."""
        tot = 0.0
        for k, b in parts.items():
            if k in FIXED or (k in REPLICATED or k.startswith(("posts.", "topics."))) != replicated:
                continue
            tot += over * b * scale * share(k)
        return tot

    def predict(r: dict[str, Any]) -> float:
        c = r["counts"]
        count = {"user": c["users"], "edge": c["edge"], "post": c["posts"], "event": c["events"]}
        return base + sum(law_b[u] * count[u] for u in UNITS)

    def window(w: float, keeps: set[str]) -> Callable[[str], float]:
        return lambda k: w / days if DRIVER.get(k) == "post" and k not in keeps else 1.0

    lines = [
        f"Law ({tree}, from the {n['users']:,}-user run): RSS after serving ≈ {base / 1e6:,.0f} MB"
        + "".join(f" + {law_b[u]:,.1f} B × {u}s" for u in UNITS)
        + f" (allocator factor {over:.2f} included; rebuild peak {peak:.2f} × that)",
        "Predicted against measured RSS after serving: "
        + ", ".join(f"{r['counts']['users']:,} users {predict(r) / 1e6:,.0f} vs "
                    f"{r['trees'][tree]['rss']['served']['VmRSS'] / 1e6:,.0f} MB" for r in runs),
        f"At {users:,} people ({scale:,.0f} × this network; {machine_gib:g} GiB machines whose steady state may use "
        f"1/(rebuild peak ratio) of them, so that a rebuild fits):",
    ]  # fmt: skip
    store_map = {"store._post_idx"}
    if measured_window:
        mw = measured_window
        bounded = lambda k: mw / days if k in store_map else 1.0  # noqa: E731
        scenarios = [
            (f"as measured (posts of the last {mw:g} days)", window(days, set()), peak),
            ("and the store's post id map bounded alike (not built)", bounded, peak),
            (
                f"both, and a rebuild that loads only the window (peak ratio {ref_peak:.2f}; not built)",
                bounded,
                ref_peak or peak,
            ),
        ]
    else:
        scenarios = [
            (f"every post ({days} days)", window(days, set()), peak),
            (f"posts of the last {window_days:g} days, modelled", window(window_days, RETENTION_KEEPS), peak),
            (
                f"posts of the last {window_days:g} days, and the store's post id map bounded alike (not built)",
                window(window_days, RETENTION_KEEPS - store_map),
                peak,
            ),
        ]
    for label, share, pk in scenarios:
        usable = machine_gib * 2**30 / pk
        rep, part = held(True, share) + base, held(False, share)
        room = usable - rep
        machines = "does not fit" if room <= 0 else f"{-(-part // room):,.0f} partitions"
        lines.append(
            f"- {label}: one process holding everything {(rep + part) / gb:,.1f} GB; replicated part "
            f"{rep / gb:,.1f} GB, partitioned part {part / gb:,.1f} GB; by user on {machine_gib:g} GiB machines: "
            f"{machines} (steady state at most {usable / gb:,.1f} GB)"
        )
    return "\n".join(lines) + "\n"


def peak_of(runs: list[dict[str, Any]]) -> float:
    """Rebuild peak over steady state (VmHWM / VmRSS after serving) of the first tree at the largest size."""
    rss = next(iter(runs[-1]["trees"].values()))["rss"]["served"]
    return float(rss["VmHWM"] / rss["VmRSS"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, default=Path("var/bench-memory"), help="where the stores are cached")
    ap.add_argument("--sizes", default="2000,10000,50000", help="users per network, comma-separated")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pages", type=int, default=2000, help="first pages served to random people per tree")
    ap.add_argument("--tree", action="append", default=[], help="name=path of a source tree (default current=.)")
    ap.add_argument("--name", default="memory", help="results: bench-results/<name>.{json,md}")
    ap.add_argument(
        "--retention-days",
        type=float,
        default=7.0,
        help="also run the first tree with [state] post_retention_days = this (0: not)",
    )
    ap.add_argument("--project-users", type=int, default=10_000_000, help="carry the law to this many people")
    ap.add_argument("--window-days", type=float, default=7.0, help="a post retention window for the projection")
    ap.add_argument("--machine-gib", type=float, default=64.0, help="memory of one serving machine")
    ap.add_argument("--from-json", type=Path, help="render a saved result again (no measurement)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        res = child(json.loads(a.child))
        Path(a.child_out).write_text(json.dumps(res))
        return res
    from benchmarks.common import machine

    if a.from_json:
        saved = json.loads(a.from_json.read_text())
        names = list(saved["trees"])
        wins = saved.get("windows", {})
        text = report(saved["runs"], names, saved["machine"]) + "".join(
            "\n"
            + project(
                saved["runs"],
                t,
                saved["days"],
                a.project_users,
                a.window_days,
                a.machine_gib,
                wins.get(t, 0.0),
                peak_of(saved["runs"]),
            )
            for t in names
        )
        print(text)
        return dict(saved)
    trees = dict(t.split("=", 1) for t in a.tree) or {"current": "."}
    windows: dict[str, float] = {}  # tree name -> the post retention window it ran with
    if a.retention_days:
        first = next(iter(trees))
        variant = f"{first}, {a.retention_days:g}-day window"
        trees[variant], windows[variant] = trees[first], a.retention_days
    names = list(trees)
    a.folder.mkdir(parents=True, exist_ok=True)
    header = f"machine: {machine()}"
    print(header, flush=True)
    runs = []
    for users in [int(s) for s in a.sizes.split(",")]:
        db, models, made = ensure_store(a.folder, users, a.days, a.seed)
        n = counts(db)
        print(f"{users:,} users x {a.days} days: {n} {made}", flush=True)
        run: dict[str, Any] = {"counts": n, "store": made, "trees": {}, "law": {}}
        for name in names:
            over = {"state": {"post_retention_days": windows[name]}} if name in windows else None
            res = run_tree(Path(trees[name]).resolve(), db, models, a.pages, a.seed, over)
            run["trees"][name] = res
            run["law"][name] = law(res, n)
            rss = {p: round(res["rss"][p]["VmRSS"] / 1e6) for p in PHASES}
            print(f"  {name} ({res['glassfeed']}): RSS MB {rss}, seconds {res['seconds']}", flush=True)
        runs.append(run)
    text = report(runs, names, header + f" | load at the end {os.getloadavg()[0]:.2f}")
    text += "".join(
        "\n"
        + project(runs, t, a.days, a.project_users, a.window_days, a.machine_gib, windows.get(t, 0.0), peak_of(runs))
        for t in names
    )
    print(text)
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    result = {"machine": header, "days": a.days, "pages": a.pages, "trees": trees, "windows": windows, "runs": runs}
    (out / f"{a.name}.json").write_text(json.dumps(result, indent=1))
    (out / f"{a.name}.md").write_text(text)
    return result


if __name__ == "__main__":
    if "--child" not in sys.argv:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
