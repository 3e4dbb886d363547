"""Run a protocol: tune each model on validation data, refit, score the test split, collect the numbers.

Model names are registry names (``retrieval.MODELS``) or ``a+b`` (``a+b+c``, ...): a blend of the tuned members
whose weights on every member after the first are chosen on validation data too, each from the protocol's
``"+"`` grid.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from glassfeed.evaluate.protocols import PROTOCOLS, Protocol, Split
from glassfeed.evaluate.tuning import GridResult, evaluate_model, fit_model, grid_search, param_grid
from glassfeed.retrieval import MODELS, Blend, Recommender

#: The validation metric every protocol selects on.
SELECT_ON = "ndcg@10"


class UnknownName(KeyError):
    """An unknown protocol, dataset or model name (the message lists the valid ones)."""

    def __str__(self) -> str:
        return str(self.args[0])


def check_models(names: Sequence[str]) -> None:
    """Raise ``UnknownName`` unless every name (or each part of an ``a+b`` blend) is in the registry."""
    for name in names:
        for part in name.split("+"):
            if part not in MODELS:
                raise UnknownName(f"unknown model {part!r}; expected one of {', '.join(MODELS)} (or a+b)")


@dataclass
class ModelResult:
    model: str
    params: dict[str, Any]
    metrics: dict[str, float]
    valid_score: float  # SELECT_ON on the validation split, for the chosen params
    fit_seconds: float  # median training time of the final model (sum over a blend's members)
    rank_seconds: float  # median time to score + take the top k for every test user
    fit_runs: list[float] = field(default_factory=list)  # every timing behind the medians
    rank_runs: list[float] = field(default_factory=list)
    trials: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Tuned:
    params: dict[str, Any]
    valid_score: float
    tune_model: Recommender  # fitted on split.tune_train
    final_model: Recommender  # fitted on split.train
    fit_runs: list[float]
    trials: list[dict[str, Any]]


class ProtocolRun:
    """One protocol on one split; tunes models on demand and caches them (blends reuse their members)."""

    def __init__(
        self, protocol: Protocol, split: Split, on_trial: Callable[[str], None] | None = None, repeats: int = 1
    ):
        self.protocol, self.split, self.repeats = protocol, split, max(1, repeats)
        self.on_trial = on_trial or (lambda name: None)
        self.tuned: dict[str, _Tuned] = {}

    def _valid(self, model: Recommender) -> dict[str, float]:
        s = self.split
        return evaluate_model(model, s.tune_train, s.tune_valid, self.protocol.k, s.tune_exclude, s.tune_filter_items)

    def tune(self, name: str) -> _Tuned:
        if name in self.tuned:
            return self.tuned[name]
        s = self.split
        if "+" in name:
            tuned = self._tune_blend(name)
        else:
            grid = self.protocol.grids.get(name, {})
            result: GridResult = grid_search(
                MODELS[name],
                grid,
                s.tune_train,
                s.tune_valid,
                k=self.protocol.k,
                metric=SELECT_ON,
                exclude=s.tune_exclude,
                filter_items=s.tune_filter_items,
                social=s.social,
                on_trial=lambda params, scores: self.on_trial(name),
            )
            if s.tune_train is s.train:  # RecBole-style: the tuned model already is the final model
                final, runs = result.best_model, [result.best_fit_seconds]
            else:
                final = MODELS[name](**result.best_params)
                runs = [fit_model(final, s.train, s.social)]
            # refit copies only to time them: the medians in the report rest on `repeats` runs
            runs += [fit_model(MODELS[name](**result.best_params), s.train, s.social) for _ in range(self.repeats - 1)]
            tuned = _Tuned(result.best_params, result.best_score, result.best_model, final, runs, result.trials)
        self.tuned[name] = tuned
        return tuned

    def _tune_blend(self, name: str) -> _Tuned:
        parts = [self.tune(part) for part in name.split("+")]
        trials, best = [], None
        for others in blend_weights(self.protocol, len(parts)):
            ws = [1.0, *others]
            scores = self._valid(Blend.of([p.tune_model for p in parts], ws))
            self.on_trial(name)
            trials.append({"params": {"weight": others[0]} if len(others) == 1 else {"weights": ws}, "valid": scores})
            if best is None or scores[SELECT_ON] > best[1]:
                best = (ws, scores[SELECT_ON])
        assert best is not None
        ws, score = best
        tune_model = Blend.of([p.tune_model for p in parts], ws)
        final = Blend.of([p.final_model for p in parts], ws)
        params = {"members": {part: p.params for part, p in zip(name.split("+"), parts)}, "weights": ws}
        runs = [sum(p.fit_runs[i] for p in parts) for i in range(self.repeats)]
        return _Tuned(params, score, tune_model, final, runs, trials)

    def evaluate(self, name: str) -> ModelResult:
        tuned = self.tune(name)
        s = self.split
        rank_runs = []
        metrics: dict[str, float] = {}
        for _ in range(self.repeats):
            t0 = time.perf_counter()
            metrics = evaluate_model(tuned.final_model, s.train, s.test, self.protocol.k, s.exclude, s.filter_items)
            rank_runs.append(time.perf_counter() - t0)
        self.on_trial(name)
        return ModelResult(
            name,
            tuned.params,
            metrics,
            tuned.valid_score,
            statistics.median(tuned.fit_runs),
            statistics.median(rank_runs),
            tuned.fit_runs,
            rank_runs,
            tuned.trials,
        )


def blend_weights(protocol: Protocol, n_members: int) -> list[tuple[float, ...]]:
    """The weights a blend of ``n_members`` tries on validation for every member after the first (whose weight is
    1): each independently from the protocol's ``"+"`` grid, so ``a+b+c`` tries every (w_b, w_c) pair."""
    weights = protocol.grids.get("+", {}).get("weight", [1.0])
    return list(itertools.product(weights, repeat=n_members - 1))


def n_steps(protocol: Protocol, name: str) -> int:
    """Progress steps for one model: its grid points (for a blend: its weight combinations) plus the test run."""
    if "+" in name:
        return len(blend_weights(protocol, len(name.split("+")))) + 1
    return len(param_grid(protocol.grids.get(name, {}))) + 1


def run_protocol(
    protocol: str | Protocol,
    models: Sequence[str] | None = None,
    root: str | Path | None = None,
    on_trial: Callable[[str], None] | None = None,
    on_result: Callable[[ModelResult], None] | None = None,
    repeats: int = 1,
) -> dict[str, Any]:
    """Build the split, then tune, refit and test each model; returns a JSON-ready dict of everything measured.

    ``repeats`` > 1 refits each final model and re-ranks the test users that many times in all, and reports
    the median fit and rank times (the metrics do not change: every model here is deterministic).
    """
    if isinstance(protocol, str):
        if protocol not in PROTOCOLS:
            raise UnknownName(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
        protocol = PROTOCOLS[protocol]
    names = list(models or protocol.models)
    check_models(names)
    t0 = time.perf_counter()
    split = protocol.build(root)
    build_seconds = time.perf_counter() - t0
    run = ProtocolRun(protocol, split, on_trial, repeats)
    results = []
    for name in names:
        result = run.evaluate(name)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return {
        "protocol": protocol.name,
        "dataset": protocol.dataset,
        "description": protocol.description,
        "source": protocol.source,
        "k": protocol.k,
        "columns": list(protocol.columns),
        "selected_on": f"validation {SELECT_ON}",
        "timing_repeats": max(1, repeats),
        "stats": split.stats,
        "build_seconds": build_seconds,
        "elapsed_seconds": time.perf_counter() - t0,
        "results": [asdict(r) for r in results],
        "published": protocol.published,
    }
