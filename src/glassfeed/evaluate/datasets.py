"""Loaders for the real datasets under the settings' ``data_dir`` (read in place, never copied)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from glassfeed.settings import packaged_settings


class DatasetMissing(FileNotFoundError):
    """A dataset's files are not under the data directory."""


_TWEETEVAL_FILES = tuple(f"{s}_{k}.txt" for s in ("train", "val", "test") for k in ("text", "labels"))

#: Dataset name -> (folder under data_dir(), files that must exist).
DATASETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ml-100k": ("ml-100k", ("u.data",)),
    "ml-1m": ("ml-1m", ("derived/ratings_dense_item_no_timestamp.tsv",)),
    "lastfm": ("hetrec2011-lastfm-2k", ("user_artists.dat", "user_friends.dat")),
    "ciao": ("epinions-ciao-tang/ciao", ("rating.tsv", "trustnetwork.tsv")),
    "epinions": ("epinions-ciao-tang/epinions", ("rating.tsv", "trustnetwork.tsv")),
    "ciaodvd": ("ciaodvd", ("movie-ratings.txt", "trusts.txt")),
    "filmtrust": ("filmtrust", ("ratings.txt", "trust.txt")),
    # text classification (evaluate/textclass.py)
    "tweeteval-offensive": ("tweeteval/offensive", _TWEETEVAL_FILES),
    "tweeteval-hate": ("tweeteval/hate", _TWEETEVAL_FILES),
    "davidson": ("davidson-hate-speech", ("labeled_data.csv",)),
}

#: The trust-network datasets ``load_trust`` reads (each: ratings plus directed "user trusts user" links).
TRUST_DATASETS = ("ciao", "epinions", "ciaodvd", "filmtrust")


def dataset_path(name: str, root: str | Path | None = None) -> Path:
    """The dataset's folder, after checking its files exist; raises ``DatasetMissing`` otherwise."""
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    folder, files = DATASETS[name]
    path = Path(root if root is not None else packaged_settings().data_dir) / folder
    missing = [f for f in files if not (path / f).is_file()]
    if missing:
        raise DatasetMissing(
            f"dataset {name!r} not found under {path} (missing {', '.join(missing)}); "
            "set GLASSFEED_DATA to the folder holding the datasets"
        )
    return path


def available(name: str, root: str | Path | None = None) -> bool:
    """Whether ``name``'s files are present (tests use this to skip)."""
    try:
        dataset_path(name, root)
    except DatasetMissing:
        return False
    return True


def load_ml100k(root: str | Path | None = None) -> pd.DataFrame:
    """MovieLens-100k ``u.data`` in file order: columns user, item, rating, timestamp (original ids)."""
    path = dataset_path("ml-100k", root) / "u.data"
    return pd.read_csv(path, sep="\t", header=None, names=["user", "item", "rating", "timestamp"])


def load_ml1m(root: str | Path | None = None) -> pd.DataFrame:
    """MovieLens-1M ratings (our derived copy: no timestamps, dense item ids 1..3706): user, item, rating."""
    path = dataset_path("ml-1m", root) / "derived/ratings_dense_item_no_timestamp.tsv"
    df = pd.read_csv(path, sep="\t")
    return df.rename(columns={"user_id": "user", "item_dense_id": "item"})[["user", "item", "rating"]]


def load_lastfm(root: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """HetRec Last.fm 2K: (plays: user, item, plays) and (friends: user, friend; symmetric, both directions)."""
    path = dataset_path("lastfm", root)
    plays = pd.read_csv(path / "user_artists.dat", sep="\t").rename(
        columns={"userID": "user", "artistID": "item", "weight": "plays"}
    )
    friends = pd.read_csv(path / "user_friends.dat", sep="\t").rename(columns={"userID": "user", "friendID": "friend"})
    return plays, friends


def load_trust(name: str, root: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A trust dataset (``TRUST_DATASETS``): (ratings: user, item, rating) and (trust: user, friend), original ids.

    Trust links are directed: ``user`` trusts ``friend``. Ciao and Epinions are Tang et al.'s 2012 ``.mat`` files
    as TSVs; CiaoDVD and FilmTrust are Guo et al.'s original text files. Rows are as in the files (duplicates
    and Ciao's 34 zero ratings included): protocols decide what to keep.
    """
    if name not in TRUST_DATASETS:
        raise KeyError(f"unknown trust dataset {name!r}; expected one of {', '.join(TRUST_DATASETS)}")
    path = dataset_path(name, root)
    if name in ("ciao", "epinions"):
        ratings = pd.read_csv(path / "rating.tsv", sep="\t", usecols=["userid", "productid", "rating"])
        ratings = ratings.rename(columns={"userid": "user", "productid": "item"})
        trust = pd.read_csv(path / "trustnetwork.tsv", sep="\t").rename(
            columns={"truster": "user", "trustee": "friend"}
        )
    elif name == "ciaodvd":
        cols = ["user", "item", "genre", "review", "rating", "date"]
        ratings = pd.read_csv(path / "movie-ratings.txt", header=None, names=cols, usecols=["user", "item", "rating"])
        trust = pd.read_csv(path / "trusts.txt", header=None, names=["user", "friend", "value"])
    else:
        ratings = pd.read_csv(path / "ratings.txt", sep=" ", header=None, names=["user", "item", "rating"])
        trust = pd.read_csv(path / "trust.txt", sep=" ", header=None, names=["user", "friend", "value"])
    return ratings[["user", "item", "rating"]], trust[["user", "friend"]]
