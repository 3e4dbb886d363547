"""glassfeed: a feed-ranking engine for social platforms, built so anyone can see through it."""

__version__ = "0.1.0"
