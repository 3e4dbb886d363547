"""Link prediction on real social graphs: each "people you may know" generator and the learned head, side by side.

``python -m glassfeed.evaluate.linkpred --dataset lastfm ciao epinions`` (docs/suggestions.md has the table).

**Data** (read in place under the settings' data folder, never copied: ``evaluate.datasets``): the Last.fm HetRec
friend graph (undirected; plays as engagement), the Ciao and Epinions trust networks (directed "u trusts v" read as
"u follows v"; ratings as engagement; each person's most-rated product category as their "community", ties to the
lower category id). None of these has edge times, so the split is a random edge holdout only.

**Split** (``suggest/model.toml`` ``[evaluation]``, seeded): ``test_share`` of the edges are the test positives
(on the undirected Last.fm graph, of the friendships: both directions go together); ``valid_share`` of the rest
train the learned head (features on the graph without them, label = a held-out edge,
``suggest.model.holdout_examples``); the generators and the head then score on the whole training graph.

**Metrics** (``evaluate.metrics``, the project's one definition): over ``sources`` people sampled (seeded) among
those with a test edge, recall@k (hits / the person's test edges) and MRR within the top ``depth``. Never ranked:
the person, whom they already follow in the training graph. ``popularity`` (most-followed first) is a reference.
The learned head ranks the union of every generator's top ``depth``: ``candidate recall`` is that union's recall,
the ceiling of the head's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from glassfeed.evaluate.datasets import dataset_path, load_lastfm, load_trust
from glassfeed.evaluate.metrics import per_user_metrics
from glassfeed.evaluate.report import machine_info
from glassfeed.suggest import generators as gen
from glassfeed.suggest.graph import PeopleGraph, build
from glassfeed.suggest.model import FollowModel, holdout_examples
from glassfeed.suggest.policy import Evaluation, ModelSettings, load_model_settings

#: Datasets this runner reads (``evaluate.datasets`` names).
LINK_DATASETS = ("lastfm", "ciao", "epinions")
#: Bootstrap resamples of the people evaluated, for the learned-vs-best-heuristic interval.
BOOTSTRAP = 1000


@dataclass(frozen=True)
class LinkData:
    name: str
    n: int
    src: np.ndarray  # directed edges (u follows v), unique, no self loops
    dst: np.ndarray
    undirected: bool
    engaged_users: np.ndarray
    engaged_items: np.ndarray
    community: np.ndarray  # (n,), -1 unknown


def _dense(ids: pd.Series, mapping: dict[int, int]) -> np.ndarray:
    return ids.map(mapping).to_numpy(np.int64)


def load(name: str, root: str | Path | None = None) -> LinkData:
    """A dataset as a ``LinkData`` (users renumbered 0..n-1 in sorted original-id order)."""
    if name == "lastfm":
        plays, friends = load_lastfm(root)
        links = friends.rename(columns={"friend": "friend"})[["user", "friend"]]
        eng = plays[["user", "item"]]
        cats: pd.DataFrame | None = None
    elif name in ("ciao", "epinions"):
        ratings, links = load_trust(name, root)
        eng = ratings[["user", "item"]]
        cats = pd.read_csv(dataset_path(name, root) / "rating.tsv", sep="\t", usecols=["userid", "categoryid"]).rename(
            columns={"userid": "user"}
        )
    else:
        raise KeyError(f"unknown link-prediction dataset {name!r}; expected one of {', '.join(LINK_DATASETS)}")
    ids = np.unique(np.concatenate([links["user"].to_numpy(), links["friend"].to_numpy(), eng["user"].to_numpy()]))
    mapping = {int(v): i for i, v in enumerate(ids.tolist())}
    s, d = _dense(links["user"], mapping), _dense(links["friend"], mapping)
    keep = s != d
    code = np.unique(s[keep] * len(ids) + d[keep])
    items, _ = pd.factorize(eng["item"], sort=True)
    community = np.full(len(ids), -1, np.int64)
    if cats is not None:
        counts = cats.groupby(["user", "categoryid"]).size().reset_index(name="n")
        top = counts.sort_values(["user", "n", "categoryid"], ascending=[True, False, True]).drop_duplicates("user")
        community[_dense(top["user"], mapping)] = top["categoryid"].to_numpy(np.int64)
    return LinkData(
        name=name,
        n=len(ids),
        src=code // len(ids),
        dst=code % len(ids),
        undirected=name == "lastfm",
        engaged_users=_dense(eng["user"], mapping),
        engaged_items=np.asarray(items, np.int64),
        community=community,
    )


def split(
    src: np.ndarray, dst: np.ndarray, share: float, rng: np.random.Generator, undirected: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(kept src, kept dst, held-out src, held-out dst): ``share`` of the edges held out at random; on an
    undirected graph a friendship's two directions are held out together."""
    if undirected:
        lo, hi = np.minimum(src, dst), np.maximum(src, dst)
        pairs = np.unique(lo * (max(hi.max(), 1) + 1) + hi) if len(lo) else np.zeros(0, np.int64)
        base = max(hi.max(), 1) + 1 if len(lo) else 1
        a, b = pairs // base, pairs % base
        out = np.zeros(len(pairs), bool)
        out[rng.choice(len(pairs), size=round(share * len(pairs)), replace=False)] = True
        both = lambda m: (np.r_[a[m], b[m]], np.r_[b[m], a[m]])  # noqa: E731
        return (*both(~out), *both(out))
    out = np.zeros(len(src), bool)
    out[rng.choice(len(src), size=round(share * len(src)), replace=False)] = True
    return src[~out], dst[~out], src[out], dst[out]


def _graph(data: LinkData, src: np.ndarray, dst: np.ndarray) -> PeopleGraph:
    return build(data.n, src, dst, data.engaged_users, data.engaged_items, data.community)


def _sample(src: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    pool = np.unique(src)
    return np.sort(rng.choice(pool, size=min(size, len(pool)), replace=False))


def _recs(rows: np.ndarray, cols: np.ndarray, n_rows: int, depth: int) -> np.ndarray:
    """Ranked flat pairs (row by row, best first) as a dense ``(n_rows, depth)`` id array padded with -1."""
    out = np.full((n_rows, depth), -1, np.int64)
    pos = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
    keep = pos < depth
    out[rows[keep], pos[keep]] = cols[keep]
    return out


def _popularity(g: PeopleGraph, users: np.ndarray, depth: int) -> np.ndarray:
    order = np.lexsort((np.arange(g.n), -g.in_degree))
    excl = gen.exclusions(g, users)
    out = np.full((len(users), depth), -1, np.int64)
    head = order[: depth + int(np.diff(excl.indptr).max(initial=0))]
    for r in range(len(users)):
        gone = excl.indices[excl.indptr[r] : excl.indptr[r + 1]]
        ok = head[~np.isin(head, gone)][:depth]
        out[r, : len(ok)] = ok
    return out


def evaluate(data: LinkData, settings: Evaluation | None = None, model: ModelSettings | None = None) -> dict[str, Any]:
    """The link-prediction table for one dataset (see the module doc)."""
    ms = model or load_model_settings()
    ev = settings or ms.evaluation
    t0 = time.perf_counter()
    rng = np.random.default_rng(ev.seed)
    tr_s, tr_d, te_s, te_d = split(data.src, data.dst, ev.test_share, rng, data.undirected)
    in_s, in_d, va_s, va_d = split(tr_s, tr_d, ev.valid_share, rng, data.undirected)
    depth_all = dict.fromkeys(gen.GENERATORS, ev.depth)

    # the learned head: candidates on the graph without the validation edges, labelled by them
    inner = _graph(data, in_s, in_d)
    train_sources = _sample(va_s, ev.sources, rng)
    X, y = holdout_examples(inner, va_s, va_d, depth_all, train_sources, ev.chunk)
    head = FollowModel(ms.lightgbm).fit(X, y)
    t_fit = time.perf_counter() - t0

    g = _graph(data, tr_s, tr_d)
    sources = _sample(te_s, ev.sources, rng)
    test = sp.csr_matrix((np.ones(len(te_s)), (te_s, te_d)), shape=(data.n, data.n))
    heuristics = [m for m in gen.GENERATORS if m != "contacts"]  # no dataset here has uploaded contacts
    methods = [*heuristics, "popularity", "learned", "candidate union"]
    recs: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    for start in range(0, len(sources), ev.chunk):
        users = sources[start : start + ev.chunk]
        scores = gen.generator_scores(g, users)
        for name in heuristics:
            r, c, _ = gen.top_per_row(scores[name], ev.depth, g.in_degree)
            recs[name].append(_recs(r, c, len(users), ev.depth))
        recs["popularity"].append(_popularity(g, users, ev.depth))
        cand = gen.candidates(g, users, depth_all, scores)
        r, c, _ = gen.rank_pairs(cand.row, cand.cand, head.predict(cand.X), ev.depth, g.in_degree)
        recs["learned"].append(_recs(r, c, len(users), ev.depth))
        width = len(gen.GENERATORS) * ev.depth
        r, c, _ = gen.rank_pairs(cand.row, cand.cand, np.zeros(len(cand)), width, g.in_degree)
        recs["candidate union"].append(_recs(r, c, len(users), width))
    relevant = test[sources]
    rows: dict[str, dict[str, float]] = {}
    mrr: dict[str, np.ndarray] = {}
    for m in methods:
        R = np.vstack(recs[m])
        got = {f"recall@{k}": float(per_user_metrics(R, relevant, k)["recall"].mean()) for k in ev.ks}
        if m == "candidate union":
            got = {"recall@all": float(per_user_metrics(R, relevant)["recall"].mean())}
        else:
            mrr[m] = per_user_metrics(R, relevant, ev.depth)["mrr"]
            got[f"mrr@{ev.depth}"] = float(mrr[m].mean())
        rows[m] = got
    best = max(heuristics, key=lambda m: rows[m][f"mrr@{ev.depth}"])
    # the learned head against the best heuristic: per-person MRR differences, a seeded bootstrap 95% interval
    diff = mrr["learned"] - mrr[best]
    boot = rng.choice(diff, size=(BOOTSTRAP, len(diff))).mean(axis=1)
    versus = {
        "mrr_diff": float(diff.mean()),
        "ci95": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))],
    }
    return {
        "dataset": data.name,
        "users": data.n,
        "edges": len(data.src),
        "undirected": data.undirected,
        "communities": len(np.unique(data.community[data.community >= 0])),
        "test_edges": len(te_s),
        "valid_edges": len(va_s),
        "sources": len(sources),
        "sources_without_train_follows": int((g.out_degree[sources] == 0).sum()),
        "head_examples": len(y),
        "head_positives": int(y.sum()),
        "rows": rows,
        "best_heuristic": best,
        "learned_vs_best": versus,
        "settings": ev.model_dump(),
        "seconds_head": round(t_fit, 1),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def to_markdown(run: dict[str, Any]) -> str:
    """One dataset's table."""
    rows, vs = run["rows"], run["learned_vs_best"]
    ks = run["settings"]["ks"]
    depth = run["settings"]["depth"]
    cols = [f"recall@{k}" for k in ks] + [f"mrr@{depth}"]
    lines = [
        f"**{run['dataset']}**: {run['users']:,} users, {run['edges']:,} directed edges"
        f"{' (undirected friendships, both directions)' if run['undirected'] else ''}; "
        f"{run['test_edges']:,} test edges, {run['valid_edges']:,} validation edges; {run['sources']:,} people "
        f"evaluated ({run['sources_without_train_follows']:,} with no follow left in the training graph); "
        f"the head trained on {run['head_examples']:,} candidates ({run['head_positives']:,} positive); "
        f"{run['seconds']} s.",
        "",
        "| method | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for m, v in rows.items():
        if m == "candidate union":
            continue
        name = f"**{m}**" if m in ("learned", run["best_heuristic"]) else m
        lines.append(f"| {name} | " + " | ".join(f"{v[c]:.4f}" for c in cols) + " |")
    lines.append("")
    lines.append(
        f"Candidate union (every generator's top {depth}): recall {rows['candidate union']['recall@all']:.4f} "
        f"(the learned head's ceiling). Best heuristic by MRR: {run['best_heuristic']}; the learned head's MRR minus "
        f"its, per person: {vs['mrr_diff']:+.4f} (bootstrap 95% interval {vs['ci95'][0]:+.4f} to {vs['ci95'][1]:+.4f})."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", nargs="+", default=list(LINK_DATASETS), choices=LINK_DATASETS)
    p.add_argument("--data", default=None, help="folder holding the datasets (default: the settings' data_dir)")
    p.add_argument("--sources", type=int, default=None, help="people evaluated (default: model.toml)")
    p.add_argument("--out", default=None, help="write the runs as JSON here")
    a = p.parse_args(argv)
    ms = load_model_settings()
    ev = ms.evaluation if a.sources is None else ms.evaluation.model_copy(update={"sources": a.sources})
    runs = []
    for name in a.dataset:
        run = evaluate(load(name, a.data), ev, ms)
        runs.append(run)
        print(to_markdown(run), "\n", flush=True)
    print("machine:", json.dumps(machine_info()))
    if a.out:
        Path(a.out).write_text(json.dumps({"runs": runs, "machine": machine_info()}, indent=1), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
