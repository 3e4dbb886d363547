"""Real public datasets into glassfeed's model (users, posts, follows, events), read in place, never copied.

``import_dataset(name, ingestor)`` dispatches to one module per source; each reads the files' documented
formats (see the dataset's SOURCE.md) and writes through the Ingestor.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from glassfeed.ingest import Ingestor
from glassfeed.settings import packaged_settings

#: name -> (module, function, folder under data_dir)
DATASETS: dict[str, tuple[str, str, str]] = {
    "ml-100k": ("glassfeed.importers.movielens", "import_ml100k", "ml-100k"),
    "ml-1m": ("glassfeed.importers.movielens", "import_ml1m", "ml-1m"),
    "lastfm": ("glassfeed.importers.lastfm", "import_lastfm", "hetrec2011-lastfm-2k"),
    "reddit": ("glassfeed.importers.text_posts", "import_reddit", "reddit-top-2.5m-sample"),
    "tweets": ("glassfeed.importers.text_posts", "import_tweets", "fivethirtyeight-twitter-ratio"),
}


def dataset_path(name: str, data_dir: Path | None = None) -> Path:
    """Folder of dataset ``name``; raises FileNotFoundError when it is absent."""
    folder = Path(data_dir or packaged_settings().data_dir) / DATASETS[name][2]
    if not folder.is_dir():
        raise FileNotFoundError(2, f"dataset {name!r} not found (set GLASSFEED_DATA)", str(folder))
    return folder


def import_dataset(
    name: str,
    ingestor: Ingestor,
    data_dir: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    **kw: object,
) -> dict[str, int]:
    """Import dataset ``name`` into the ingestor's store; returns counts written."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    mod, fn, _ = DATASETS[name]
    func = getattr(importlib.import_module(mod), fn)
    return func(dataset_path(name, data_dir), ingestor, progress=progress, **kw)
