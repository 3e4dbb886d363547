"""Loaders for the real datasets under the settings' ``data_dir`` (read in place, never copied)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from glassfeed.settings import packaged_settings


class DatasetMissing(FileNotFoundError):
    """A dataset's files are not under the data directory."""


#: Dataset name -> (folder under data_dir(), files that must exist).
DATASETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ml-100k": ("ml-100k", ("u.data",)),
    "ml-1m": ("ml-1m", ("derived/ratings_dense_item_no_timestamp.tsv",)),
    "lastfm": ("hetrec2011-lastfm-2k", ("user_artists.dat", "user_friends.dat")),
}


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
