"""Moderation text classifiers: real fitting on a hand-made corpus, persistence, validation-only selection, and the
``glassfeed evaluate`` text protocols end to end on the real data (small grid; skipped when the data are absent)."""

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from glassfeed.evaluate import datasets, textclass
from glassfeed.evaluate.cli import register
from glassfeed.moderation import classifiers as clf

RUDE = [
    "you are a stupid idiot",
    "shut up you idiot",
    "what a stupid moron",
    "idiot loser go away",
    "you moron, stupid take",
    "such an idiot, shut up",
    "loser and moron",
    "stupid stupid idiot",
]
KIND = [
    "what a lovely day",
    "thanks for the kind words",
    "lovely photo, thank you",
    "have a great day friend",
    "kind and lovely people",
    "great game today, thanks",
    "thank you so much friend",
    "a lovely kind gesture",
]
TEXTS = RUDE + KIND
LABELS = [1] * len(RUDE) + [0] * len(KIND)
SMALL_GRID = {"C": [1.0, 4.0], "class_weight": ["balanced"], "embedding_dims": [0]}


def test_normalise_handles_tweet_artefacts():
    s = clf.normalise("@Someone sooooo #BuildTheWall &amp; see https://t.co/x")
    assert s == "@user sooo # build the wall & see http"


def test_probabilities_order_harmful_above_harmless():
    model = clf.TextClassifier(C=4.0).fit(TEXTS, LABELS)
    p = model.predict_proba(["you stupid idiot", "thank you, lovely day", ""])
    assert p.shape == (3,) and ((p >= 0) & (p <= 1)).all()
    assert p[0] > 0.5 > p[1]
    assert model.predict(["you stupid idiot"]).tolist() == [True]
    assert model.predict_proba([]).shape == (0,)


def test_wordllama_columns_round_trip(tmp_path):
    model = clf.TextClassifier(embedding_dims=64, embedding_weight=2.0).fit(TEXTS, LABELS)
    assert (
        model.features(["idiot"]).shape[1]
        == len(model.featurizer_.transformer_list[0][1].vocabulary_)
        + len(model.featurizer_.transformer_list[1][1].vocabulary_)
        + 64
    )
    probe = ["stupid moron", "thank you friend"]
    loaded = clf.TextClassifier.load(model.save(tmp_path / "e.joblib"))
    np.testing.assert_array_equal(loaded.predict_proba(probe), model.predict_proba(probe))
    assert loaded.predict_proba(probe)[0] > loaded.predict_proba(probe)[1]


def test_labels_must_be_binary():
    with pytest.raises(ValueError, match="0/1"):
        clf.TextClassifier().fit(TEXTS, [2] * len(TEXTS))


def test_save_load_round_trip_gives_identical_scores(tmp_path):
    model = clf.TextClassifier(C=2.0, class_weight="none").fit(TEXTS, LABELS)
    model.threshold_ = 0.37
    model.meta_ = {"task": "tiny"}
    probe = ["idiot", "lovely friend", "a new text with no known words", "🙂"]
    loaded = clf.TextClassifier.load(model.save(tmp_path / "m.joblib"))
    np.testing.assert_array_equal(loaded.predict_proba(probe), model.predict_proba(probe))
    assert loaded.threshold_ == 0.37 and loaded.meta_ == {"task": "tiny"} and loaded.C == 2.0

    heads = clf.ClassifierSet({"offensive": model, "kind": clf.TextClassifier().fit(TEXTS, [1 - y for y in LABELS])})
    again = clf.ClassifierSet.load(heads.save(tmp_path / "set"))
    assert again.names == ["offensive", "kind"]
    a, b = heads.score(probe), again.score(probe)
    assert set(a) == {"offensive", "kind"}
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    np.testing.assert_allclose(a["offensive"], model.predict_proba(probe))  # the set's batch path = the head's
    assert again.flags(probe)["offensive"].tolist() == (a["offensive"] >= 0.37).tolist()
    assert heads.score([]) == {"offensive": pytest.approx(np.zeros(0)), "kind": pytest.approx(np.zeros(0))}


def test_fast_tfidf_equals_sklearn_transform():
    model = clf.TextClassifier(embedding_dims=0).fit(TEXTS, LABELS)
    probe = [clf.normalise(t) for t in ["you stupid idiot!!", "", "   ", "qqqq zzzz", "lovely 🙂 day", *TEXTS]]
    for _, part in model.featurizer_.transformer_list:
        fast, ref = clf._tfidf(part, probe), part.transform(probe)
        assert fast.shape == ref.shape and fast.dtype == ref.dtype
        np.testing.assert_allclose(fast.toarray(), ref.toarray(), atol=1e-6)
    ref = model.model_.predict_proba(model.featurizer_.transform(probe))[:, 1]
    np.testing.assert_allclose(model.proba_normalised(probe), ref, atol=1e-6)


def test_load_rejects_other_files(tmp_path):
    import joblib

    joblib.dump({"format": "something-else"}, tmp_path / "x.joblib")
    with pytest.raises(ValueError, match="not a glassfeed text classifier"):
        clf.TextClassifier.load(tmp_path / "x.joblib")


def test_threshold_maximises_validation_macro_f1():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.35, 0.4, 0.7, 0.9])
    t, f1 = clf.best_threshold(p, y, np.linspace(0.05, 0.95, 91))
    assert 0.35 < t <= 0.4 and f1 == 1.0


def test_grid_comes_from_the_toml():
    config = clf.load_config()
    assert set(config["shipped"]) <= set(config["tasks"])
    points = clf.grid_points(config)
    assert len(points) == len({json.dumps(p, sort_keys=True) for p in points})
    assert {p["C"] for p in points} == set(config["grid"]["C"])
    # a grid override: 2 values of C, everything else from [defaults]
    small = clf.grid_points(config, {"C": [0.5, 2.0]})
    assert [p["C"] for p in small] == [0.5, 2.0] and all(p["word_ngrams"] == [1, 2] for p in small)


def _fake_tweeteval(root, flip_test: bool):
    """A tiny TweetEval-shaped task folder; the test labels can be flipped (poisoned)."""
    folder = root / "tweeteval" / "offensive"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def write(split, n):
        idx = rng.integers(0, len(TEXTS), n)
        texts = [f"{TEXTS[i]} {rng.integers(1000)}" for i in idx]
        labels = [LABELS[i] for i in idx]
        if split == "test" and flip_test:
            labels = [1 - y for y in labels]
        (folder / f"{split}_text.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
        (folder / f"{split}_labels.txt").write_text("\n".join(map(str, labels)) + "\n", encoding="utf-8")

    write("train", 60)
    write("val", 30)
    write("test", 30)
    return root


def test_selection_never_reads_test_labels(tmp_path):
    """Poisoned (flipped) test labels change the test score but not one bit of what was chosen."""
    clean = textclass.run_text_protocol(
        "tweeteval-offensive", root=_fake_tweeteval(tmp_path / "a", False), grid=SMALL_GRID, repeats=1
    )
    poisoned = textclass.run_text_protocol(
        "tweeteval-offensive", root=_fake_tweeteval(tmp_path / "b", True), grid=SMALL_GRID, repeats=1
    )
    a, b = clean["heads"]["offensive"], poisoned["heads"]["offensive"]
    assert a["params"] == b["params"] and a["threshold"] == b["threshold"] and a["trials"] == b["trials"]
    assert a["valid"] == b["valid"]
    assert clean["result"]["test"]["macro_f1"] == 1.0 and poisoned["result"]["test"]["macro_f1"] == 0.0


def test_davidson_split_is_stratified_and_seeded():
    classes = np.repeat([0, 1, 2], [100, 700, 200])
    part = clf.davidson_split(len(classes), classes, 0.8, 0.1, seed=42)
    for c, n in ((0, 100), (1, 700), (2, 200)):
        assert np.bincount(part[classes == c], minlength=3).tolist() == [round(0.8 * n), round(0.1 * n), round(0.1 * n)]
    assert (clf.davidson_split(len(classes), classes, 0.8, 0.1, seed=42) == part).all()
    assert (clf.davidson_split(len(classes), classes, 0.8, 0.1, seed=7) != part).any()
    d = textclass.davidson_decision(np.array([0.9, 0.1, 0.1]), np.array([0.9, 0.9, 0.1]), 0.5, 0.5)
    assert d.tolist() == [0, 1, 2]


@pytest.fixture()
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:
        pass

    return app


def test_cli_text_protocol_errors_exit_2(app, tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSFEED_DATA", str(tmp_path / "absent"))
    result = CliRunner().invoke(app, ["evaluate", "--protocol", "tweeteval-hate"])
    assert result.exit_code == 2 and "dataset 'tweeteval-hate' not found" in result.output
    result = CliRunner().invoke(app, ["evaluate", "--protocol", "tweeteval-hate", "--dataset", "davidson"])
    assert result.exit_code == 2 and "runs on dataset 'tweeteval-hate'" in result.output


# --- the real data (small grid, < 60 s together) ---------------------------------------------------------------------

needs_data = pytest.mark.skipif(
    not all(datasets.available(d) for d in ("tweeteval-hate", "tweeteval-offensive", "davidson")),
    reason="TweetEval / Davidson not under the data directory",
)
REAL_GRID = {"C": [1.0], "class_weight": ["balanced"], "char_ngrams": [[3, 5]], "embedding_dims": [0]}


@pytest.fixture()
def small_grid(monkeypatch):
    """The packaged config with a one-point grid and fewer threshold candidates, for speed."""
    config = clf.load_config()
    config["grid"] = REAL_GRID
    config["defaults"] = {**config["defaults"], "max_features": 50_000, "word_ngrams": [1, 1]}
    monkeypatch.setattr(clf, "load_config", lambda path=None: config)
    return config


@pytest.mark.data
@needs_data
def test_cli_tweeteval_hate_writes_its_report(app, tmp_path, small_grid):
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["evaluate", "--protocol", "tweeteval-hate", "--out", str(out)])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "tweeteval-hate.json").read_text())
    head = run["heads"]["hate"]
    assert head["sizes"] == {"train": 9000, "val": 1000, "test": 2970}
    assert 0.65 < head["valid"]["macro_f1"] < 0.9  # HatEval validation: learnable
    assert 0.3 < run["result"]["test"]["macro_f1"] < 0.8  # its test split is shifted (docs/classifiers.md)
    assert run["throughput"]["posts_per_s"] > 500 and run["model_bytes"] > 0
    md = (out / "tweeteval-hate.md").read_text()
    assert "| glassfeed TF-IDF + LR |" in md and "| published LSTM |" in md


@pytest.mark.data
@needs_data
def test_davidson_protocol_end_to_end(small_grid):
    run = textclass.run_text_protocol("davidson", repeats=1)
    assert set(run["heads"]) == {"davidson-hate", "davidson-abusive"}
    sizes = run["heads"]["davidson-hate"]["sizes"]
    assert sizes["train"] + sizes["val"] + sizes["test"] == 24_783
    assert run["result"]["test"]["weighted_f1"] > 0.8 and run["result"]["test"]["macro_f1"] > 0.5
    assert "weighted_f1" in run["published"]["LR, one-vs-rest (their split, not ours)"]


def test_train_classifiers_saves_a_loadable_set(tmp_path):
    root = _fake_tweeteval(tmp_path / "data", False)
    heads = clf.train_classifiers(root, tmp_path / "models", tasks=["offensive"], grid=SMALL_GRID)
    assert heads.names == ["offensive"]
    manifest = json.loads((tmp_path / "models" / "classifiers.json").read_text())
    assert manifest["names"] == ["offensive"] and "val_macro_f1" in manifest["heads"]["offensive"]
    loaded = clf.ClassifierSet.load(tmp_path / "models")
    probe = ["you stupid idiot", "lovely day, thanks"]
    np.testing.assert_array_equal(loaded.score(probe)["offensive"], heads.score(probe)["offensive"])
    assert loaded.thresholds == heads.thresholds
