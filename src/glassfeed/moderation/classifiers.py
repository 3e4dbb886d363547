"""Text classifiers run at ingest: "is this post offensive / hateful?", as a probability per post.

A ``TextClassifier`` is one binary head: tweet normalisation → TF-IDF word 1–2-grams + ``char_wb`` n-grams
(sublinear tf), optionally WordLlama static embeddings (``glassfeed.content.embedder``) as dense columns →
logistic regression (``class_weight`` balanced or not) → the probability of the harmful class, plus a decision
``threshold_`` chosen on a validation split for macro-F1. A ``ClassifierSet`` is the named heads the engine runs:
``score(texts) -> {name: probabilities}``.

Trained here, from the research datasets in place (never copied): TweetEval ``offensive`` (OLID) and ``hate``
(HatEval), and Davidson et al. 2017 (``davidson-hate``, ``davidson-abusive``). The hyper-parameter grid, the
threshold candidates, the task definitions and the shipped heads are data: ``moderation/classifiers.toml``.
Measured quality, speed and what lost on validation: docs/classifiers.md.

Saved format (``TextClassifier.save``): one joblib file holding a dict ``{"format": "glassfeed-text-classifier",
"version": FORMAT_VERSION, "params": {...}, "threshold": float, "featurizer": <fitted sklearn FeatureUnion>,
"model": <fitted LogisticRegression>, "meta": {...}, "sklearn": "<version>"}``. A ``ClassifierSet`` folder holds
``<name>.joblib`` per head and ``classifiers.json`` (format, version, the head names in order, each head's meta).
joblib files are pickles: load only files you (or your deployment) trained.
"""

from __future__ import annotations

import itertools
import json
import re
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Self

import joblib  # type: ignore[import-untyped]
import numpy as np
import pandas as pd
import scipy.sparse as sp
import sklearn
from scipy.special import expit
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import FeatureUnion

FORMAT = "glassfeed-text-classifier"
SET_FORMAT = "glassfeed-classifier-set"
FORMAT_VERSION = 1
CONFIG = "moderation/classifiers.toml"

# --- tweet normalisation --------------------------------------------------------------------------------------------

_URL = re.compile(r"https?://\S+|www\.\S+")
_USER = re.compile(r"@\w+")
_HASHTAG = re.compile(r"#(\w+)")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=[0-9])")
_ELONGATED = re.compile(r"(\w)\1{2,}")
_ENTITY = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'"}
_ENTITIES = re.compile("|".join(map(re.escape, _ENTITY)))
_SPACE = re.compile(r"\s+")
#: words: letters/digits/apostrophes, @user, a lone #, or one other non-space character (punctuation, emoji)
TOKEN_PATTERN = r"(?u)[\w@']+|[^\w\s]"


def normalise(text: str) -> str:
    """One tweet, normalised for n-grams: HTML entities decoded, URLs → ``http``, mentions → ``@user``, hashtags
    split (``#BuildTheWall`` → ``# build the wall``), letters repeated 3+ times cut to 3 (``soooo`` → ``sooo``),
    lower-cased, whitespace collapsed. Emoji are kept as characters (the char n-grams see them)."""
    s = _ENTITIES.sub(lambda m: _ENTITY[m.group(0)], text)
    s = _URL.sub(" http ", s)
    s = _USER.sub(" @user ", s)
    s = _HASHTAG.sub(lambda m: " # " + _CAMEL.sub(" ", m.group(1)) + " ", s)
    s = _ELONGATED.sub(r"\1\1\1", s)
    return _SPACE.sub(" ", s).strip().lower()


class _Embeddings(BaseEstimator, TransformerMixin):
    """WordLlama static sentence vectors (unit length) times ``weight``, as sparse columns to join TF-IDF.

    Nothing is learned: the token table is the content model's (read from the installed ``wordllama`` package,
    offline), loaded on first use and not pickled with the classifier."""

    def __init__(self, dims: int = 256, weight: float = 1.0) -> None:
        self.dims = dims
        self.weight = weight

    def fit(self, texts: Sequence[str], y: Any = None) -> Self:
        return self

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        from glassfeed.content.embedder import StaticEmbedder  # deferred: loads tokenizers only when used

        v = StaticEmbedder(dims=self.dims).embed(list(texts))
        return sp.csr_matrix(v * np.float32(self.weight))


# --- one head -------------------------------------------------------------------------------------------------------

#: TextClassifier parameters that change the featuriser (the rest only change the linear model).
FEATURE_PARAMS = ("word_ngrams", "char_ngrams", "word_min_df", "char_min_df", "max_features", "embedding_dims")


class TextClassifier:
    """One binary head: ``fit(texts, labels)`` (labels 0/1 or bool, 1 = harmful), ``predict_proba(texts)`` → the
    probability of the harmful class per text (float64, ``(n,)``), ``predict(texts)`` → ``proba >= threshold_``.

    Learned: ``featurizer_`` (word + char TF-IDF, and embeddings when ``embedding_dims`` > 0), ``model_`` (the
    logistic regression), ``threshold_`` (0.5 after ``fit``; ``choose_threshold`` sets it from validation data),
    ``meta_`` (free-form provenance: task, data, validation scores). Raw text goes in; ``normalise`` is applied
    inside.
    """

    def __init__(
        self,
        word_ngrams: Sequence[int] = (1, 2),
        char_ngrams: Sequence[int] = (2, 5),
        word_min_df: int = 1,
        char_min_df: int = 2,
        max_features: int = 0,
        C: float = 1.0,
        class_weight: str = "balanced",
        embedding_dims: int = 0,
        embedding_weight: float = 1.0,
        max_iter: int = 2000,
    ) -> None:
        self.word_ngrams = tuple(word_ngrams)
        self.char_ngrams = tuple(char_ngrams)
        self.word_min_df = word_min_df
        self.char_min_df = char_min_df
        self.max_features = max_features
        self.C = C
        self.class_weight = class_weight
        self.embedding_dims = embedding_dims
        self.embedding_weight = embedding_weight
        self.max_iter = max_iter

    def get_params(self) -> dict[str, Any]:
        return {
            "word_ngrams": list(self.word_ngrams),
            "char_ngrams": list(self.char_ngrams),
            "word_min_df": self.word_min_df,
            "char_min_df": self.char_min_df,
            "max_features": self.max_features,
            "C": self.C,
            "class_weight": self.class_weight,
            "embedding_dims": self.embedding_dims,
            "embedding_weight": self.embedding_weight,
            "max_iter": self.max_iter,
        }

    # -- fitting, in two parts so a grid search can share the featuriser across C / class_weight --

    def make_featurizer(self) -> FeatureUnion:
        cap = self.max_features or None
        parts: list[tuple[str, Any]] = [
            (
                "word",
                TfidfVectorizer(
                    ngram_range=(self.word_ngrams[0], self.word_ngrams[1]),
                    token_pattern=TOKEN_PATTERN,
                    min_df=self.word_min_df,
                    max_features=cap,
                    sublinear_tf=True,
                    lowercase=False,
                    dtype=np.float32,
                ),
            ),
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=(self.char_ngrams[0], self.char_ngrams[1]),
                    min_df=self.char_min_df,
                    max_features=cap,
                    sublinear_tf=True,
                    lowercase=False,
                    dtype=np.float32,
                ),
            ),
        ]
        if self.embedding_dims:
            parts.append(("embedding", _Embeddings(self.embedding_dims, self.embedding_weight)))
        return FeatureUnion(parts)

    def fit_model(self, X: sp.csr_matrix, y: np.ndarray) -> LogisticRegression:
        weight = None if self.class_weight == "none" else self.class_weight
        return LogisticRegression(C=self.C, class_weight=weight, solver="liblinear", max_iter=self.max_iter).fit(X, y)

    def fit(self, texts: Sequence[str], labels: Iterable[int | bool]) -> Self:
        y = _binary(labels)
        self.featurizer_ = self.make_featurizer()
        X = self.featurizer_.fit_transform([normalise(t) for t in texts])
        self.model_ = self.fit_model(X, y)
        self.threshold_ = 0.5
        self.meta_: dict[str, Any] = {}
        return self

    def features(self, texts: Sequence[str]) -> sp.csr_matrix:
        """The fitted featuriser's rows for ``texts`` (raw text; normalised here)."""
        return self.featurizer_.transform([normalise(t) for t in texts])

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """P(harmful) per text, ``(len(texts),)`` float64."""
        return self.proba_normalised([normalise(t) for t in texts])

    def proba_normalised(self, normalised: Sequence[str]) -> np.ndarray:
        """``predict_proba`` for already normalised texts, without sklearn's per-call checks: the featuriser's parts
        applied one by one (TF-IDF by ``_tfidf``), the logistic regression as ``expit(X @ w + b)``. The same
        numbers as ``model_.predict_proba(featurizer_.transform(...))[:, 1]`` to float32 rounding
        (tests/test_classifiers.py), several times faster on one post."""
        if not len(normalised):
            return np.zeros(0)
        X = sp.hstack([_transform(t, normalised) for _, t in self.featurizer_.transformer_list], format="csr")
        z = X @ self.model_.coef_.ravel() + self.model_.intercept_[0]
        return np.asarray(expit(z), np.float64)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_proba(texts) >= self.threshold_

    def choose_threshold(self, texts: Sequence[str], labels: Iterable[int | bool], candidates: np.ndarray) -> float:
        """Set ``threshold_`` to the candidate maximising macro-F1 on (validation) ``texts``; returns that F1."""
        self.threshold_, best = best_threshold(self.predict_proba(texts), _binary(labels), candidates)
        return best

    # -- persistence --

    def save(self, path: str | Path) -> Path:
        """Write the fitted head as one joblib file (format in the module docstring); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "params": self.get_params(),
            "threshold": float(self.threshold_),
            "featurizer": self.featurizer_,
            "model": self.model_,
            "meta": self.meta_,
            "sklearn": sklearn.__version__,
        }
        joblib.dump(payload, path, compress=3)
        return path

    @classmethod
    def load(cls, path: str | Path) -> TextClassifier:
        payload = joblib.load(Path(path))
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"{path}: not a glassfeed text classifier")
        if payload.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path}: format version {payload.get('version')}, this glassfeed reads {FORMAT_VERSION}")
        clf = cls(**payload["params"])
        clf.featurizer_ = payload["featurizer"]
        clf.model_ = payload["model"]
        clf.threshold_ = float(payload["threshold"])
        clf.meta_ = dict(payload.get("meta", {}))
        return clf


def _transform(part: Any, normalised: Sequence[str]) -> sp.csr_matrix:
    return _tfidf(part, normalised) if isinstance(part, TfidfVectorizer) else part.transform(normalised)


def _tfidf(vec: TfidfVectorizer, docs: Sequence[str]) -> sp.csr_matrix:
    """``vec.transform(docs)`` for a fitted TfidfVectorizer (l2 norm, idf, optional sublinear tf), computed directly:
    the same analyser, vocabulary and idf, without the per-call validation that dominates on a few posts."""
    analyze, vocab = vec.build_analyzer(), vec.vocabulary_
    indptr, indices, counts = [0], list[int](), list[int]()
    for doc in docs:
        row: dict[int, int] = {}
        for feature in analyze(doc):
            j = vocab.get(feature)
            if j is not None:
                row[j] = row.get(j, 0) + 1
        indices.extend(row)
        counts.extend(row.values())
        indptr.append(len(indices))
    X = sp.csr_matrix(
        (np.asarray(counts, vec.dtype), np.asarray(indices, np.int64), np.asarray(indptr, np.int64)),
        shape=(len(docs), len(vocab)),
    )
    X.sort_indices()
    if vec.sublinear_tf:
        X.data = np.log(X.data) + 1
    if vec.use_idf:
        X.data *= vec.idf_[X.indices].astype(vec.dtype)
    if vec.norm == "l2":
        rows = np.repeat(np.arange(len(docs)), np.diff(X.indptr))
        norms = np.sqrt(np.bincount(rows, weights=X.data.astype(np.float64) ** 2, minlength=len(docs)))
        X.data /= norms[rows].astype(X.dtype)
    elif vec.norm is not None:
        return vec.transform(docs)
    return X


def _binary(labels: Iterable[int | bool]) -> np.ndarray:
    y = np.asarray(list(labels) if not isinstance(labels, np.ndarray) else labels).astype(np.int64)
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0/1 (1 = harmful)")
    return y


def best_threshold(proba: np.ndarray, y: np.ndarray, candidates: np.ndarray) -> tuple[float, float]:
    """(threshold, macro-F1) maximising macro-F1 of ``proba >= threshold`` against ``y``; ties → the candidate
    closest to 0.5 (the least tuned)."""
    scores = np.array([f1_score(y, proba >= t, average="macro", zero_division=0) for t in candidates])
    top = np.flatnonzero(scores >= scores.max() - 1e-12)
    i = top[np.argmin(np.abs(candidates[top] - 0.5))]
    return float(candidates[i]), float(scores[i])


# --- the set the engine runs ----------------------------------------------------------------------------------------


class ClassifierSet:
    """Named heads, scored together: ``score(texts) -> {name: P(harmful) per text}``, batch-first.

    Names say what the head's training labels mean, nothing broader: ``offensive`` (OLID: insults, threats,
    profanity), ``hate`` (HatEval: hate against immigrants or women), and optionally ``davidson-hate`` /
    ``davidson-abusive``. There is no ``toxicity`` head: no toxicity-labelled data is available here.
    """

    def __init__(self, classifiers: Mapping[str, TextClassifier]) -> None:
        self.classifiers = dict(classifiers)

    @property
    def names(self) -> list[str]:
        return list(self.classifiers)

    @property
    def thresholds(self) -> dict[str, float]:
        return {n: c.threshold_ for n, c in self.classifiers.items()}

    def score(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """P(harmful) per head for every text, each ``(len(texts),)`` float64 in input order."""
        texts = list(texts)
        normalised = [normalise(t) for t in texts]  # once for every head
        return {name: clf.proba_normalised(normalised) for name, clf in self.classifiers.items()}

    def flags(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Per head, whether each text is at or above that head's validation-chosen threshold."""
        return {n: p >= self.classifiers[n].threshold_ for n, p in self.score(texts).items()}

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, clf in self.classifiers.items():
            clf.save(folder / f"{name}.joblib")
        manifest = {
            "format": SET_FORMAT,
            "version": FORMAT_VERSION,
            "names": self.names,
            "heads": {n: {"threshold": c.threshold_, "params": c.get_params(), **c.meta_} for n, c in self.items()},
        }
        (folder / "classifiers.json").write_text(json.dumps(manifest, indent=2, default=float), encoding="utf-8")
        return folder

    def items(self) -> Iterable[tuple[str, TextClassifier]]:
        return self.classifiers.items()

    @classmethod
    def load(cls, folder: str | Path) -> ClassifierSet:
        folder = Path(folder)
        manifest = json.loads((folder / "classifiers.json").read_text(encoding="utf-8"))
        if manifest.get("format") != SET_FORMAT or manifest.get("version") != FORMAT_VERSION:
            raise ValueError(f"{folder}: not a version-{FORMAT_VERSION} glassfeed classifier set")
        return cls({n: TextClassifier.load(folder / f"{n}.joblib") for n in manifest["names"]})

    def nbytes_on_disk(self, folder: str | Path) -> int:
        folder = Path(folder)
        return (
            sum((folder / f"{n}.joblib").stat().st_size for n in self.names)
            + (folder / "classifiers.json").stat().st_size
        )


# --- configuration (classifiers.toml) -------------------------------------------------------------------------------


def load_config(path: str | Path | None = None) -> dict[str, Any]:
    """``classifiers.toml`` (the packaged one unless ``path``)."""
    if path is None:
        text = resources.files("glassfeed").joinpath(CONFIG).read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    return tomllib.loads(text)


def grid_points(config: Mapping[str, Any], grid: Mapping[str, Sequence[Any]] | None = None) -> list[dict[str, Any]]:
    """Every TextClassifier parameter dict the search tries: ``[defaults]`` overridden by each point of ``grid``
    (``config["grid"]`` unless given), in a fixed order."""
    grid = config.get("grid", {}) if grid is None else grid
    keys = list(grid)
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        params = dict(config.get("defaults", {}))
        params.update(zip(keys, values))
        if not params.get("embedding_dims"):
            params["embedding_weight"] = config.get("defaults", {}).get("embedding_weight", 1.0)
        out.append(params)
    unique = {json.dumps(p, sort_keys=True): p for p in out}  # the embedding-less points collapse
    return list(unique.values())


def threshold_candidates(config: Mapping[str, Any]) -> np.ndarray:
    t = config.get("threshold", {})
    return np.linspace(t.get("start", 0.05), t.get("stop", 0.95), int(t.get("steps", 91)))


# --- data (read in place under the data directory; never copied) ----------------------------------------------------


@dataclass
class TextSplit:
    """One binary task's train / validation texts and labels; test is loaded only by ``load_test``."""

    name: str
    train_texts: list[str]
    train_labels: np.ndarray
    val_texts: list[str]
    val_labels: np.ndarray
    load_test: Callable[[], tuple[list[str], np.ndarray]]
    stats: dict[str, Any] = field(default_factory=dict)


def _read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")


def read_tweeteval(folder: Path, split: str) -> tuple[list[str], np.ndarray]:
    """TweetEval ``{split}_text.txt`` / ``{split}_labels.txt`` (one tweet / one integer label per line)."""
    labels = np.array([int(x) for x in _read_lines(folder / f"{split}_labels.txt") if x.strip()], np.int64)
    texts = _read_lines(folder / f"{split}_text.txt")[: len(labels)]
    if len(texts) != len(labels):
        raise ValueError(f"{folder}/{split}: {len(texts)} texts but {len(labels)} labels")
    return texts, labels


def read_davidson(csv: Path) -> pd.DataFrame:
    """Davidson et al.'s ``labeled_data.csv``: columns ``tweet`` and ``class`` (0 hate, 1 offensive, 2 neither)."""
    return pd.read_csv(csv, usecols=["class", "tweet"])


def davidson_split(n_rows: int, classes: np.ndarray, train: float, val: float, seed: int) -> np.ndarray:
    """Per row 0 (train), 1 (validation) or 2 (test): within each class, a seeded shuffle and the first
    ``round(train * n)`` rows to train, the next ``round(val * n)`` to validation, the rest to test."""
    rng = np.random.default_rng(seed)
    part = np.full(n_rows, 2, np.int64)
    for c in np.unique(classes):
        rows = rng.permutation(np.flatnonzero(classes == c))
        a, b = round(train * len(rows)), round((train + val) * len(rows))
        part[rows[:a]], part[rows[a:b]] = 0, 1
    return part


def load_task(task: str, data_root: str | Path, config: Mapping[str, Any] | None = None) -> TextSplit:
    """A task of ``classifiers.toml`` as a ``TextSplit`` read from ``data_root`` (the shared data folder)."""
    config = load_config() if config is None else config
    spec = config["tasks"][task]
    root = Path(data_root)
    if spec["source"] == "tweeteval":
        folder = root / "tweeteval" / spec["folder"]
        tr, ytr = read_tweeteval(folder, "train")
        va, yva = read_tweeteval(folder, "val")
        return TextSplit(task, tr, ytr, va, yva, lambda: read_tweeteval(folder, "test"), {"source": str(folder)})
    if spec["source"] == "davidson":
        csv = root / "davidson-hate-speech" / "labeled_data.csv"
        df = read_davidson(csv)
        d = config.get("davidson", {})
        part = davidson_split(len(df), df["class"].to_numpy(), d["train"], d["val"], d["seed"])
        texts = df["tweet"].astype(str).tolist()
        y = np.isin(df["class"].to_numpy(), spec["positive"]).astype(np.int64)

        def take(k: int) -> tuple[list[str], np.ndarray]:
            idx = np.flatnonzero(part == k)
            return [texts[i] for i in idx], y[idx]

        (tr, ytr), (va, yva) = take(0), take(1)
        return TextSplit(task, tr, ytr, va, yva, lambda: take(2), {"source": str(csv), "split": dict(d)})
    raise ValueError(f"task {task!r}: unknown source {spec['source']!r}")


# --- validation-only search -----------------------------------------------------------------------------------------


@dataclass
class Selection:
    """The search's outcome: the winning head (fitted on train, threshold from validation) and every trial."""

    classifier: TextClassifier
    params: dict[str, Any]
    val_macro_f1: float
    val_macro_f1_at_half: float
    trials: list[dict[str, Any]]
    seconds: float


def select(
    train_texts: Sequence[str],
    train_labels: np.ndarray,
    val_texts: Sequence[str],
    val_labels: np.ndarray,
    points: Sequence[Mapping[str, Any]],
    candidates: np.ndarray,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> Selection:
    """Fit every parameter point on train, choose its threshold on validation, keep the best validation macro-F1
    (ties: the earlier point). Only train and validation data are passed in: nothing here can see a test split."""
    start = time.perf_counter()
    ytr, yva = _binary(train_labels), _binary(val_labels)
    tr_n, va_n = [normalise(t) for t in train_texts], [normalise(t) for t in val_texts]
    cache: dict[str, tuple[FeatureUnion, sp.csr_matrix, sp.csr_matrix]] = {}
    trials: list[dict[str, Any]] = []
    best: tuple[float, TextClassifier, dict[str, Any], float] | None = None
    for params in points:
        clf = TextClassifier(**params)
        key = json.dumps({k: params.get(k) for k in (*FEATURE_PARAMS, "embedding_weight")}, sort_keys=True)
        if key not in cache:
            feat = clf.make_featurizer()
            Xtr = feat.fit_transform(tr_n)
            cache[key] = (feat, Xtr, feat.transform(va_n))
        feat, Xtr, Xva = cache[key]
        clf.featurizer_, clf.model_, clf.meta_ = feat, clf.fit_model(Xtr, ytr), {}
        proba = clf.model_.predict_proba(Xva)[:, 1]
        clf.threshold_, f1 = best_threshold(proba, yva, candidates)
        at_half = float(f1_score(yva, proba >= 0.5, average="macro", zero_division=0))
        trial = {
            "params": dict(params),
            "val_macro_f1": f1,
            "val_macro_f1_at_half": at_half,
            "threshold": clf.threshold_,
        }
        trials.append(trial)
        if on_trial is not None:
            on_trial(trial)
        if best is None or f1 > best[0] + 1e-12:
            best = (f1, clf, dict(params), at_half)
    if best is None:
        raise ValueError("empty parameter grid")
    f1, clf, params, at_half = best
    return Selection(clf, params, f1, at_half, trials, time.perf_counter() - start)


def train_task(
    task: str,
    data_root: str | Path,
    config: Mapping[str, Any] | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[Selection, TextSplit]:
    """Search ``task``'s grid on its validation split; the winner stays fitted on train only (``train_classifiers``)."""
    config = load_config() if config is None else config
    split = load_task(task, data_root, config)
    sel = select(
        split.train_texts,
        split.train_labels,
        split.val_texts,
        split.val_labels,
        grid_points(config, grid),
        threshold_candidates(config),
        on_trial,
    )
    sel.classifier.meta_ = {
        "task": task,
        "description": config["tasks"][task].get("description", ""),
        "trained_on": f"{split.stats.get('source', '')} train split ({len(split.train_texts)} texts)",
        "val_macro_f1": sel.val_macro_f1,
        "val_macro_f1_at_half": sel.val_macro_f1_at_half,
        "grid_points": len(sel.trials),
    }
    return sel, split


def train_classifiers(
    data_root: str | Path,
    out_dir: str | Path,
    tasks: Sequence[str] | None = None,
    config: Mapping[str, Any] | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    say: Callable[[str], None] | None = None,
) -> ClassifierSet:
    """Train the shipped heads (``classifiers.toml`` ``shipped`` unless ``tasks``) and save them to ``out_dir``.

    Each head is the validation winner as fitted on its TRAIN split, with the threshold chosen on validation: exactly
    the model ``glassfeed evaluate --protocol tweeteval-*`` scores on test. It is not refitted on train + validation,
    which would leave its threshold unvalidated (the extra 10% of data moved validation macro-F1 by less than the
    threshold does; docs/classifiers.md)."""
    config = load_config() if config is None else config
    names = list(config["shipped"] if tasks is None else tasks)
    heads = {}
    for name in names:
        sel, _ = train_task(name, data_root, config, grid)
        heads[name] = sel.classifier
        if say is not None:
            say(
                f"{name}: validation macro-F1 {sel.val_macro_f1:.4f} (threshold {sel.classifier.threshold_:.2f}; "
                f"{len(sel.trials)} grid points, {sel.seconds:.0f} s) params {sel.params}"
            )
    out = ClassifierSet(heads)
    out.save(out_dir)
    return out
