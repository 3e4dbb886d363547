"""Bulk import of users, posts or events from JSONL or CSV, in atomic chunks of ``max_batch``.

Events take a vectorised path: a chunk's ids and kinds are resolved with pandas/numpy and written with
``Ingestor.ingest_columns``. Any chunk that the vectorised checks reject, or whose events carry client ids
(idempotency keys), goes through ``Ingestor.ingest_events`` instead, so the checks and error messages are
the Ingestor's own. Errors name the file line, field and reason.
"""

from __future__ import annotations

import csv
import math
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import repeat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from glassfeed.domain import EITHER_TARGET_KINDS, USER_TARGET_KINDS, EventKind
from glassfeed.ingest import IngestError, Ingestor, parse_ts

Progress = Callable[[str, int, int], None]
EVENT_FIELDS = ("id", "kind", "user", "post", "target_user", "ts", "value", "surface", "position", "request_id")
LIST_FIELDS = ("interests", "topics", "labels")  # CSV: "a|b|c"
NUM_FIELDS = {"community": int, "quality": float, "divisiveness": float, "value": float, "position": int}


class BulkError(ValueError):
    """A bad row: names the file, line, field and reason (nothing of that chunk was written)."""


@dataclass
class BulkResult:
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    chunks: int = 0
    fast_chunks: int = 0


# ---------------------------------------------------------------- readers
def read_records(path: Path) -> tuple[list[Any], list[int]]:
    """All records of a .jsonl/.csv file with their 1-based line numbers."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return _read_jsonl(path)
    if suffix == ".csv":
        return _read_csv(path)
    raise ValueError(f"{path}: unsupported file type {suffix!r} (use .jsonl or .csv)")


def _read_jsonl(path: Path) -> tuple[list[Any], list[int]]:
    raw = path.read_bytes().split(b"\n")
    lines = [i + 1 for i, ln in enumerate(raw) if ln.strip()]
    body = [raw[i - 1] for i in lines]
    try:
        return orjson.loads(b"[" + b",".join(body) + b"]"), lines
    except orjson.JSONDecodeError:
        pass
    for ln, b in zip(lines, body):  # find the bad line
        try:
            orjson.loads(b)
        except orjson.JSONDecodeError as e:
            raise BulkError(f"{path}:{ln}: malformed JSON: {e}") from None
    raise BulkError(f"{path}: malformed JSON")


def _csv_value(field: str, v: str) -> Any:
    if v == "":
        return None
    if field in LIST_FIELDS:
        return [t for t in v.split("|") if t]
    conv = NUM_FIELDS.get(field)
    if conv is not None or field in ("ts", "created_at"):
        try:
            f = float(v)
        except ValueError:
            return v  # left for the Ingestor to reject (or an ISO time)
        return int(f) if conv is int and f.is_integer() else f
    return v


def _read_csv(path: Path) -> tuple[list[Any], list[int]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames:
            raise BulkError(f"{path}:1: missing CSV header")
        recs, lines = [], []
        for row in reader:
            if None in row:
                raise BulkError(f"{path}:{reader.line_num}: more values than header columns")
            recs.append({k: cv for k, v in row.items() if (cv := _csv_value(k, v or "")) is not None})
            lines.append(reader.line_num)
    return recs, lines


# ---------------------------------------------------------------- import
def import_path(path: Path | str, ingestor: Ingestor, kind: str = "events", progress: Progress | None = None,
                chunk: int | None = None) -> BulkResult:
    """Import ``path`` (.jsonl/.csv) as users, posts or events; raises BulkError at the first bad chunk."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "no such file", str(path))
    recs, lines = read_records(path)
    return import_records(recs, ingestor, kind, lines=lines, source=str(path), progress=progress, chunk=chunk)


def import_records(recs: list[Any], ingestor: Ingestor, kind: str = "events", *, lines: list[int] | None = None,
                   source: str = "<records>", progress: Progress | None = None,
                   chunk: int | None = None) -> BulkResult:
    """Import already-parsed records; ``lines[i]`` is record i's line number for error messages."""
    say = progress or (lambda stage, done, total: None)
    size = chunk or (ingestor.limits.bulk_chunk if kind == "events" else ingestor.limits.max_batch)
    lines = lines or list(range(1, len(recs) + 1))
    res = BulkResult(rows=len(recs))
    if kind == "events":
        with ingestor.store.bulk_load(len(recs)):
            return _import_events(recs, ingestor, lines, source, say, size, res)
    if kind not in ("users", "posts"):
        raise ValueError(f"kind must be users, posts or events, not {kind!r}")
    for a, b in _chunks(recs, size, kind):
        part = recs[a:b]
        try:
            made = ingestor.create_users(part) if kind == "users" else ingestor.create_posts(part)
        except IngestError as e:
            raise BulkError(_describe(e, source, lines, a)) from None
        res.accepted += len(made)
        res.chunks += 1
        say(kind, b, len(recs))
    return res


def _import_events(recs: list[Any], ingestor: Ingestor, lines: list[int], source: str, say: Progress,
                   size: int, res: BulkResult) -> BulkResult:
    """Events, pipelined: chunk k+1 is parsed and checked while chunk k is written (SQLite drops the GIL)."""
    fast = _FastEvents(ingestor)
    pending: tuple[Future, int, int] | None = None

    def settle() -> None:
        nonlocal pending
        if pending is not None:
            fut, a, b = pending
            pending = None
            try:
                r = fut.result()
            except IngestError as e:
                raise BulkError(_describe(e, source, lines, a)) from None
            res.accepted += r.accepted
            res.duplicates += r.duplicates
            res.chunks += 1
            res.fast_chunks += 1
            say("events", b, len(recs))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gf-bulk") as pool:
        try:
            for a, b in _chunks(recs, size, "events"):
                part = recs[a:b]
                cols = fast.columns(part)
                settle()
                if cols is None:  # the Ingestor's own checks, messages and idempotency, in API-sized batches
                    step = ingestor.limits.max_batch
                    for s0 in range(0, len(part), step):
                        try:
                            r = ingestor.ingest_events(part[s0:s0 + step])
                        except IngestError as e:
                            raise BulkError(_describe(e, source, lines, a + s0)) from None
                        res.accepted += r.accepted
                        res.duplicates += r.duplicates
                        res.chunks += 1
                        say("events", min(b, a + s0 + step), len(recs))
                else:
                    pending = (pool.submit(fast.write, cols), a, b)
            settle()
        finally:
            if pending is not None:
                pending[0].exception()  # never leave a write running behind an error
    return res


def _describe(e: IngestError, source: str, lines: list[int], offset: int) -> str:
    parts = []
    for err in e.errors[:5]:
        where = f"{source}:{lines[offset + err.index]}" if err.index >= 0 else source
        parts.append(f"{where}: {err.field or 'row'}: {err.reason}")
    more = f" (and {len(e.errors) - 5} more errors)" if len(e.errors) > 5 else ""
    return "; ".join(parts) + more + " — nothing of this chunk was written"


def _chunks(recs: list[Any], size: int, kind: str) -> Iterator[tuple[int, int]]:
    """Chunk boundaries; for posts, also cut before a reply whose parent is in the current chunk."""
    a = 0
    ids: set[Any] = set()
    for b, r in enumerate(recs):
        parent = r.get("reply_to") if kind == "posts" and isinstance(r, dict) else None
        if b - a >= size or (parent is not None and parent in ids):
            yield a, b
            a, ids = b, set()
        if kind == "posts" and isinstance(r, dict):
            ids.add(r.get("id"))
    if a < len(recs):
        yield a, len(recs)


# ---------------------------------------------------------------- vectorised events
_KIND_CODE = {k.name.lower(): int(k) for k in EventKind}
_USER_T = np.array([int(k) for k in USER_TARGET_KINDS])
_EITHER_T = np.array([int(k) for k in EITHER_TARGET_KINDS])


class _FastEvents:
    """Resolves and checks an id-less event chunk with numpy/pandas; falls back to the dict path otherwise."""

    def __init__(self, ingestor: Ingestor) -> None:
        self.ing = ingestor
        self._n_users = self._n_posts = -1

    def _indexes(self) -> None:
        users, posts = self.ing.store.user_ids(), self.ing.store.post_ids()
        if len(users) != self._n_users or len(posts) != self._n_posts:
            self.users = pd.Index(list(users.keys()), dtype=object)
            self.user_vals = np.fromiter(users.values(), np.int64, len(users))
            self.posts = pd.Index(list(posts.keys()), dtype=object)
            self.post_vals = np.fromiter(posts.values(), np.int64, len(posts))
            self._n_users, self._n_posts = len(users), len(posts)

    def columns(self, recs: list[Any]) -> dict[str, Any] | None:
        """Resolved columns for an id-less, valid chunk; None sends the chunk to the Ingestor's dict path."""
        return self._columns(recs)

    def write(self, cols: dict[str, Any]):
        return self.ing.ingest_columns(cols, request_ids=cols.pop("_request_id", None),
                                       surface=cols.pop("_surface", None))

    def _resolve(self, index: pd.Index, vals: np.ndarray, ids: list[Any], required: bool) -> np.ndarray | None:
        """External ids -> store idx (-1 for None); None when any id is unknown or not a string."""
        n_null = ids.count(None)
        if n_null == len(ids):
            return None if required else np.full(len(ids), -1, np.int64)
        if required and n_null:
            return None
        pos = index.get_indexer(pd.Index(ids, dtype=object))
        if n_null:
            nulls = np.fromiter((v is None for v in ids), bool, len(ids))
            if ((pos < 0) & ~nulls).any():
                return None
            return np.where(nulls, -1, vals[np.maximum(pos, 0)])
        if (pos < 0).any():
            return None
        return vals[pos]

    def _columns(self, recs: list[Any]) -> dict[str, Any] | None:
        if not all(type(r) is dict for r in recs):
            return None
        keys = set().union(*(r.keys() for r in recs))
        if not keys <= set(EVENT_FIELDS) or any(r.get("id") is not None for r in recs):
            return None  # unknown field, or client ids (idempotency needs the dict path)
        self._indexes()
        n = len(recs)
        kinds = [r.get("kind") for r in recs]
        if not set(map(type, kinds)) <= {str}:
            return None
        kind = np.fromiter(map(_KIND_CODE.get, kinds, repeat(0)), np.int64, n)
        if (kind == 0).any():
            return None
        user = self._resolve(self.users, self.user_vals, [r.get("user") for r in recs], True)
        post = self._resolve(self.posts, self.post_vals, [r.get("post") for r in recs], False)
        tgt = self._resolve(self.users, self.user_vals, [r.get("target_user") for r in recs], False)
        if user is None or post is None or tgt is None:
            return None
        ut, et = np.isin(kind, _USER_T), np.isin(kind, _EITHER_T)
        if (ut & (tgt < 0)).any() or (et & (post < 0) & (tgt < 0)).any() or (~ut & ~et & (post < 0)).any():
            return None
        now = self.ing.clock()
        ts = _floats([r.get("ts") for r in recs], now)
        value = _floats([r.get("value") for r in recs], math.nan)
        if ts is None or value is None:
            return None
        lim = self.ing.limits
        if (ts > now + lim.max_future_skew_s).any() or (ts < 0).any():
            return None
        if ((value < 0) | (value > lim.max_dwell_ms)).any() or np.isnan(value[kind == int(EventKind.DWELL)]).any():
            return None
        cols: dict[str, Any] = {"kind": kind, "user": user, "post": post, "target_user": tgt, "ts": ts,
                                "value": value}
        if "position" in keys:
            pos = [r.get("position") for r in recs]
            if not all(p is None or (type(p) is int and 0 <= p < 100_000) for p in pos):
                return None
            cols["position"] = np.array([-1 if p is None else p for p in pos], np.int64)
        for name, limit in (("surface", 64), ("request_id", 128)):
            if name in keys:
                vals = [r.get(name) for r in recs]
                if not all(v is None or (type(v) is str and len(v) <= limit) for v in vals):
                    return None
                cols["_" + name] = vals
        return cols


def _floats(vals: list[Any], default: float) -> np.ndarray | None:
    """Numbers (or ISO/number strings for ts, parsed like the Ingestor) -> float64; None if any is invalid."""
    types = set(map(type, vals))
    if types <= {float, int}:
        out = np.array(vals, dtype=np.float64)
        return out if np.isfinite(out).all() else None
    out = np.empty(len(vals))
    for i, v in enumerate(vals):
        t = type(v)
        if t is float or t is int:
            out[i] = v
        elif v is None:
            out[i] = default
        elif t is str and default == default:  # strings only for ts
            try:
                out[i] = parse_ts(v)
            except ValueError:
                return None
        else:
            return None
    if not np.isfinite(out[~np.isnan(out)] if default != default else out).all():
        return None
    return out
