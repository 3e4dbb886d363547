"""Bulk import of users, posts or events from JSONL or CSV, in atomic chunks.

Events are parsed and checked chunk by chunk with ``Ingestor.parse_events`` (the same validator, messages and
idempotency as ``POST /v1/events``, vectorised over the chunk) and written with ``Ingestor.ingest_batch``; chunk
k+1 is parsed while chunk k is written. Errors name the file line, field and reason.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from glassfeed.domain import EVENT_FIELDS, WireType
from glassfeed.ingest import IngestError, Ingestor, IngestResult

Progress = Callable[[str, int, int], None]
LIST_FIELDS = ("interests", "topics", "labels")  # CSV: "a|b|c"
#: CSV cells read as numbers: the users' and posts' numeric fields and the event specification's.
NUM_FIELDS: dict[str, type] = {"community": int, "quality": float, "divisiveness": float} | {
    f.name: int if f.type is WireType.INTEGER else float
    for f in EVENT_FIELDS
    if f.type in (WireType.NUMBER, WireType.INTEGER)
}
#: CSV cells read as a number when they are one (else left as an ISO 8601 string).
TIME_FIELDS: frozenset[str] = frozenset({"created_at"} | {f.name for f in EVENT_FIELDS if f.type is WireType.TIME})


class BulkError(ValueError):
    """A bad row: names the file, line, field and reason (nothing of that chunk was written)."""


@dataclass
class BulkResult:
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    chunks: int = 0


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
    if conv is not None or field in TIME_FIELDS:
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
def import_path(
    path: Path | str,
    ingestor: Ingestor,
    kind: str = "events",
    progress: Progress | None = None,
    chunk: int | None = None,
) -> BulkResult:
    """Import ``path`` (.jsonl/.csv) as users, posts or events; raises BulkError at the first bad chunk."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "no such file", str(path))
    recs, lines = read_records(path)
    return import_records(recs, ingestor, kind, lines=lines, source=str(path), progress=progress, chunk=chunk)


def import_records(
    recs: list[Any],
    ingestor: Ingestor,
    kind: str = "events",
    *,
    lines: list[int] | None = None,
    source: str = "<records>",
    progress: Progress | None = None,
    chunk: int | None = None,
) -> BulkResult:
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


def _import_events(
    recs: list[Any], ingestor: Ingestor, lines: list[int], source: str, say: Progress, size: int, res: BulkResult
) -> BulkResult:
    """Events, pipelined: chunk k+1 is parsed and checked while chunk k is written (SQLite drops the GIL)."""
    pending: tuple[Future[IngestResult], int, int] | None = None

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
            say("events", b, len(recs))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gf-bulk") as pool:
        try:
            for a, b in _chunks(recs, size, "events"):
                try:
                    batch = ingestor.parse_events(recs[a:b])
                except IngestError as e:
                    settle()  # the chunk before is written (or its own error reported) first
                    raise BulkError(_describe(e, source, lines, a)) from None
                settle()
                pending = (pool.submit(ingestor.ingest_batch, batch), a, b)
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
