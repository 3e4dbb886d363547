"""Settings: paths, keys and limits from defaults.toml, an optional glassfeed.toml and env vars."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_toml_resource(name: str) -> dict[str, Any]:
    """Read a TOML file shipped inside the package (e.g. ``"defaults.toml"``, ``"policies/engagement.toml"``)."""
    return tomllib.loads(resources.files("glassfeed").joinpath(name).read_text("utf-8"))


@dataclass(frozen=True, slots=True)
class IngestLimits:
    max_batch: int
    max_text_chars: int
    max_id_chars: int
    max_future_skew_s: float
    max_dwell_ms: float
    batch_atomic: bool
    bulk_chunk: int = 100_000


@dataclass(frozen=True, slots=True)
class Settings:
    db_path: Path
    synchronous: str
    data_dir: Path
    api_key: str | None
    limits: IngestLimits
    raw: dict[str, Any]


def load_settings(config_path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Defaults, then the TOML file at ``config_path`` / ``$GLASSFEED_CONFIG``, then env vars, then overrides."""
    raw = load_toml_resource("defaults.toml")
    path = config_path or os.environ.get("GLASSFEED_CONFIG")
    if path:
        raw = _merge(raw, tomllib.loads(Path(path).read_text("utf-8")))
    db = overrides.get("db_path") or os.environ.get("GLASSFEED_DB") or raw["store"]["path"]
    data = overrides.get("data_dir") or data_dir()
    key = overrides.get("api_key") or os.environ.get("GLASSFEED_API_KEY")
    lim = raw["ingest"]
    return Settings(
        db_path=Path(db),
        synchronous=str(raw["store"]["synchronous"]).upper(),
        data_dir=Path(data),
        api_key=key,
        limits=IngestLimits(
            max_batch=int(lim["max_batch"]),
            max_text_chars=int(lim["max_text_chars"]),
            max_id_chars=int(lim["max_id_chars"]),
            max_future_skew_s=float(lim["max_future_skew_s"]),
            max_dwell_ms=float(lim["max_dwell_ms"]),
            batch_atomic=bool(lim["batch_atomic"]),
            bulk_chunk=int(lim.get("bulk_chunk", 100_000)),
        ),
        raw=raw,
    )


@lru_cache(maxsize=1)
def default_limits() -> IngestLimits:
    return load_settings().limits


def data_dir() -> Path:
    """Where the real datasets live (``$GLASSFEED_DATA`` or ``../shared/data`` beside the project root)."""
    env = os.environ.get("GLASSFEED_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent.parent / "shared" / "data"
        if (parent / "pyproject.toml").exists() and cand.exists():
            return cand
    return Path(load_toml_resource("defaults.toml")["data"]["shared_dir"])
