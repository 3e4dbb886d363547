"""Candidate sources: each returns ``Candidates`` for a batch of users, tagged with its name and a source score."""

from collections.abc import Callable

from glassfeed.feed.candidates import Candidates
from glassfeed.feed.sources.cold_start import cold_start
from glassfeed.feed.sources.collaborative import CollaborativeIndex, EaseRetriever, collaborative
from glassfeed.feed.sources.content import ContentIndex, content
from glassfeed.feed.sources.following import following
from glassfeed.feed.sources.social_proof import social_proof
from glassfeed.feed.sources.trending import recent_posts, trending

#: Source name -> ``f(state, users, now, k, cutoff, **context) -> Candidates``.
SOURCE_FUNCS: dict[str, Callable[..., Candidates]] = {
    "following": following,
    "collaborative": collaborative,
    "social_proof": social_proof,
    "trending": trending,
    "cold_start": cold_start,
    "content": content,
}

__all__ = [
    "SOURCE_FUNCS",
    "CollaborativeIndex",
    "EaseRetriever",
    "ContentIndex",
    "recent_posts",
    "following",
    "collaborative",
    "social_proof",
    "trending",
    "cold_start",
    "content",
]
