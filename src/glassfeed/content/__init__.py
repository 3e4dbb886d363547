"""Content: post text embedded at ingest by a static embedding model shipped in a PyPI package, people's content
vectors, topic inference for posts without topics, and the content feature (docs/content.md).

Below the serving state in the layers (``glassfeed.state`` holds a ``ContentVectors`` and feeds it every post and
event); the content candidate source is ``glassfeed.feed.sources.content``.
"""

from glassfeed.content.embedder import MODELS, StaticEmbedder
from glassfeed.content.similarity import HasContent, content_similarity, user_vectors
from glassfeed.content.vectors import ContentVectors

__all__ = ["MODELS", "StaticEmbedder", "ContentVectors", "HasContent", "content_similarity", "user_vectors"]
