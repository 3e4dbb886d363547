"""``SuggestionService``: "people you may know" for one person or many, beside the ``FeedService``.

Reads the feed's serving state under its lock (never the store on the request path), caches the people graph per
state version (``last_seq``, the number of users and this service's contact uploads), ranks candidates with the
policy's head or generator, keeps the policy's share of places for other communities, and explains each pick.
Every list served to a person (``suggest``) is logged: one ``suggestion_impression`` event per suggested account,
queued on the FeedService's impression writer (``FeedService.queue_events``: the same group commit as the feed's
impressions), so that the head can learn from what was shown and then followed (``model.logged_examples``).
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from glassfeed.domain import EventBatch, EventKind
from glassfeed.feed.service import FeedService
from glassfeed.suggest import explain
from glassfeed.suggest import generators as gen
from glassfeed.suggest.graph import CONTACTS_PREF, PeopleGraph, from_state
from glassfeed.suggest.model import FollowModel, train_from_store
from glassfeed.suggest.policy import ModelSettings, SuggestionPolicy, builtin_policies, load_model_settings

MODEL_FOLDER = "suggestions"
#: The ``surface`` of a logged suggestion impression and of a follow made from a suggestion list.
SURFACE = "suggestions"


def format_list_id(policy: str) -> str:
    """The ``request_id`` of one served suggestion list: ``s:<policy>:<16 hex>`` (the feed's page ids are
    ``<policy>:<session>.<page>``; the ``s:`` tells a list from a page)."""
    return f"s:{policy}:{uuid.uuid4().hex[:16]}"


class SuggestionError(ValueError):
    """A bad suggestion request: ``field`` and ``status`` for the 4xx answer."""

    def __init__(self, field: str, reason: str, status: int = 422) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason, self.status = field, reason, status


@dataclass(frozen=True)
class Suggestion:
    user: int
    score: float
    reasons: list[str]
    found_by: list[str]
    features: dict[str, float]
    cross_community: bool

    def as_json(self, svc: FeedService) -> dict[str, Any]:
        st = svc.state.users
        return {
            "user": st.id_of(self.user),
            "handle": st.handle_of(self.user),
            "score": round(self.score, 6),
            "explanation": explain.sentence(self.reasons),
            "reasons": self.reasons,
            "found_by": self.found_by,
            "cross_community": self.cross_community,
            "features": {k: (None if np.isnan(v) else round(v, 6)) for k, v in self.features.items()},
        }


@dataclass
class SuggestionService:
    feed: FeedService
    policies: dict[str, SuggestionPolicy] = field(default_factory=builtin_policies)
    settings: ModelSettings = field(default_factory=load_model_settings)

    def __post_init__(self) -> None:
        self.folder = self.feed.models_folder / MODEL_FOLDER
        self.model = FollowModel.load(self.folder)
        self._lock = threading.Lock()
        self._contacts_version = 0
        self._cached: tuple[tuple[int, int, int], PeopleGraph] | None = None

    # ------------------------------------------------------------------ inputs
    def graph(self) -> PeopleGraph:
        """The people graph of the current state (rebuilt when the state or an uploaded contact list changed)."""
        with self.feed.lock:
            st = self.feed.state
            key = (st.last_seq, st.n_users, self._contacts_version)
            if self._cached is None or self._cached[0] != key:
                self._cached = (key, from_state(st))
            return self._cached[1]

    def policy(self, name: str | None) -> SuggestionPolicy:
        pol = self.policies.get(name or "growth")
        if pol is None:
            raise SuggestionError(
                "policy", f"unknown suggestion policy {name!r}; expected one of {sorted(self.policies)}"
            )
        return pol

    # ------------------------------------------------------------------ ranking
    def rank(self, users: np.ndarray, policy: SuggestionPolicy, limit: int) -> tuple[list[list[Suggestion]], str]:
        """Up to ``limit`` suggestions for each of ``users`` (idx), best first, and what ordered them."""
        users = np.asarray(users, np.int64)
        g = self.graph()
        c = gen.candidates(g, users, policy.candidates.depth())
        by = policy.ranking.by
        if by == "learned" and self.model is not None:
            score = self.model.predict(c.X)
            ranked_by = f"learned P(follow | suggested), trained on {self.model.trained_on_}"
        else:
            name = policy.ranking.fallback if by == "learned" else by
            score = np.nan_to_num(c.feature(name))
            ranked_by = name if by != "learned" else f"{name} (no trained head yet)"
        order = np.lexsort((c.cand, -g.in_degree[c.cand], -score, c.row))
        starts = np.searchsorted(c.row[order], np.arange(len(users) + 1))
        cu, cv = g.community[users[c.row]], g.community[c.cand]
        cross = (cu >= 0) & (cv >= 0) & (cu != cv)
        out: list[list[Suggestion]] = []
        for r in range(len(users)):
            idx = order[starts[r] : starts[r + 1]]
            keep = int(policy.mix.reserved(limit)) if g.community[users[r]] >= 0 else 0
            reserved = idx[cross[idx]][:keep]
            rest = idx[~np.isin(idx, reserved)][: limit - len(reserved)]
            picked = idx[np.isin(idx, np.concatenate([reserved, rest]))]  # back in ranking order
            kept = set(reserved.tolist())
            out.append([self._one(c, i, score, cross, i in kept) for i in picked.tolist()])
        return out, ranked_by

    def _one(self, c: gen.Candidates, i: int, score: np.ndarray, cross: np.ndarray, reserved: bool) -> Suggestion:
        why = explain.reasons(c.X[i], c.found_by[i])
        if reserved:
            why.append("from outside your community (this policy keeps places for people outside it)")
        return Suggestion(
            user=int(c.cand[i]),
            score=float(score[i]),
            reasons=why,
            found_by=[g for g, hit in zip(gen.GENERATORS, c.found_by[i].tolist()) if hit],
            features=dict(zip(gen.FEATURES, c.X[i].tolist())),
            cross_community=bool(cross[i]),
        )

    def suggest(
        self, user_id: str, policy: str | None = None, limit: int | None = None, *, log_impressions: bool = True
    ) -> dict[str, Any]:
        """The API's answer for one person, with the list's ``request_id``; with ``log_impressions`` one
        ``suggestion_impression`` per item is queued (at the feed's clock)."""
        pol = self.policy(policy)
        n = pol.limits.default_limit if limit is None else limit
        if not 1 <= n <= pol.limits.max_limit:
            raise SuggestionError("limit", f"must be between 1 and {pol.limits.max_limit} for policy {pol.name!r}")
        u = self.feed.user_idx(user_id)
        lists, ranked_by = self.rank(np.array([u]), pol, n)
        request_id = format_list_id(pol.name)
        if log_impressions and lists[0]:
            self.log_impressions(u, [s.user for s in lists[0]], request_id, self.feed.now())
        return {
            "user": user_id,
            "policy": pol.name,
            "ranked_by": ranked_by,
            "request_id": request_id,
            "items": [s.as_json(self.feed) for s in lists[0]],
        }

    def log_impressions(self, user: int, shown: list[int], request_id: str, ts: float) -> None:
        """Queue one ``suggestion_impression`` per account in ``shown`` (idx, in list order: ``position``) for
        ``user``, written with the feed's next impression flush."""
        k = len(shown)
        self.feed.queue_events(
            EventBatch.from_columns(
                kind=np.full(k, int(EventKind.SUGGESTION_IMPRESSION), np.int8),
                user=np.full(k, user, np.int64),
                target_user=np.asarray(shown, np.int64),
                ts=np.full(k, ts),
                position=np.arange(k, dtype=np.int32),
                surface=[SURFACE] * k,
                request_id=[request_id] * k,
            )
        )

    # ------------------------------------------------------------------ contacts and training
    def contacts(self, user_idx: int) -> dict[str, Any]:
        with self.feed.lock:
            c = self.feed.state.feedback.prefs(user_idx).get(CONTACTS_PREF) or {}
        return {"opt_in": bool(c.get("opt_in")), "own": len(c.get("own", [])), "hashes": len(c.get("hashes", []))}

    def set_contacts(self, user_id: str, opt_in: bool, own: list[str], hashes: list[str]) -> dict[str, Any]:
        """Save a person's contact choice in their prefs: with ``opt_in`` false nothing of the lists is kept."""
        u = self.feed.user_idx(user_id)
        with self.feed.lock:
            prefs = dict(self.feed.state.feedback.prefs(u))
        prefs[CONTACTS_PREF] = (
            {"opt_in": True, "own": sorted(set(own)), "hashes": sorted(set(hashes))} if opt_in else {"opt_in": False}
        )
        self.feed.ingestor.set_prefs(user_id, prefs)
        with self._lock:
            self._contacts_version += 1
        return self.contacts(u)

    def retrain(self) -> dict[str, Any]:
        """Train the head (``model.train_from_store``: on the logged suggestions when enough are logged, else on the
        store's newest follows), save it and serve it; the summary's ``trained_on`` says which."""
        self.feed.flush_impressions()  # what was served so far is in the log
        depth = self.policies["growth"].candidates.depth() if "growth" in self.policies else {}
        model, info = train_from_store(self.feed.store, self.graph(), depth, self.settings, now=self.feed.now())
        model.save(self.folder)
        self.model = model
        return info
