"""Text-classification protocols: the moderation classifiers on real data, beside published numbers.

- ``tweeteval-offensive``: TweetEval ``offensive`` (OLID, OffensEval 2019): train / val / test as released.
- ``tweeteval-hate``: TweetEval ``hate`` (HatEval, SemEval-2019 Task 5): train / val / test as released.
- ``davidson``: Davidson et al. 2017 (hate / offensive / neither). No official split: a seeded stratified 80/10/10
  split (``classifiers.toml`` ``[davidson]``); two heads (``davidson-hate``, ``davidson-abusive``) make the 3-class
  decision: hate if P(hate) ≥ its threshold, else offensive if P(hate or offensive) ≥ its threshold, else neither.

Hyper-parameters and thresholds are chosen on the validation split only (``moderation.classifiers.select``: it is
given train and validation data, nothing else); the test split is read after the choice, once. Reported: test
macro-F1 (TweetEval's metric), weighted F1 (Davidson's), accuracy; throughput in posts/s on one thread (the median
of ``repeats`` runs over the whole test split, featurisation included); the model's bytes on disk.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score
from threadpoolctl import threadpool_limits

from glassfeed.evaluate.datasets import dataset_path
from glassfeed.evaluate.report import machine_info
from glassfeed.moderation import classifiers as clf
from glassfeed.settings import packaged_settings


@dataclass(frozen=True)
class TextProtocol:
    name: str
    dataset: str  # a key of evaluate.datasets.DATASETS
    tasks: tuple[str, ...]  # classifiers.toml tasks trained (one per head)
    description: str
    published: Mapping[str, Mapping[str, float]]  # row name -> metric -> value (fractions)
    source: str


_TWEETEVAL = "Barbieri et al. 2020, TweetEval (Findings of EMNLP), Table 2: test macro-F1 with the official splits"

TEXT_PROTOCOLS: dict[str, TextProtocol] = {
    "tweeteval-offensive": TextProtocol(
        "tweeteval-offensive",
        "tweeteval-offensive",
        ("offensive",),
        "TweetEval offensive (OLID): 11,916 train / 1,324 val / 860 test tweets; offensive vs not; macro-F1.",
        {
            "RoBERTa-base": {"macro_f1": 0.795},
            "RoBERTa-Twitter": {"macro_f1": 0.771},
            "FastText": {"macro_f1": 0.734},
            "LSTM": {"macro_f1": 0.717},
            "SVM": {"macro_f1": 0.523},
        },
        _TWEETEVAL,
    ),
    "tweeteval-hate": TextProtocol(
        "tweeteval-hate",
        "tweeteval-hate",
        ("hate",),
        "TweetEval hate (HatEval): 9,000 train / 1,000 val / 2,970 test tweets; hateful (immigrants, women) vs not;"
        " macro-F1.",
        {
            "LSTM": {"macro_f1": 0.526},
            "FastText": {"macro_f1": 0.506},
            "RoBERTa-Twitter": {"macro_f1": 0.499},
            "RoBERTa-base": {"macro_f1": 0.466},
            "SVM": {"macro_f1": 0.367},
        },
        _TWEETEVAL,
    ),
    "davidson": TextProtocol(
        "davidson",
        "davidson",
        ("davidson-hate", "davidson-abusive"),
        "Davidson et al. 2017: 24,783 tweets, hate / offensive / neither; our seeded stratified 80/10/10 split"
        " (no official split exists); 3-class macro- and weighted F1.",
        {"LR, one-vs-rest (their split, not ours)": {"weighted_f1": 0.90}},
        "Davidson et al. 2017 (ICWSM), section 'Results': weighted F1 0.90 on their own held-out split",
    ),
}

#: Evaluation datasets read by the text protocols (also registered in ``datasets.DATASETS``).
TEXT_DATASETS = {p.dataset: p.name for p in TEXT_PROTOCOLS.values()}


def is_text(protocol: str | None, dataset: str | None) -> bool:
    """Whether ``glassfeed evaluate`` arguments name a text protocol (or, with no protocol, a text dataset)."""
    return protocol in TEXT_PROTOCOLS or (protocol is None and dataset in TEXT_DATASETS)


def _throughput(score: Callable[[list[str]], Any], texts: list[str], repeats: int) -> dict[str, Any]:
    runs = []
    with threadpool_limits(1):
        for _ in range(repeats):
            t0 = time.perf_counter()
            score(texts)
            runs.append(time.perf_counter() - t0)
    median = statistics.median(runs)
    return {"posts_per_s": len(texts) / median, "posts": len(texts), "seconds_runs": runs, "threads": 1}


def _metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y, pred, average="weighted", zero_division=0)),
        "accuracy": float(accuracy_score(y, pred)),
    }


def davidson_decision(p_hate: np.ndarray, p_abusive: np.ndarray, t_hate: float, t_abusive: float) -> np.ndarray:
    """Davidson's classes from the two heads: 0 hate, 1 offensive, 2 neither."""
    return np.where(p_hate >= t_hate, 0, np.where(p_abusive >= t_abusive, 1, 2))


def run_text_protocol(
    name: str,
    root: str | Path | None = None,
    config: Mapping[str, Any] | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    repeats: int = 3,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Search on validation, then score test once; returns the run as a JSON-able dict (see ``to_markdown``)."""
    protocol = TEXT_PROTOCOLS[name]
    dataset_path(protocol.dataset, root)  # raises DatasetMissing early
    data_root = Path(root if root is not None else packaged_settings().data_dir)
    config = clf.load_config() if config is None else config
    start = time.perf_counter()
    heads: dict[str, Any] = {}
    models: dict[str, clf.TextClassifier] = {}
    tests: dict[str, tuple[list[str], np.ndarray]] = {}
    for task in protocol.tasks:
        sel, split = clf.train_task(task, data_root, config, grid)
        models[task] = sel.classifier
        if say is not None:
            say(
                f"{name} {task}: validation macro-F1 {sel.val_macro_f1:.4f} "
                f"at threshold {sel.classifier.threshold_:.2f}"
            )
        texts, y = split.load_test()  # read only now, after the choice
        tests[task] = (texts, y)
        proba = sel.classifier.predict_proba(texts)
        heads[task] = {
            "params": sel.params,
            "threshold": sel.classifier.threshold_,
            "valid": {"macro_f1": sel.val_macro_f1, "macro_f1_at_0.5": sel.val_macro_f1_at_half},
            "test": _metrics(y, proba >= sel.classifier.threshold_),
            "test_at_0.5": _metrics(y, proba >= 0.5),
            "search_seconds": sel.seconds,
            "trials": sel.trials,
            "sizes": {"train": len(split.train_texts), "val": len(split.val_texts), "test": len(texts)},
        }
    result: dict[str, Any]
    if name == "davidson":
        result = _davidson_result(data_root, config, models)
    else:
        (task,) = protocol.tasks
        result = {"valid": heads[task]["valid"], "test": heads[task]["test"], "threshold": heads[task]["threshold"]}
    chosen = clf.ClassifierSet(models)
    texts = next(iter(tests.values()))[0]
    with tempfile.TemporaryDirectory() as tmp:
        chosen.save(Path(tmp) / "set")
        size = chosen.nbytes_on_disk(Path(tmp) / "set")
    run = {
        "protocol": name,
        "dataset": protocol.dataset,
        "description": protocol.description,
        "result": result,
        "heads": heads,
        "published": {k: dict(v) for k, v in protocol.published.items()},
        "source": protocol.source,
        "throughput": _throughput(chosen.score, texts, repeats),
        "model_bytes": size,
        "elapsed_seconds": time.perf_counter() - start,
        "machine": machine_info(),
    }
    return run


def _davidson_result(
    data_root: Path, config: Mapping[str, Any], models: Mapping[str, clf.TextClassifier]
) -> dict[str, Any]:
    """The 3-class decision on Davidson's validation and test rows (each head's own threshold)."""
    df = clf.read_davidson(data_root / "davidson-hate-speech" / "labeled_data.csv")
    d = config["davidson"]
    classes = df["class"].to_numpy()
    part = clf.davidson_split(len(df), classes, d["train"], d["val"], d["seed"])
    texts = df["tweet"].astype(str).tolist()
    h, a = models["davidson-hate"], models["davidson-abusive"]
    out: dict[str, Any] = {"threshold": {"davidson-hate": h.threshold_, "davidson-abusive": a.threshold_}}
    for key, k in (("valid", 1), ("test", 2)):
        idx = np.flatnonzero(part == k)
        rows = [texts[i] for i in idx]
        pred = davidson_decision(h.predict_proba(rows), a.predict_proba(rows), h.threshold_, a.threshold_)
        out[key] = _metrics(classes[idx], pred)
    return out


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.1f}"


def to_markdown(run: dict[str, Any]) -> str:
    """The run as markdown: our row (validation and test), the published rows, speed, size, machine."""
    res, cols = run["result"], ("macro_f1", "weighted_f1", "accuracy")
    head = ["model", "test macro-F1", "test weighted-F1", "test accuracy", "val macro-F1", "posts/s (1 thread)", "size"]
    lines = [
        f"### {run['protocol']} ({run['dataset']})",
        "",
        run["description"],
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        "| glassfeed TF-IDF + LR | "
        + " | ".join(_pct(res["test"][c]) for c in cols)
        + f" | {_pct(res['valid']['macro_f1'])} | {run['throughput']['posts_per_s']:,.0f}"
        + f" | {run['model_bytes'] / 1e6:.1f} MB |",
    ]
    for name, m in run["published"].items():
        lines.append(f"| published {name} | " + " | ".join(_pct(m.get(c)) for c in cols) + " | | | |")
    lines += ["", "Heads (parameters and threshold chosen on validation only):", ""]
    for task, h in run["heads"].items():
        params = ", ".join(f"{k}={v}" for k, v in h["params"].items())
        lines.append(
            f"- `{task}`: threshold {h['threshold']:.2f}; val macro-F1 {h['valid']['macro_f1']:.4f} "
            f"(at 0.5: {h['valid']['macro_f1_at_0.5']:.4f}); binary test macro-F1 {h['test']['macro_f1']:.4f} "
            f"(at 0.5: {h['test_at_0.5']['macro_f1']:.4f}); {len(h['trials'])} grid points in "
            f"{h['search_seconds']:.0f} s; {params}; rows {h['sizes']}"
        )
    t, m = run["throughput"], run["machine"]
    lines += [
        "",
        f"Published numbers: {run['source']}. Scores in percent.",
        f"Throughput: median of {len(t['seconds_runs'])} runs scoring the {t['posts']:,} test posts, one thread, "
        "featurisation included. Size: the saved heads on disk (joblib, compressed).",
        f"Total {run['elapsed_seconds']:.0f} s. Machine: {m['cpu']}, {m['usable_cores']} usable of {m['cores']} "
        f"cores, {m['platform']}, Python {m['python']}.",
    ]
    return "\n".join(lines) + "\n"


def write_text_report(run: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """``<protocol>.md`` and ``<protocol>.json`` under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / f"{run['protocol']}.md", out / f"{run['protocol']}.json"
    md.write_text(to_markdown(run), encoding="utf-8")
    js.write_text(json.dumps(run, indent=2, default=float), encoding="utf-8")
    return md, js
