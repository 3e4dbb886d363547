"""Compiled forests for serving: a head's LightGBM trees turned into machine code, the same numbers ~10x sooner.

A served page asks each head about ~150 candidates; LightGBM's ``predict`` walks its tree structures for each row
(31-36 ns a tree and row for ~90-tree heads on the AMD EPYC development host) and was the largest single share of
a request's CPU (docs/benchmarks.md, "Compiled trees"). ``lleaves`` compiles a LightGBM model file through LLVM
into one native function whose branches are the trees' splits, with missing values and categorical splits handled
as LightGBM does; the result agrees with ``Booster.predict`` to floating-point rounding (the trees' sum taken in another
order: at most a few 1e-15 on the heads measured, ``tests/test_compiled.py`` checks 1e-12).

Compilation takes ~1.4 s per 100-tree head (IR generation in Python, then LLVM), so it is done once when a server
loads a model version (``FeedService``, ``[serving] compiled_trees``), never per request, and the code lives only in
that process's memory: nothing is cached on disk, so no object file built for one CPU is ever run on another. The
simulator, the evaluator and training keep LightGBM's own ``predict`` (they rank thousands of users per call, where
LightGBM's threads are used). Anything that goes wrong here (``lleaves`` or ``llvmlite`` missing, a model it cannot
read) leaves that head on LightGBM: the fallback is slower, never different.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time

import lightgbm as lgb
import numpy as np

log = logging.getLogger(__name__)


class CompiledForest:
    """One booster compiled to native code; ``predict(X)`` equals ``booster.predict(X, raw_score=raw_score)`` to
    rounding. Single-threaded: a request's few hundred rows take tens of microseconds."""

    def __init__(self, booster: lgb.Booster, raw_score: bool) -> None:
        import lleaves  # imported here: serving without it falls back to LightGBM (``compile_forests``)

        self.raw_score = raw_score
        self.n_features = booster.num_feature()
        fd, path = tempfile.mkstemp(suffix=".txt", prefix="glassfeed-forest-")  # lleaves reads a model file
        try:
            with os.fdopen(fd, "w") as f:
                f.write(booster.model_to_string())
            self._model = lleaves.Model(model_file=path)
            self._model.compile(raw_score=raw_score)  # no cache file: the code is for this process's CPU only
        finally:
            os.unlink(path)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._model.predict(X, n_jobs=1)


def compile_forests(boosters: dict[str, lgb.Booster], raw_score: dict[str, bool]) -> dict[str, CompiledForest]:
    """``{head: CompiledForest}`` for every booster that compiles (``raw_score[head]``: whether that head's
    prediction reads the raw score); a head that fails is logged and left out, so it stays on LightGBM."""
    out: dict[str, CompiledForest] = {}
    t = time.perf_counter()
    for name, booster in boosters.items():
        try:
            out[name] = CompiledForest(booster, raw_score[name])
        except Exception as e:  # an optional speed-up: never a reason not to serve
            log.warning("head %s stays on LightGBM's predict: compiling its trees failed (%s: %s)", name,
                        type(e).__name__, e)  # fmt: skip
    if out:
        log.info("compiled the trees of %d heads in %.1f s", len(out), time.perf_counter() - t)
    return out


__all__ = ["CompiledForest", "compile_forests"]
