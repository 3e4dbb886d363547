"""What moderation decided each post may do on each surface: the serving state's ``visibility`` part.

The moderation lever (``glassfeed.moderation``) computes it from the moderation log, the classifier scores and
its rules, and installs it here; the feed reads it on the request path (``feed/filters.py``: drop, followers only,
interstitial; ``feed/mixing.py``: the downrank factor; ``feed/explain.py``: the reasons and community notes).

Per surface, two arrays over post idx: the action's code (``ACTIONS``, most severe last) and its downrank factor.
Only posts with an action have reasons (a dict), so an unmoderated post costs one byte and one float per surface.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Where a post can appear; each surface has its own moderation outcome (X's safety level per surface).
SURFACES: tuple[str, ...] = ("home", "search", "notifications", "public")
#: What moderation can do to a post on a surface, least severe first (the code is the index).
ACTIONS: tuple[str, ...] = ("none", "label", "downrank", "followers_only", "interstitial", "drop")
ACTION_CODE: dict[str, int] = {a: i for i, a in enumerate(ACTIONS)}


class Visibility:
    """Per surface: action code (int8) and downrank factor (float32) by post idx; reasons for moderated posts."""

    def __init__(self) -> None:
        self._code = {s: np.zeros(1, np.int8) for s in SURFACES}
        self._factor = {s: np.ones(1, np.float32) for s in SURFACES}
        self._reasons: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self._notes: dict[int, list[dict[str, Any]]] = {}
        self.any = False  # whether any post has an action (the filters skip the lookups otherwise)

    def _ensure(self, n: int) -> None:
        size = len(self._code[SURFACES[0]])
        if n < size:
            return
        grow = max(n + 1, 2 * size)
        for s in SURFACES:
            code, factor = np.zeros(grow, np.int8), np.ones(grow, np.float32)
            code[:size], factor[:size] = self._code[s], self._factor[s]
            self._code[s], self._factor[s] = code, factor

    def install(self, post: int, outcome: dict[str, tuple[str, float, list[dict[str, Any]]]]) -> None:
        """Replace ``post``'s outcome: surface -> (action, downrank factor, reasons); surfaces not named get none."""
        self._ensure(post)
        for s in SURFACES:
            action, factor, reasons = outcome.get(s, ("none", 1.0, []))
            self._code[s][post] = ACTION_CODE[action]
            self._factor[s][post] = factor if action == "downrank" else 1.0
            if action != "none":
                self._reasons[(s, post)] = reasons
                self.any = True
            else:
                self._reasons.pop((s, post), None)

    def set_notes(self, notes: dict[int, list[dict[str, Any]]]) -> None:
        """Replace every post's shown community notes (post idx -> notes as the API shows them)."""
        self._notes = notes

    def _at(self, surface: str, posts: np.ndarray) -> np.ndarray:
        code = self._code[surface]
        p = np.asarray(posts, np.int64)
        return np.where(p < len(code), code[np.minimum(p, len(code) - 1)], 0)

    def action(self, posts: np.ndarray, surface: str) -> np.ndarray:
        """The action code of each post on ``surface`` (``ACTIONS``; 0 for posts never moderated)."""
        return self._at(surface, posts)

    def dropped(self, posts: np.ndarray, surface: str) -> np.ndarray:
        return self._at(surface, posts) == ACTION_CODE["drop"]

    def followers_only(self, posts: np.ndarray, surface: str) -> np.ndarray:
        return self._at(surface, posts) == ACTION_CODE["followers_only"]

    def interstitial(self, posts: np.ndarray, surface: str) -> np.ndarray:
        return self._at(surface, posts) == ACTION_CODE["interstitial"]

    def factor(self, posts: np.ndarray, surface: str) -> np.ndarray:
        """The downrank factor of each post on ``surface`` (1.0 unless moderation downranked it)."""
        f = self._factor[surface]
        p = np.asarray(posts, np.int64)
        return np.where(p < len(f), f[np.minimum(p, len(f) - 1)], 1.0).astype(np.float64)

    def reasons(self, post: int, surface: str) -> list[dict[str, Any]]:
        """Why the post has its action on ``surface`` (rules and decisions, as the moderation lever wrote them)."""
        return list(self._reasons.get((surface, post), ()))

    def outcome(self, post: int) -> dict[str, dict[str, Any]]:
        """Every surface's action, factor and reasons for one post (the author's "why" and the audit)."""
        out = {}
        for s in SURFACES:
            code = int(self._at(s, np.array([post]))[0])
            if code:
                out[s] = {
                    "action": ACTIONS[code],
                    "factor": float(self.factor(np.array([post]), s)[0]),
                    "reasons": self.reasons(post, s),
                }
        return out

    def notes(self, post: int) -> list[dict[str, Any]]:
        """The community notes shown on ``post`` (the bridging model's verdict)."""
        return list(self._notes.get(post, ()))
