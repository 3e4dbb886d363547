"""Who is in which experiment and arm: deterministic, by hashes of the person's id, with one layer per surface.

- **Layers.** Each surface (``feed``, ``notifications``, ``ads``) is a layer with its own salt. A person's place in
  a layer is ``bucket = blake2b(salt, layer, user) mod BUCKETS``; a running experiment holds a contiguous range of
  its layer's buckets (``traffic`` x ``BUCKETS`` of them, given when it starts: ``free_range``), and the ranges of
  one layer never overlap, so a person is in at most one running experiment per layer. Different layers hash with
  different salts, so a person's feed experiment says nothing about their ads experiment: experiments on different
  surfaces overlap independently.
- **Arms.** Within an experiment the arm is chosen by ``u = blake2b(salt, layer, experiment, user) / 2^64`` in
  [0, 1) against the arms' cumulative shares: a hash of (experiment, user), independent of the bucket.

Nothing is stored to decide it: any worker, any day, gives the same answer for the same definition. The people
are their external ids (strings), so a copy of the store assigns them alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from glassfeed.experiments.model import BUCKETS, Experiment, bucket_range

_SCALE = float(2**64)


def _hash64(*parts: str) -> int:
    h = hashlib.blake2b(digest_size=8)
    for p in parts:
        b = p.encode("utf-8")
        h.update(len(b).to_bytes(4, "big"))  # length-prefixed: ("ab", "c") and ("a", "bc") differ
        h.update(b)
    return int.from_bytes(h.digest(), "big")


def layer_bucket(layer: str, user_id: str, salt: str = "") -> int:
    """The person's bucket in ``layer`` (0 to ``BUCKETS`` - 1)."""
    return _hash64(salt, "layer", layer, user_id) % BUCKETS


def arm_unit(layer: str, experiment: str, user_id: str, salt: str = "") -> float:
    """The person's draw in [0, 1) for ``experiment``'s arms."""
    return _hash64(salt, "arm", layer, experiment, user_id) / _SCALE


def arm_of(exp: Experiment, user_id: str, salt: str = "") -> str | None:
    """The arm of ``exp`` the person is in, or None when it is not running or the person is outside its buckets."""
    return arm_in(exp, user_id, salt) if exp.running else None


def arm_in(exp: Experiment, user_id: str, salt: str = "") -> str | None:
    """The arm the person is (or was) in by ``exp``'s buckets, whatever its state now; None outside them or when it
    never held any (a draft)."""
    if exp.buckets is None:
        return None
    lo, hi = exp.buckets
    if not lo <= layer_bucket(exp.layer, user_id, salt) < hi:
        return None
    u = arm_unit(exp.layer, exp.name, user_id, salt)
    edge = 0.0
    for arm in exp.spec.arms:
        edge += float(arm.share)
        if u < edge:
            return arm.name
    return exp.spec.arms[-1].name  # shares summing to 1 - 1e-12: the last arm takes the rounding


def assign(experiments: Iterable[Experiment], user_id: str, salt: str = "") -> dict[str, tuple[Experiment, str]]:
    """Per layer, the running experiment the person is in and their arm (layers they are in none of are absent)."""
    out: dict[str, tuple[Experiment, str]] = {}
    for exp in experiments:
        if exp.layer in out:
            continue
        arm = arm_of(exp, user_id, salt)
        if arm is not None:
            out[exp.layer] = (exp, arm)
    return out


def free_range(running: Iterable[Experiment], layer: str, traffic: float) -> tuple[int, int] | None:
    """The first range of ``layer``'s buckets, as many as ``traffic`` needs, that no running experiment holds;
    None when none is free (the layer is full)."""
    need = bucket_range(traffic)
    held = sorted(e.buckets for e in running if e.layer == layer and e.running and e.buckets)
    start = 0
    for lo, hi in held:
        if lo - start >= need:
            return start, start + need
        start = max(start, hi)
    return (start, start + need) if BUCKETS - start >= need else None


__all__ = ["arm_in", "arm_of", "arm_unit", "assign", "free_range", "layer_bucket"]
