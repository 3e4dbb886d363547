"""People you may know as arms of the feed simulator (issue 19 item 5): how suggestion policies change the synthetic
society's follow graph over time, and what that does downstream to the feeds.

Each arm is a feed policy with a suggestion policy (``engagement+bridging``), one world of ``sim/loop.py`` on the
seeded society, with the **real lever** beside its feed: a ``SuggestionService`` on the world's ``FeedService`` (the
service behind ``GET /v1/users/{id}/suggestions``), its packaged policies (``policies/suggestions/*.toml``) and, when
the run trains one, the learned P(follow | suggested) head, trained once per seed on the shared history's newest
follows (``SuggestionService.retrain``, as ``glassfeed suggestions train`` does) and copied into every world. The
suggestion policy ``none`` is the control: no suggestions, only the follows the loop's behaviour model makes (a
like or repost of an unfollowed author is followed by a follow with probability 0.08, ``population.respond``).

Each step, after the loop's own step (posts, ranked feeds, responses, ingest, metrics, retrain), everyone who had a
feed session in it is shown ``[showing] per_session`` suggestions, ranked for the whole batch by
``SuggestionService.rank`` on the serving state as it is after the step's events. Each suggestion becomes a follow
independently with the probability of ``accept_prob`` (``sim/suggestions.toml`` ``[acceptance]``; assumptions,
stated there). The follows go through the world's Ingestor (surface ``suggestions``), so the feed's serving state
(its in-network source, the behaviour model's affinity to followed authors) and the next step's suggestions see
them.

Measured per step (series) and over the run (``final_extra``): suggestions shown and taken, the share of each that
crosses communities, all new follows of the step (the follow graph's new edges: the feed's and the suggestions'),
the share of them that cross communities, and the modularity of the follow graph by the population's communities
(``modularity``). The loop's ``Collector`` measures the feeds as in every world (divisive share of the top 10,
stated satisfaction, engagement per impression, ...).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import expit

from glassfeed.domain import EventBatch, EventKind
from glassfeed.feed.service import FeedService
from glassfeed.ingest import Ingestor
from glassfeed.settings import Settings, packaged_settings
from glassfeed.sim.loop import Base, Progress, SimConfig, SimResult, World, prepare_base, run_simulation
from glassfeed.store import open_store
from glassfeed.suggest.policy import ModelSettings, _parse, _validated, builtin_policies, load_model_settings
from glassfeed.suggest.service import SuggestionService

#: Separates the feed policy from the suggestion policy in an arm's name (``engagement+bridging``).
ARM_SEP = "+"
#: The control arm's suggestion policy: nothing is suggested.
NONE = "none"
#: The settings file, beside this module.
SETTINGS_FILE = "suggestions.toml"


# --------------------------------------------------------------------------- settings (sim/suggestions.toml)
class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Showing(_Section):
    per_session: int = Field(ge=1, le=50, description="suggestions shown to each person with a session")


class Acceptance(_Section):
    """P(follow | shown) = sigmoid(bias + interest x cos + same_community x same + mutual x ln(1 + mutual))."""

    bias: float
    interest: float
    same_community: float
    mutual: float


class SuggestionBehaviour(_Section):
    showing: Showing
    acceptance: Acceptance


def load_behaviour(path: str | Path | None = None) -> SuggestionBehaviour:
    """``sim/suggestions.toml`` (or the file at ``path``); an unknown or missing key is refused with the file,
    section and key named (``feed.policy.PolicyError``)."""
    if path:
        p = Path(path)
        return _validated(SuggestionBehaviour, _parse(p.read_text("utf-8"), p.name), p.name)
    text = resources.files("glassfeed").joinpath("sim", SETTINGS_FILE).read_text("utf-8")
    return _validated(SuggestionBehaviour, _parse(text, SETTINGS_FILE), SETTINGS_FILE)


def interest_similarity(interests: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Cosine of the true topic interests of each pair ``(u[i], v[i])``."""
    a = np.asarray(interests[u], np.float64)
    b = np.asarray(interests[v], np.float64)
    norm = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.einsum("ij,ij->i", a, b) / np.maximum(norm, 1e-12)


def accept_prob(a: Acceptance, similarity: np.ndarray, same_community: np.ndarray, mutual: np.ndarray) -> np.ndarray:
    """P(follow | shown) of each shown suggestion (the rule of ``sim/suggestions.toml`` ``[acceptance]``)."""
    z = (
        a.bias
        + a.interest * np.asarray(similarity, np.float64)
        + a.same_community * np.asarray(same_community, np.float64)
        + a.mutual * np.log1p(np.maximum(np.nan_to_num(np.asarray(mutual, np.float64)), 0.0))
    )
    return np.asarray(expit(z))


# --------------------------------------------------------------------------- graph measures
def modularity(src: np.ndarray, dst: np.ndarray, community: np.ndarray) -> float:
    """Newman's modularity of the follow graph under the partition ``community`` (one label >= 0 per person).

    The directed follows are read as an undirected simple graph: one edge {u, v} when u follows v or v follows u
    (a mutual follow is one edge), self-follows dropped. With ``m`` edges, ``L_c`` of them inside community c and
    ``d_c`` the summed degree of c's members, ``Q = Σ_c [L_c / m - (d_c / 2m)²]``: 0 for edges placed at random
    with the same degrees, higher the more edges stay inside communities. NaN for a graph without edges."""
    comm = np.asarray(community, np.int64)
    n = len(comm)
    if n and comm.min() < 0:
        raise ValueError("every person needs a community label >= 0")
    src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    keep = src != dst
    a = sp.csr_matrix((np.ones(int(keep.sum())), (src[keep], dst[keep])), shape=(n, n))
    s = sp.coo_matrix((a + a.T) > 0)  # symmetric, binary: every undirected edge stored twice
    two_m = float(s.nnz)
    if two_m == 0:
        return float("nan")
    k = int(comm.max()) + 1
    inside = comm[s.row] == comm[s.col]
    twice_l = np.bincount(comm[s.row[inside]], minlength=k)  # 2 L_c
    d = np.bincount(s.row, minlength=n).astype(np.float64)
    d_c = np.bincount(comm, weights=d, minlength=k)
    return float(np.sum(twice_l / two_m - (d_c / two_m) ** 2))


def cross_share(src: np.ndarray, dst: np.ndarray, community: np.ndarray) -> float:
    """Share of the follows ``src -> dst`` between people of different communities (NaN when there are none)."""
    if not len(src):
        return float("nan")
    comm = np.asarray(community)
    return float(np.mean(comm[np.asarray(src, np.int64)] != comm[np.asarray(dst, np.int64)]))


# --------------------------------------------------------------------------- arms
@dataclass(frozen=True)
class SuggestionArm:
    """A feed policy with a suggestion policy (everyone's, in this arm's world); ``none``: no suggestions."""

    feed_policy: str
    suggestion_policy: str

    @property
    def name(self) -> str:
        return f"{self.feed_policy}{ARM_SEP}{self.suggestion_policy}"


def arms_for(policies: Sequence[str], suggestions: Sequence[str]) -> list[SuggestionArm]:
    """Every feed policy with every suggestion policy, feed-policy-major."""
    return [SuggestionArm(p, s) for p in policies for s in suggestions]


@dataclass
class SuggestionTally:
    """One arm's counts over the run."""

    shown: int = 0
    shown_cross: int = 0
    taken: int = 0
    taken_cross: int = 0
    new_follows: int = 0  # new edges of the follow graph: the feed's follows and the suggestions'
    new_cross: int = 0


class SuggestedWorld(World):
    """A feed policy's world with "people you may know" under one suggestion policy and people's answers to it."""

    def __init__(
        self,
        cfg: SimConfig,
        arm: SuggestionArm,
        db: Path,
        base: Base,
        settings: Settings | None = None,
        behaviour: SuggestionBehaviour | None = None,
        model_settings: ModelSettings | None = None,
    ) -> None:
        super().__init__(cfg, arm.feed_policy, db, base, settings)
        self.policy_name, self.arm = arm.name, arm
        self.behaviour = behaviour or load_behaviour()
        self.sugg = SuggestionService(self.svc, settings=model_settings or load_model_settings())
        if arm.suggestion_policy != NONE and arm.suggestion_policy not in self.sugg.policies:
            raise ValueError(f"unknown suggestion policy {arm.suggestion_policy!r}")
        self.tally = SuggestionTally()
        self.ranked_by: str | None = None
        self.last_active = np.zeros(0, np.int64)
        self.keys = self._follow_keys()
        src, dst = self._split(self.keys)
        self.edges_start = len(self.keys)
        self.modularity_start = modularity(src, dst, self.pop.community)
        self.cross_start = cross_share(src, dst, self.pop.community)
        self.seconds["suggest"] = 0.0

    # ------------------------------------------------------------------ the follow graph, in sim indices
    def _follow_keys(self) -> np.ndarray:
        """Every follow of the serving state as sorted codes ``src * n + dst`` (sim indices)."""
        st = self.svc.state
        with self.svc.lock:
            users = np.arange(st.n_users + 1, dtype=np.int64)
            rows, dst = st.graph.follow_pairs(users)
        s2u = np.full(max(len(users), len(self.s2u)), -1, np.int64)
        s2u[: len(self.s2u)] = self.s2u
        a, b = s2u[users[rows]], s2u[np.asarray(dst, np.int64)]
        ok = (a >= 0) & (b >= 0)
        return np.unique(a[ok] * self.pop.n_users + b[ok])

    def _split(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = self.pop.n_users
        return keys // n, keys % n

    # ------------------------------------------------------------------ one step
    def _active(self, draw: np.ndarray, now: float) -> np.ndarray:
        self.last_active = super()._active(draw, now)
        return self.last_active

    def step(self, k: int) -> None:
        """The loop's step, then "people you may know" for the step's sessions, then the graph's measures."""
        super().step(k)
        t = time.perf_counter()
        src, dst = self._suggest(self.last_active, k)
        keys = self._follow_keys()
        new = np.setdiff1d(keys, self.keys, assume_unique=True)
        self.keys = keys
        ns, nd = self._split(new)
        comm = self.pop.community
        crosses = int((comm[ns] != comm[nd]).sum())
        self.tally.new_follows += len(new)
        self.tally.new_cross += crosses
        a, b = self._split(keys)
        m = self.metrics
        m.add("new_follows", len(new))
        m.add("new_follow_cross_share", crosses / len(new) if len(new) else np.nan)
        m.add("suggestion_follows", len(src))
        m.add("suggestion_follow_cross_share", cross_share(src, dst, comm))
        m.add("modularity", modularity(a, b, comm))
        m.add("follow_edges", len(keys))
        self.seconds["suggest"] += time.perf_counter() - t

    def _suggest(self, active: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Shows each of ``active`` the arm's suggestions, draws who follows whom and writes the follows through
        the Ingestor. Returns the new follows (sim indices)."""
        none = np.zeros(0, np.int64)
        if self.arm.suggestion_policy == NONE or not len(active):
            self.metrics.add("suggestions_shown", 0)
            self.metrics.add("suggestion_shown_cross_share", np.nan)
            return none, none
        pol = self.sugg.policies[self.arm.suggestion_policy]
        per = self.behaviour.showing.per_session
        rows: list[int] = []
        cand: list[int] = []
        mutual: list[float] = []
        for a in range(0, len(active), self.cfg.batch):
            users = active[a : a + self.cfg.batch]
            lists, self.ranked_by = self.sugg.rank(self.u2s[users], pol, per)
            for i, items in enumerate(lists):
                for s in items:
                    rows.append(a + i)
                    cand.append(s.user)
                    mutual.append(s.features["common_neighbours"])
        u = active[np.array(rows, np.int64)] if rows else none
        v = self.s2u[np.array(cand, np.int64)] if cand else none
        comm = self.pop.community
        same = comm[u] == comm[v]
        p = accept_prob(
            self.behaviour.acceptance, interest_similarity(self.pop.interests, u, v), same, np.array(mutual)
        )
        draw = np.random.default_rng([self.cfg.seed, 10, k]).random(len(u))
        take = draw < p
        self.tally.shown += len(u)
        self.tally.shown_cross += int((~same).sum())
        self.metrics.add("suggestions_shown", len(u))
        self.metrics.add("suggestion_shown_cross_share", float(np.mean(~same)) if len(u) else np.nan)
        src, dst = u[take], v[take]
        self.tally.taken += len(src)
        self.tally.taken_cross += int((comm[src] != comm[dst]).sum())
        if len(src):
            self.ing.ingest_batch(
                EventBatch.from_columns(
                    kind=np.full(len(src), int(EventKind.FOLLOW), np.int8),
                    user=self.u2s[src],
                    target_user=self.u2s[dst],
                    ts=np.full(len(src), self.clock_t),
                    surface=np.full(len(src), "suggestions", object),
                )
            )
        return src, dst

    def final_extra(self) -> dict[str, Any]:
        """The graph's outcome of this arm over the run."""
        tl = self.tally
        m = self.metrics.series.get("modularity", [])
        end = m[-1] if m else self.modularity_start
        return {
            "feed_policy": self.arm.feed_policy,
            "suggestion_policy": self.arm.suggestion_policy,
            "ranked_by": self.ranked_by,
            "suggestions_shown_total": tl.shown,
            "suggestion_shown_cross_share_total": tl.shown_cross / tl.shown if tl.shown else None,
            "suggestion_follows_total": tl.taken,
            "suggestion_accept_rate": tl.taken / tl.shown if tl.shown else None,
            "suggestion_follow_cross_share_total": tl.taken_cross / tl.taken if tl.taken else None,
            "new_follows_total": tl.new_follows,
            "feed_follows_total": tl.new_follows - tl.taken,
            "new_follow_cross_share_total": tl.new_cross / tl.new_follows if tl.new_follows else None,
            "feed_follow_cross_share_total": (
                (tl.new_cross - tl.taken_cross) / (tl.new_follows - tl.taken) if tl.new_follows > tl.taken else None
            ),
            "follow_edges_start": self.edges_start,
            "follow_edges_end": len(self.keys),
            "follow_cross_share_start": self.cross_start,
            "follow_cross_share_end": cross_share(*self._split(self.keys), self.pop.community),
            "modularity_start": self.modularity_start,
            "modularity_end": end,
            "modularity_change": end - self.modularity_start,
        }


# --------------------------------------------------------------------------- the run
def train_head(
    base: Base, settings: Settings | None = None, model_settings: ModelSettings | None = None
) -> dict[str, float]:
    """The learned P(follow | suggested) head trained on the shared history (its newest follows), saved in the
    base's models folder so that every world copies it: ``SuggestionService.retrain``, as ``glassfeed suggestions
    train`` runs it. Returns the training summary."""
    s = settings or packaged_settings()
    store = open_store(base.db, synchronous="OFF")
    feed = FeedService(Ingestor(store, s.ingest, clock=lambda: base.end_ts), s, clock="data")
    try:
        return SuggestionService(feed, settings=model_settings or load_model_settings()).retrain()
    finally:
        feed.close()
        store.close()


def run_suggestion_simulation(
    cfg: SimConfig,
    arms: Sequence[SuggestionArm],
    folder: Path,
    progress: Progress | None = None,
    settings: Settings | None = None,
    behaviour: SuggestionBehaviour | None = None,
    base: Base | None = None,
    head: bool = True,
    model_settings: ModelSettings | None = None,
) -> SimResult:
    """Run every arm on the same seeded society (``run_simulation`` with suggested worlds); with ``head`` the
    learned head is trained once on the shared history first (else the policies order by their fallback). The
    result's config names the arms, the behaviour and the head's training."""
    by_name = {a.name: a for a in arms}
    if len(by_name) != len(arms):
        raise ValueError("two arms with the same name")
    known = builtin_policies()
    for a in arms:
        if a.suggestion_policy != NONE and a.suggestion_policy not in known:
            raise ValueError(
                f"unknown suggestion policy {a.suggestion_policy!r}; expected one of {', '.join([NONE, *known])}"
            )
    behaviour = behaviour or load_behaviour()
    folder = Path(folder)
    say = progress or (lambda s, d, t: None)
    base = base or prepare_base(cfg, folder, say, settings)
    t = time.perf_counter()
    head_info = train_head(base, settings, model_settings) if head else None
    head_s = time.perf_counter() - t

    def make(c: SimConfig, name: str, db: Path, b: Base, s: Settings | None) -> World:
        return SuggestedWorld(c, by_name[name], db, b, s, behaviour, model_settings)

    run_cfg = replace(cfg, policies=tuple(by_name), homog_every=0)
    with warnings.catch_warnings():  # the control's suggestion shares are NaN at every step: their mean is NaN
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        result = run_simulation(run_cfg, folder, progress, base=base, settings=settings, make_world=make)
    result.seconds["head"] = head_s
    result.config["suggestions"] = {
        "arms": {a.name: {"feed_policy": a.feed_policy, "suggestion_policy": a.suggestion_policy} for a in arms},
        "behaviour": behaviour.model_dump(),
        "head": head_info,
    }
    return result


__all__ = [
    "ARM_SEP",
    "NONE",
    "Acceptance",
    "Showing",
    "SuggestedWorld",
    "SuggestionArm",
    "SuggestionBehaviour",
    "SuggestionTally",
    "accept_prob",
    "arms_for",
    "cross_share",
    "interest_similarity",
    "load_behaviour",
    "modularity",
    "run_suggestion_simulation",
    "train_head",
]
