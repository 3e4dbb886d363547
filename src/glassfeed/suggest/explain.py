"""Why each account is suggested, in words built from the feature values the ranking read.

Every fact that is non-zero for the pair is said, in a fixed order (the strongest social evidence first): the
numbers are the pair's own feature values, never a template's. Adamic–Adar and resource allocation weigh the same
paths ``common_neighbours`` counts, so that sentence covers all three.
"""

from __future__ import annotations

import numpy as np

from glassfeed.suggest.generators import FEATURES, GENERATORS


def _people(n: int, verb_one: str, verb_many: str) -> str:
    return f"1 person {verb_one}" if n == 1 else f"{n:,} people {verb_many}"


def reasons(x: np.ndarray, found_by: np.ndarray) -> list[str]:
    """The sentences for one candidate: ``x`` its feature row (``FEATURES``), ``found_by`` its generator flags."""
    f = {name: float(v) for name, v in zip(FEATURES, x.tolist())}
    out: list[str] = []
    if f["contacts"] > 0:
        out.append("is in the contacts you uploaded (you both chose to use uploaded contacts)")
    if f["follows_you"] > 0:
        out.append("follows you; you don't follow them back")
    cn = round(f["common_neighbours"])
    if cn > 0:
        out.append(_people(cn, "you follow follows them", "you follow follow them"))
    cf = round(f["co_followed"])
    if cf > 0:
        out.append(_people(cf, "who follows you also follows them", "who follow you also follow them"))
    ce = round(f["co_engaged"])
    if ce > 0:
        out.append(f"you both engaged with {'the same post' if ce == 1 else f'{ce:,} of the same posts'}")
    if f["same_community"] == 1.0:
        followers = int(f["their_followers"])
        out.append(f"in your community ({followers:,} follower{'s' if followers != 1 else ''})")
    if not out:  # a generator proposed it but none of the facts above holds (cannot happen with the shipped set)
        by = [name for name, hit in zip(GENERATORS, found_by.tolist()) if hit]
        out.append(f"suggested by {', '.join(by) or 'the ranking'}")
    return out


def sentence(parts: list[str]) -> str:
    """The reasons as one sentence: "12 people you follow follow them; you both engaged with 3 of the same posts"."""
    text = "; ".join(parts)
    return text[:1].upper() + text[1:]
