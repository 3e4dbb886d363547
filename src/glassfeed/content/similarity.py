"""Cosine between a person's content vector and a post's embedding, per (user, post) pair: the content feature."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from glassfeed.content.vectors import ContentVectors


class _Interests(Protocol):
    def interests_of(self, u: int) -> list[int]: ...


class HasContent(Protocol):
    """What the content reads need of the serving state (``glassfeed.state.ServingState``)."""

    @property
    def content(self) -> ContentVectors: ...

    @property
    def users(self) -> _Interests: ...


def user_vectors(state: HasContent, users: np.ndarray, now: float) -> np.ndarray:
    """Each person's unit content vector at ``now`` (zeros when content is disabled or nothing is known)."""
    users = np.asarray(users, np.int64)
    if not state.content.enabled:
        return np.zeros((len(users), state.content.dims), np.float32)
    interests = [state.users.interests_of(u) for u in users.tolist()]
    return state.content.user_vectors(users, now, interests)


def content_similarity(
    state: HasContent, users: np.ndarray, row: np.ndarray, posts: np.ndarray, now: float
) -> np.ndarray:
    """``cos(content vector of users[row[i]], embedding of posts[i])`` per pair (float64; 0 where the person has
    no content vector or the post no embedding, and everywhere when content is disabled). One content vector per
    person of the batch, so the cost is one gather and one row-wise dot product over the pairs."""
    if not state.content.enabled or not len(row):
        return np.zeros(len(row))
    uvec = user_vectors(state, users, now)
    emb = state.content.embeddings(np.asarray(posts, np.int64))
    return np.einsum("ij,ij->i", uvec[np.asarray(row, np.int64)], emb).astype(np.float64)
