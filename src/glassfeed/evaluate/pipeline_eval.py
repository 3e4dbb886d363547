"""The full feed pipeline on the offline protocols' splits: datasets imported as glassfeed events.

The protocol's TRAIN part goes through the Ingestor into a fresh store (one user per dataset user, one author
account and one post per item, each training rating an IMPRESSION, then a DWELL / LIKE when the rating is high
enough); ``feed.train.train_all`` trains the heads, light ranker and ALS; then the real
``feed.pipeline.rank`` ranks a top-10 for every test user and the protocol's own metric functions score it,
so the number is comparable with the retrieval models' on the very same split.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from glassfeed.domain import EventBatch, EventKind
from glassfeed.evaluate import datasets
from glassfeed.evaluate.metrics import evaluate_topk, hits_matrix
from glassfeed.evaluate.protocols import (
    PROTOCOLS,
    Protocol,
    Split,
    group_ratio_split,
    recbole_ml1m_frame,
    social_split_frames,
    stratified_split,
    to_csr,
)
from glassfeed.evaluate.runner import ProtocolRun
from glassfeed.feed.pipeline import rank
from glassfeed.feed.policy import SOURCES, builtin_policies
from glassfeed.feed.service import FeedService
from glassfeed.feed.sources import recent_posts
from glassfeed.feed.train import train_all
from glassfeed.ingest import Ingestor
from glassfeed.settings import Settings, load_toml_resource, packaged_settings
from glassfeed.store import open_store

DAY = 86400.0
#: Synthetic clock for datasets without timestamps: training rows spread over this many days, shuffled.
SYNTHETIC_DAYS = 60.0
DWELL_MS = 15_000.0  # above feed.train.DWELL_THRESHOLD_MS (10 s), so a DWELL event is a positive "dwell" label

Say = Callable[[str], None]


@dataclass
class EventFrames:
    """The protocol's rows as the pipeline sees them, over the Split's dense user / item indices."""

    train: pd.DataFrame  # columns: u, i, rating (or play count), ts
    masked: pd.DataFrame  # rows never to recommend besides train (recbole's validation part); columns u, i
    friends: np.ndarray | None  # (m, 2) dense (follower, followee) pairs for FOLLOW events (friends: both ways)
    item_names: dict[int, str] = field(default_factory=dict)
    item_topics: dict[int, list[str]] = field(default_factory=dict)
    like_rule: str = ""


def _dense(df: pd.DataFrame, users: pd.Index, items: pd.Index) -> pd.DataFrame:
    return df.assign(u=users.get_indexer(df["user"]), i=items.get_indexer(df["item"]))


def _synthetic_ts(n: int, seed: int, start: float) -> np.ndarray:
    """Increasing times for rows in a seeded random order (so users' histories interleave), over SYNTHETIC_DAYS."""
    order = np.random.RandomState(seed).permutation(n)
    ts = np.empty(n)
    ts[order] = start + np.arange(n) * (SYNTHETIC_DAYS * DAY / max(n, 1))
    return ts


def _ml100k_items(root: str | Path | None, items: pd.Index) -> tuple[dict[int, str], dict[int, list[str]]]:
    """Titles and genres (as post text and topics) from ``u.item``; empty when the file is missing."""
    path = datasets.dataset_path("ml-100k", root) / "u.item"
    if not path.is_file():
        return {}, {}
    genres = [
        "unknown",
        "action",
        "adventure",
        "animation",
        "children",
        "comedy",
        "crime",
        "documentary",
        "drama",
        "fantasy",
        "film-noir",
        "horror",
        "musical",
        "mystery",
        "romance",
        "sci-fi",
        "thriller",
        "war",
        "western",
    ]
    df = pd.read_csv(path, sep="|", header=None, encoding="latin-1")
    flags = df.iloc[:, 5:24].to_numpy(bool)
    idx = items.get_indexer(df[0])
    names, topics = {}, {}
    for row, i in enumerate(idx.tolist()):
        if i >= 0:
            names[i] = str(df.iat[row, 1])
            topics[i] = [g for g, f in zip(genres, flags[row]) if f]
    return names, topics


def event_frames(protocol: str, root: str | Path | None = None) -> EventFrames:
    """Re-run the protocol's own splitter (same function, same seed) keeping ratings and timestamps."""
    if protocol == "ms-ml100k":
        df = datasets.load_ml100k(root)
        train_df, _ = stratified_split(df, ratio=0.75, by="item", seed=42)
        users, items = pd.Index(np.sort(df["user"].unique())), pd.Index(np.sort(df["item"].unique()))
        tr = _dense(train_df, users, items)
        names, topics = _ml100k_items(root, items)
        return EventFrames(
            tr[["u", "i", "rating"]].assign(ts=tr["timestamp"].to_numpy(np.float64)),
            tr.iloc[:0][["u", "i"]],
            None,
            names,
            topics,
            "rating >= 4",
        )
    if protocol == "recbole-ml1m":
        df = recbole_ml1m_frame(root)
        train_df, valid_df, _ = group_ratio_split(df, (0.8, 0.1, 0.1), by="user", seed=2020)
        users, items = pd.Index(np.sort(df["user"].unique())), pd.Index(np.sort(df["item"].unique()))
        tr = _dense(train_df, users, items)
        tr = tr[["u", "i", "rating"]].assign(ts=_synthetic_ts(len(tr), 0, 1.0e9))
        return EventFrames(tr, _dense(valid_df, users, items)[["u", "i"]], None, like_rule="rating >= 4")
    if protocol == "lastfm-social":
        plays, friends = datasets.load_lastfm(root)
        plays = plays.assign(conf=np.log1p(plays["plays"].to_numpy(np.float64)))
        train_df, _ = group_ratio_split(plays, (0.8, 0.2), by="user", seed=42)
        users = pd.Index(np.union1d(plays["user"].unique(), np.union1d(friends["user"], friends["friend"])))
        items = pd.Index(np.sort(plays["item"].unique()))
        tr = _dense(train_df, users, items)
        # no ratings: a play count at or above the user's median (over training artists) counts as rating 5,
        # the rest as 3, so the like head sees positives and negatives within every user's history
        med = tr.groupby("u")["plays"].transform("median")
        tr = tr.assign(rating=np.where(tr["plays"] >= med, 5, 3))[["u", "i", "rating"]]
        tr = tr.assign(ts=_synthetic_ts(len(tr), 0, 1.0e9))
        pairs = np.c_[users.get_indexer(friends["user"]), users.get_indexer(friends["friend"])]
        pairs = np.unique(np.r_[pairs, pairs[:, ::-1]], axis=0)
        return EventFrames(tr, tr.iloc[:0][["u", "i"]], pairs, like_rule="plays >= the user's median")
    if protocol.startswith("social-"):
        return social_event_frames(PROTOCOLS[protocol].dataset, root)
    raise KeyError(
        f"no event import for protocol {protocol!r}; expected ms-ml100k, recbole-ml1m, lastfm-social or social-*"
    )


def social_event_frames(dataset: str, root: str | Path | None = None) -> EventFrames:
    """A ``social-*`` protocol's training part (same splitter, same seed) with every trust link a FOLLOW.

    Ratings drive DWELL / LIKE as for MovieLens (1-5 stars; FilmTrust's 0.5-4 scaled by 1.25). Last.fm has play
    counts: a count at or above the user's median (over training artists) counts as 5, the rest as 3. No
    dataset's timestamps are used (Epinions has none): training rows are spread over ``SYNTHETIC_DAYS``.
    """
    (train_df, valid_df, _), trust, users, items = social_split_frames(dataset, root)
    tr = _dense(train_df, users, items)
    if dataset == "lastfm":
        rating = np.where(tr["rating"] >= tr.groupby("u")["rating"].transform("median"), 5.0, 3.0)
        rule = "plays >= the user's median"
    else:
        rating = tr["rating"].to_numpy(np.float64) * (1.25 if dataset == "filmtrust" else 1.0)
        rule = "rating >= 4 (FilmTrust: 3.5 stars of 4, after x 1.25)"
    tr = tr.assign(rating=rating)[["u", "i", "rating"]].assign(ts=_synthetic_ts(len(tr), 0, 1.0e9))
    pairs = np.c_[users.get_indexer(trust["user"]), users.get_indexer(trust["friend"])]
    return EventFrames(tr, _dense(valid_df, users, items)[["u", "i"]], pairs, like_rule=rule)


def sample_negatives(train: pd.DataFrame, n_items: int, ratio: float, seed: int = 0) -> pd.DataFrame:
    """``ratio`` x each user's training rows of unrated items, uniformly, as impressions nobody engaged with
    (columns u, i, ts; each at the time of one of the user's own ratings, so they interleave in time)."""
    if ratio <= 0 or not len(train):
        return pd.DataFrame({"u": np.zeros(0, np.int64), "i": np.zeros(0, np.int64), "ts": np.zeros(0)})
    rng = np.random.default_rng(seed)
    u = train["u"].to_numpy(np.int64)
    rows = rng.choice(len(train), size=round(ratio * len(train)), replace=True)
    rows = rows[np.argsort(u[rows], kind="stable")]
    cand_u, cand_i = u[rows], rng.integers(0, n_items, len(rows))
    rated = np.unique(u * n_items + train["i"].to_numpy(np.int64))
    key = cand_u * n_items + cand_i
    ok = ~np.isin(key, rated)
    _, first = np.unique(key, return_index=True)
    once = np.zeros(len(key), bool)
    once[first] = True
    ok &= once
    return pd.DataFrame({"u": cand_u[ok], "i": cand_i[ok], "ts": train["ts"].to_numpy(np.float64)[rows[ok]] + 0.5})


# --- import into a fresh store -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportRecipe:
    """How a protocol's training ratings become events (``import_events``' keywords) and which settings the run
    changes for such a log (``settings``: section -> keys, e.g. the training replay's negatives); the recipes are
    data, in ``evaluate/imports.toml``."""

    name: str
    like_min: int
    dwell_min: int | None = None
    negatives: float = 0.0
    span_days: float | None = None
    holdout_share: float | None = None
    max_rows: int = 400_000  # examples the heads train on at most (``glassfeed train --max-rows``)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)

    def import_kwargs(self) -> dict[str, Any]:
        """The keywords ``import_events`` takes from this recipe."""
        return {
            "like_min": self.like_min,
            "dwell_min": self.dwell_min,
            "negatives": self.negatives,
            "span_days": self.span_days,
            "holdout_share": self.holdout_share,
            "max_rows": self.max_rows,
        }


#: The recipe ``evaluate_pipeline`` and ``glassfeed evaluate-pipeline`` use unless told otherwise.
DEFAULT_RECIPE = "protocol"


RECIPES_FILE = "evaluate/imports.toml"


def import_recipes() -> dict[str, ImportRecipe]:
    """Every recipe in ``evaluate/imports.toml``, by name, in file order."""
    return {name: ImportRecipe(name=name, **table) for name, table in load_toml_resource(RECIPES_FILE).items()}


@dataclass
class ImportedStore:
    """A trained FeedService over the imported training events, and the id maps back to the Split's indices."""

    service: FeedService
    user_idx: np.ndarray  # dense user -> store user idx (0 = not imported)
    post_item: np.ndarray  # store post idx -> dense item (-1 for none)
    item_post: np.ndarray  # dense item -> store post idx
    now: float
    events: int
    seconds: dict[str, float]
    train_report: dict[str, Any]


def import_events(
    frames: EventFrames,
    users: np.ndarray,
    n_items: int,
    folder: str | Path,
    *,
    like_min: int = 4,
    dwell_min: int | None = 3,
    negatives: float = 0.0,
    span_days: float | None = None,
    seed: int = 0,
    say: Say | None = None,
    retrieval: dict | None = None,
    settings: Settings | None = None,
    policy: str = "engagement",
    collaborative: int = 1000,
    holdout_share: float | None = None,
    max_rows: int = 400_000,
) -> ImportedStore:
    """Write ``users``' training rows through the Ingestor, train every feed model, and load a FeedService.
    ``settings`` (default: the packaged ones) with ``retrieval`` (a dict of ``[retrieval]`` keys) over it. The
    training replay draws its candidate sets from the ``policy`` preset's sources with the evaluation's changes
    (every post young enough, ``collaborative`` candidates), the sets the ranking will see."""
    settings = (settings or packaged_settings()).replace(retrieval=dict(retrieval or {}))

    say = say or (lambda s: None)
    folder = Path(folder)
    secs: dict[str, float] = {}
    t0 = time.perf_counter()
    tr = frames.train[np.isin(frames.train["u"].to_numpy(), users)]
    if holdout_share is not None:  # the protocol's own shape: a random part of each person's ratings comes last
        t = tr["ts"].to_numpy(np.float64)
        rng = np.random.default_rng(seed)
        late = rng.random(len(t)) < holdout_share
        cut = t.min() + (1.0 - holdout_share) * (t.max() - t.min())
        tr = tr.assign(ts=np.where(late, rng.uniform(cut, t.max(), len(t)), rng.uniform(t.min(), cut, len(t))))
    if span_days is not None:  # squeeze the timeline (order kept) so decayed counters still remember it at `now`
        t = tr["ts"].to_numpy(np.float64)
        tr = tr.assign(ts=t.min() + (t - t.min()) * (span_days * DAY / max(t.max() - t.min(), 1.0)))
    ts = tr["ts"].to_numpy(np.float64)
    posted = float(ts.min()) - DAY  # every post exists a day before the first rating, so none is "in the future"
    now = float(ts.max()) + 3600.0
    store = open_store(folder / "eval.db", synchronous="NORMAL")
    ing = Ingestor(store, settings.ingest, clock=lambda: now)
    say(f"import: {len(users)} users, {n_items} items, {len(tr)} training rows")
    made = ing.create_users(
        [{"id": f"u{u}", "created_at": posted - DAY} for u in users.tolist()]
        + [{"id": f"a{i}", "handle": f"item{i}", "created_at": posted - DAY} for i in range(n_items)],
        with_tokens=False,
    )
    user_idx = np.zeros(int(max(users.max(initial=0), 0)) + 1, np.int64)
    user_idx[users] = [m["idx"] for m in made[: len(users)]]
    item_post = np.zeros(n_items, np.int64)
    for a in range(0, n_items, 20_000):
        out = ing.create_posts(
            [
                {
                    "id": f"i{i}",
                    "author": f"a{i}",
                    "text": frames.item_names.get(i, f"item {i}"),
                    "created_at": posted,
                    "topics": frames.item_topics.get(i, []),
                }
                for i in range(a, min(n_items, a + 20_000))
            ]
        )
        item_post[a : a + len(out)] = [o["idx"] for o in out]
    post_item = np.full(int(item_post.max(initial=0)) + 1, -1, np.int64)
    post_item[item_post] = np.arange(n_items)
    cols: list[dict[str, np.ndarray]] = []
    if frames.friends is not None:
        ok = np.isin(frames.friends, users).all(axis=1)
        f = frames.friends[ok]
        cols.append(
            {
                "kind": np.full(len(f), int(EventKind.FOLLOW)),
                "user": user_idx[f[:, 0]],
                "post": np.full(len(f), -1),
                "target_user": user_idx[f[:, 1]],
                "ts": np.full(len(f), posted),
                "value": np.full(len(f), np.nan),
            }
        )
    neg = sample_negatives(tr, n_items, negatives, seed)
    u, p, r = user_idx[tr["u"].to_numpy()], item_post[tr["i"].to_numpy()], tr["rating"].to_numpy()
    cols.append(
        {
            "kind": np.full(len(neg), int(EventKind.IMPRESSION)),
            "user": user_idx[neg["u"].to_numpy()],
            "post": item_post[neg["i"].to_numpy()],
            "target_user": np.full(len(neg), -1),
            "ts": neg["ts"].to_numpy(np.float64),
            "value": np.full(len(neg), np.nan),
        }
    )
    for kind, m, dt, value in (
        (EventKind.IMPRESSION, np.ones(len(tr), bool), 0.0, np.nan),
        (EventKind.DWELL, r >= (dwell_min if dwell_min is not None else np.inf), 1.0, DWELL_MS),
        (EventKind.LIKE, r >= like_min, 2.0, np.nan),
    ):
        n = int(m.sum())
        cols.append(
            {
                "kind": np.full(n, int(kind)),
                "user": u[m],
                "post": p[m],
                "target_user": np.full(n, -1),
                "ts": ts[m] + dt,
                "value": np.full(n, value),
            }
        )
    ev = {k: np.concatenate([c[k] for c in cols]) for k in cols[0]}
    order = np.argsort(ev["ts"], kind="stable")
    ev = {k: v[order] for k, v in ev.items()}
    events = EventBatch.from_columns(**ev)
    with store.bulk_load(len(order)):
        for a in range(0, len(order), 100_000):
            ing.ingest_batch(events.take(np.arange(a, min(len(order), a + 100_000))))
    secs["import"] = time.perf_counter() - t0
    say(f"import: {len(order)} events in {secs['import']:.1f} s; training the feed models")
    # keep every training like in the state: the EASE collaborative source reads a user's history from it; and
    # every impression however old (the protocol's filter_seen removes all training items, from any year). The
    # training replay uses the same state settings, so its features are the ones serving computes.
    serving = settings.replace(state={"recent_actions_per_user": 100_000, "seen_retention_h": NO_FORGETTING_H})
    t1 = time.perf_counter()
    preset = builtin_policies()[policy]
    train_policy = replace(
        preset,
        filters=preset.filters.replace(max_age_hours=(now - posted) / 3600.0 + 1.0),
        sources={**preset.sources, "collaborative": collaborative},
    )
    report = train_all(
        store,
        folder / "models",
        max_rows=max_rows,
        seed=seed,
        retrieval=settings.retrieval,
        state=serving.state,
        train=settings.train,
        policy=train_policy,
    )
    secs["train"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    svc = FeedService(ing, serving, models_folder=folder / "models", clock="data")
    secs["load"] = time.perf_counter() - t2
    say(
        f"trained in {secs['train']:.1f} s (heads on {report.n_train} impressions); state loaded in "
        f"{secs['load']:.1f} s"
    )
    return ImportedStore(svc, user_idx, post_item, item_post, now, len(order), secs, asdict(report))


# --- rank and score ------------------------------------------------------------------------------------------


#: ``[state] seen_retention_h`` for an evaluation: longer than any dataset's history (a million years).
NO_FORGETTING_H = 24 * 365 * 1e6


def _answerable_k(imported: ImportedStore, users: np.ndarray, k: int, age_h: float) -> int:
    """The largest k (from ``k``, x 0.75 a step) the collaborative index answers for all ``users`` (dense ids)."""

    svc = imported.service
    st, collab = svc.state, svc.models.collab
    collab.refresh(st, recent_posts(st, imported.now, imported.now - age_h * 3600.0), imported.now, force=True)
    if collab.index is None or not st.counters.has_factors:
        return k
    _, vec = st.counters.user_vectors(imported.user_idx[users])
    while k > 10:
        try:
            collab.index.query(vec, k)
            return k
        except RuntimeError:
            k = int(k * 0.75)
    return k


def eval_policy(
    base: Any, imported: ImportedStore, users: np.ndarray, collaborative: int = 1000, light_keep: int | None = None
) -> Any:
    """The named preset with the few changes an offline evaluation needs (each listed in docs/evaluation.md):

    - ``filters.max_age_hours`` covers every post (all posts share one creation time before the first rating);
    - ``filters.filter_seen`` on: training items are logged impressions, so they are removed, as the protocol asks;
    - ``sources.collaborative`` = ``collaborative`` so each user gets enough candidates for a top-10, lowered
      (x 0.75 a step) until the collaborative HNSW index can answer every user: hnswlib's inner-product search
      raises "Cannot return the results in a contiguous 2D array" when k is a sizeable share of a small index
      (the other sources keep their preset sizes; following / social proof are empty without a follow graph);
    - ``mixing.in_network_share`` / ``out_network_share`` = 1: nobody follows an item's author, so the preset's
      60 % out-of-network cap would end every page at 6 items;
    - ``mixing.light_ranker_keep`` only when ``light_keep`` is given.
    """
    posts = imported.service.state.posts
    age_h = (imported.now - float(posts.created(np.arange(1, posts.n + 1)).min())) / 3600.0 + 1.0
    sources = dict(base.sources)
    sources["collaborative"] = _answerable_k(imported, users, collaborative, age_h)
    mixing = base.mixing.replace(in_network_share=1.0, out_network_share=1.0)
    if light_keep is not None:
        mixing = mixing.replace(light_ranker_keep=light_keep)
    return replace(
        base, filters=base.filters.replace(max_age_hours=age_h, filter_seen=True), sources=sources, mixing=mixing
    )


@dataclass
class Ranked:
    recs: np.ndarray  # (n_users, k) dense item ids, -1 = empty slot
    seconds: float
    sources: dict[str, int]  # how many top-k slots each candidate source filled
    dropped: dict[str, int]
    candidates_per_user: float
    fallback: str | None


def rank_users(
    imported: ImportedStore,
    users: np.ndarray,
    policy: Any,
    k: int = 10,
    batch: int = 500,
    masked: list[set[int]] | None = None,
) -> Ranked:
    """The real ``pipeline.rank`` for each dense user in ``users`` (``batch`` per call); ``masked`` per user are
    extra dense items never to show (passed as the pipeline's ``served`` set)."""

    svc = imported.service
    recs = np.full((len(users), k), -1, np.int64)
    src_count = np.zeros(len(SOURCES), np.int64)
    dropped: dict[str, int] = {}
    n_cand, fallback = 0, None
    t0 = time.perf_counter()
    for a in range(0, len(users), batch):
        dense = users[a : a + batch]
        served = [set(imported.item_post[list(s)].tolist()) for s in masked[a : a + batch]] if masked else None
        pages = rank(svc.state, svc.models, imported.user_idx[dense], policy, imported.now, limit=k, served=served)
        fallback = fallback or pages.fallback_reason
        n_cand += pages.n_candidates
        for name, v in pages.dropped.items():
            dropped[name] = dropped.get(name, 0) + v
        row = pages.row
        start = np.r_[0, np.flatnonzero(row[1:] != row[:-1]) + 1] if len(row) else np.zeros(0, np.int64)
        pos = np.arange(len(row)) - np.repeat(start, np.diff(np.r_[start, len(row)]))
        recs[a + row, pos] = imported.post_item[pages.post]
        np.add.at(src_count, pages.source, 1)
    return Ranked(
        recs,
        time.perf_counter() - t0,
        {s: int(c) for s, c in zip(SOURCES, src_count)},
        dropped,
        n_cand / max(len(users), 1),
        fallback,
    )


# --- the evaluation ------------------------------------------------------------------------------------------


def subset(split: Split, rows: np.ndarray) -> Split:
    """The split restricted to the users ``rows`` (every matrix row-sliced, the friend graph on both axes)."""

    def r(X: sp.csr_matrix) -> sp.csr_matrix:
        return sp.csr_matrix(X[rows])

    def no_train(X: sp.csr_matrix) -> np.ndarray:
        return np.flatnonzero(np.diff(X.tocsc().indptr) == 0)

    train, tune_train = r(split.train), r(split.tune_train)
    return Split(
        train=train,
        test=r(split.test),
        exclude=r(split.exclude),
        tune_train=tune_train,
        tune_valid=r(split.tune_valid),
        tune_exclude=r(split.tune_exclude),
        filter_items=no_train(train),
        tune_filter_items=no_train(tune_train),
        social=None if split.social is None else sp.csr_matrix(split.social[rows][:, rows]),
        stats={**split.stats, "subset_users": len(rows)},
    )


def _pattern(X: sp.csr_matrix) -> sp.csr_matrix:
    B = sp.csr_matrix(X, copy=True)
    B.eliminate_zeros()
    B.data[:] = 1.0
    return B


def evaluate_pipeline(
    dataset: str | None = None,
    protocol: str = "ms-ml100k",
    policy: str = "engagement",
    *,
    baselines: tuple[str, ...] = ("pop", "ease"),
    max_users: int | None = None,
    root: str | Path | None = None,
    recipe: str | ImportRecipe = DEFAULT_RECIPE,
    collaborative: int = 1000,
    light_keep: int | None = None,
    ranker: str | None = None,
    batch: int = 500,
    folder: str | Path | None = None,
    seed: int = 0,
    say: Say | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Import the protocol's training split as events (by ``recipe``: a name in ``import_recipes()`` or one
    given whole), train the feed, rank a top-k with ``pipeline.rank`` for every test user, and score it beside
    the retrieval ``baselines`` (tuned by the protocol's own runner) on the same split. ``max_users`` keeps only
    the first that many users (by dense index) for a quick run."""

    say = say or (lambda s: None)
    if protocol not in PROTOCOLS:
        raise KeyError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    recipes = import_recipes()
    if isinstance(recipe, str) and recipe not in recipes:
        raise KeyError(f"unknown import recipe {recipe!r}; expected one of {', '.join(recipes)}")
    rec = recipes[recipe] if isinstance(recipe, str) else recipe
    proto: Protocol = PROTOCOLS[protocol]
    if dataset is not None and dataset != proto.dataset:
        raise ValueError(f"protocol {protocol!r} runs on dataset {proto.dataset!r}, not {dataset!r}")
    t0 = time.perf_counter()
    if root is None and settings is not None:
        root = settings.data_dir
    split = proto.build(root)
    frames = event_frames(protocol, root)
    n_users, n_items = split.train.shape
    check = to_csr(
        frames.train.rename(columns={"u": "user", "i": "item"}), pd.RangeIndex(n_users), pd.RangeIndex(n_items)
    )
    if (_pattern(check) != _pattern(split.train)).nnz:
        raise AssertionError("the re-run split does not match the protocol's training matrix")
    keep = np.arange(n_users) if max_users is None else np.arange(min(max_users, n_users))
    if max_users is not None:
        split = subset(split, keep)
    test_rows = np.flatnonzero(np.diff(split.test.indptr))
    say(f"{protocol}: split built in {time.perf_counter() - t0:.1f} s; {len(test_rows)} test users")

    with tempfile.TemporaryDirectory(prefix="glassfeed-pipeline-eval-") as tmp:
        imported = import_events(
            frames,
            keep,
            n_items,
            folder or tmp,
            seed=seed,
            say=say,
            settings=(settings or packaged_settings()).replace(**rec.settings),
            policy=policy,
            collaborative=collaborative,
            **rec.import_kwargs(),
        )
        base = imported.service.policies[policy]
        if ranker is not None:
            base = replace(base, ranker=ranker)
        pol = eval_policy(base, imported, keep[test_rows], collaborative, light_keep)
        masked = masked_beyond_training(split, test_rows)
        ranked = rank_users(imported, keep[test_rows], pol, proto.k, batch, masked)
        imported.service.close()  # stop its tail thread before the store it reads goes
        imported.service.store.close()
    say(f"ranked {len(test_rows)} users in {ranked.seconds:.1f} s")
    metrics = evaluate_topk(ranked.recs, split.test[test_rows], proto.k)
    leaked = int(np.count_nonzero(_hits(ranked.recs, split.exclude[test_rows])))
    model = imported.service.settings.retrieval.collaborative_model
    results = [
        {
            "model": f"pipeline ({policy}, {model})",
            "metrics": metrics,
            "fit_seconds": imported.seconds["import"] + imported.seconds["train"] + imported.seconds["load"],
            "rank_seconds": ranked.seconds,
            "params": {"recipe": rec.name, "ratings": frames.like_rule, **rec.import_kwargs(), **rec.settings},
        }
    ]
    run = ProtocolRun(proto, split)
    for name in baselines:
        t1 = time.perf_counter()
        r = run.evaluate(name)
        say(f"{name}: ndcg@{proto.k} {r.metrics[f'ndcg@{proto.k}']:.4f} ({time.perf_counter() - t1:.1f} s)")
        results.append(
            {
                "model": name,
                "metrics": r.metrics,
                "fit_seconds": r.fit_seconds,
                "rank_seconds": r.rank_seconds,
                "params": r.params,
            }
        )
    return {
        "protocol": proto.name,
        "dataset": proto.dataset,
        "policy": policy,
        "recipe": rec.name,
        "k": proto.k,
        "columns": list(proto.columns),
        "users": len(keep),
        "test_users": len(test_rows),
        "items": int(n_items),
        "events": imported.events,
        "train_items_in_topk": leaked,
        "empty_slots": int((ranked.recs < 0).sum()),
        "sources_in_topk": ranked.sources,
        "dropped": ranked.dropped,
        "candidates_per_user": ranked.candidates_per_user,
        "fallback": ranked.fallback,
        "seconds": imported.seconds,
        "policy_changes": {
            "max_age_hours": pol.filters.max_age_hours,
            "filter_seen": True,
            "sources": pol.sources,
            "in_network_share": 1.0,
            "out_network_share": 1.0,
            "light_ranker_keep": pol.mixing.light_ranker_keep,
        },
        "heads": [
            {k: h[k] for k in ("head", "positives_train", "auc", "baseline_auc")}
            for h in imported.train_report["heads"]
        ],
        "results": results,
        "published": proto.published,
        "elapsed_seconds": time.perf_counter() - t0,
    }


def masked_beyond_training(split: Split, rows: np.ndarray) -> list[set[int]] | None:
    """Per row of ``rows``, the items the protocol excludes from ranking beyond the training ones (recbole-ml1m's
    validation items), passed to the pipeline as already served; None when there are none."""
    extra = sp.csr_matrix(split.exclude - split.train.multiply(split.exclude))
    extra.eliminate_zeros()
    if not extra.nnz:
        return None
    return [set(extra.indices[extra.indptr[r] : extra.indptr[r + 1]].tolist()) for r in rows]


def _hits(recs: np.ndarray, X: sp.csr_matrix) -> np.ndarray:

    return hits_matrix(recs, X)


def to_markdown(run: dict[str, Any]) -> str:
    """The pipeline's row beside the retrieval baselines on the same split, plus what the pipeline did."""
    cols = run["columns"]
    lines = [
        f"### {run['protocol']}: the full pipeline ({run['policy']}) vs retrieval models",
        "",
        f"Import recipe `{run.get('recipe', '-')}` (evaluate/imports.toml). "
        f"{run['test_users']} test users of {run['users']}, {run['items']} items, {run['events']} imported "
        f"events; training items in the top-{run['k']}: {run['train_items_in_topk']}; empty slots: "
        f"{run['empty_slots']}",
        "",
        "| model | " + " | ".join(cols) + " | fit s | rank s |",
        "|---" * (len(cols) + 3) + "|",
    ]
    for r in run["results"]:
        lines.append(
            f"| {r['model']} | "
            + " | ".join(f"{r['metrics'][c]:.4f}" for c in cols)
            + f" | {r['fit_seconds']:.1f} | {r['rank_seconds']:.1f} |"
        )
    src = ", ".join(f"{k} {v}" for k, v in run["sources_in_topk"].items() if v)
    lines += [
        "",
        f"Top-{run['k']} slots by source: {src}. Candidates per user before filters: {run['candidates_per_user']:.0f}.",
        "",
    ]
    return "\n".join(lines)
