"""The people graph the suggestion generators read: one immutable bundle of sparse matrices over user idx.

Built from the serving state (``from_state``) for the API, or from raw edge lists (``build``) for the
link-prediction evaluation on real graphs: both paths give the generators the same inputs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from glassfeed.state import ServingState
from glassfeed.state.counters import LIKES, REPOSTS

#: The prefs key holding a person's uploaded contacts (``suggest.service.SuggestionService.set_contacts``).
CONTACTS_PREF = "contacts"


def _square(n: int, src: np.ndarray, dst: np.ndarray) -> sp.csr_matrix:
    """A binary ``n x n`` CSR with ones at ``(src, dst)`` (duplicates collapse)."""
    m = sp.csr_matrix((np.ones(len(src)), (np.asarray(src, np.int64), np.asarray(dst, np.int64))), shape=(n, n))
    m.sum_duplicates()
    m.data[:] = 1.0
    m.sort_indices()
    return m


@dataclass(frozen=True, eq=False)
class PeopleGraph:
    """Inputs of the generators, each indexed by user idx ``0..n-1`` (idx 0 may be an unused slot).

    ``follows[u, v] = 1``: u follows v. ``engaged[u, i] = 1``: u engaged with item (post) i. ``community[u]``: u's
    community, -1 when unknown. ``contacts[u, v] = 1``: u uploaded a contact whose hash is one of v's own, and both
    opted in. ``hidden[u, v] = 1``: v must never be suggested to u (blocked by u, blocking u, muted by u).
    """

    follows: sp.csr_matrix
    engaged: sp.csr_matrix
    community: np.ndarray
    contacts: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0)))
    hidden: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0)))

    def __post_init__(self) -> None:
        n = self.follows.shape[0]
        if self.follows.shape != (n, n) or self.engaged.shape[0] != n or len(self.community) != n:
            raise ValueError("follows, engaged and community must all have one row per user")
        for name in ("contacts", "hidden"):
            if getattr(self, name).shape != (n, n):
                object.__setattr__(self, name, sp.csr_matrix((n, n)))

    @property
    def n(self) -> int:
        return int(self.follows.shape[0])

    @cached_property
    def followers(self) -> sp.csr_matrix:
        """``followers[v, w] = 1``: w follows v (the transpose, as CSR)."""
        return sp.csr_matrix(self.follows.T)

    @cached_property
    def out_degree(self) -> np.ndarray:
        return np.diff(self.follows.indptr).astype(np.float64)

    @cached_property
    def in_degree(self) -> np.ndarray:
        return np.diff(self.followers.indptr).astype(np.float64)

    @cached_property
    def neighbour_degree(self) -> np.ndarray:
        """Distinct accounts each user follows or is followed by (the undirected degree Adamic–Adar and resource
        allocation divide by; on a symmetric friend graph it is the friend count)."""
        both = self.follows + self.followers
        return np.diff(sp.csr_matrix(both).indptr).astype(np.float64)

    @cached_property
    def item_popularity(self) -> np.ndarray:
        """Distinct users who engaged with each item."""
        return np.diff(sp.csc_matrix(self.engaged).indptr).astype(np.float64)

    def with_edges_removed(self, src: np.ndarray, dst: np.ndarray) -> PeopleGraph:
        """A copy without the follow edges ``src -> dst`` (a holdout); the other inputs are shared."""
        drop = _square(self.n, src, dst)
        kept = self.follows - self.follows.multiply(drop)
        kept = sp.csr_matrix(kept)
        kept.eliminate_zeros()
        return replace(self, follows=kept)


def build(
    n: int,
    follow_src: np.ndarray,
    follow_dst: np.ndarray,
    engaged_users: np.ndarray | None = None,
    engaged_items: np.ndarray | None = None,
    community: np.ndarray | None = None,
    hidden: tuple[np.ndarray, np.ndarray] | None = None,
    contacts: tuple[np.ndarray, np.ndarray] | None = None,
) -> PeopleGraph:
    """A ``PeopleGraph`` of ``n`` users from edge and engagement lists (idx ``< n``; items numbered from 0)."""
    if engaged_users is None or engaged_items is None or not len(engaged_users):
        engaged = sp.csr_matrix((n, 1))
    else:
        items = np.asarray(engaged_items, np.int64)
        engaged = sp.csr_matrix(
            (np.ones(len(items)), (np.asarray(engaged_users, np.int64), items)), shape=(n, int(items.max()) + 1)
        )
        engaged.sum_duplicates()
        engaged.data[:] = 1.0
    comm = np.full(n, -1, np.int64) if community is None else np.asarray(community, np.int64)
    h = _square(n, *hidden) if hidden is not None else sp.csr_matrix((n, n))
    c = _square(n, *contacts) if contacts is not None else sp.csr_matrix((n, n))
    return PeopleGraph(_square(n, follow_src, follow_dst), sp.csr_matrix(engaged), comm, c, h)


# ---------------------------------------------------------------------------------------------- serving state
def contact_hash(value: str) -> str:
    """How a client hashes a phone number or e-mail address before uploading it: SHA-256 of the trimmed,
    lower-cased text, as 64 hex digits. Unsalted, so a hash of a phone number can be reversed by enumeration:
    the server treats the hashes as personal data (docs/suggestions.md)."""
    return hashlib.sha256(value.strip().lower().encode("utf-8")).hexdigest()


def contact_pairs(prefs: Iterable[tuple[int, dict[str, object]]]) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) pairs where u's uploaded contact hashes include one of v's own hashes and BOTH opted in.

    ``prefs`` yields (user idx, that user's ``contacts`` prefs: ``{"opt_in": bool, "own": [...], "hashes": [...]}``).
    Anyone without ``opt_in`` is neither matched nor matchable."""
    owner: dict[str, list[int]] = {}
    wanted: list[tuple[int, list[str]]] = []
    for u, c in prefs:
        if not c.get("opt_in"):
            continue
        for h in c.get("own", []) or []:  # type: ignore[attr-defined]
            owner.setdefault(str(h), []).append(u)
        wanted.append((u, [str(h) for h in c.get("hashes", []) or []]))  # type: ignore[attr-defined]
    src: list[int] = []
    dst: list[int] = []
    for u, hashes in wanted:
        for h in hashes:
            for v in owner.get(h, ()):
                if v != u:
                    src.append(u)
                    dst.append(v)
    return np.array(src, np.int64), np.array(dst, np.int64)


def from_state(state: ServingState) -> PeopleGraph:
    """The serving state's follows, recent likes and reposts (``[state] recent_actions_per_user`` per person),
    communities, blocks and mutes, and the contacts of people who opted in. O(users) Python work for the blocks,
    mutes and contacts (sets and prefs held per person); the follows and actions are read as arrays."""
    n = state.n_users + 1
    users = np.arange(n, dtype=np.int64)
    rows, dst = state.graph.follow_pairs(users)
    e_users: list[np.ndarray] = []
    e_posts: list[np.ndarray] = []
    h_src: list[int] = []
    h_dst: list[int] = []
    prefs: list[tuple[int, dict[str, object]]] = []
    for u in range(1, n):
        for bank in (LIKES, REPOSTS):
            posts, _ = state.counters.recent_actions(bank, u)
            if len(posts):
                e_users.append(np.full(len(posts), u, np.int64))
                e_posts.append(np.asarray(posts, np.int64))
        hid = state.graph.hidden(u)
        if hid:
            h_src.extend([u] * len(hid))
            h_dst.extend(hid)
        c = state.feedback.prefs(u).get(CONTACTS_PREF)
        if isinstance(c, dict):
            prefs.append((u, c))
    eu = np.concatenate(e_users) if e_users else np.zeros(0, np.int64)
    ep = np.concatenate(e_posts) if e_posts else np.zeros(0, np.int64)
    community = np.full(n, -1, np.int64)
    community[1:] = state.users.community(users[1:])
    return build(
        n,
        users[rows],
        dst,
        eu,
        ep,
        community,
        hidden=(np.array(h_src, np.int64), np.array(h_dst, np.int64)),
        contacts=contact_pairs(prefs),
    )
