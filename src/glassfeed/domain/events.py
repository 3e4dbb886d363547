"""``EventBatch``: the one in-memory shape of a batch of events, a struct of parallel numpy arrays.

Every stage that moves events (the store's reads and appends, the Ingestor and its listeners, training's replay,
the simulator, the importers and bulk import) passes an ``EventBatch``; the column names, dtypes and null
markers are declared once, in ``EVENT_COLUMNS``. Users and posts are integer indexes (the store's ``idx``, from
1, or a simulator's own index space before it is mapped to the store's); a missing post or target user is -1,
a missing value NaN, a missing position -1, and ``seq`` 0 means "not stored yet".

``surface``, ``request_id`` and ``id`` (the client idempotency key) are optional object columns: ``None`` as the
whole column means no row has one, which keeps the common batch (kind, user, post, ts) cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class Column:
    """One numeric column of an event batch: its dtype and the value that stands for "none"."""

    name: str
    dtype: type[np.generic]
    null: float | int


#: The numeric columns, in the store's order. Object columns (``OBJECT_COLUMNS``) follow them in a row.
EVENT_COLUMNS: tuple[Column, ...] = (
    Column("seq", np.int64, 0),
    Column("kind", np.int8, 0),
    Column("user", np.int64, 0),
    Column("post", np.int64, -1),
    Column("target_user", np.int64, -1),
    Column("ts", np.float64, np.nan),
    Column("value", np.float64, np.nan),
    Column("position", np.int32, -1),
)
#: Optional string columns (``None`` per row when absent).
OBJECT_COLUMNS: tuple[str, ...] = ("surface", "request_id", "id")
#: A row as ``to_rows``/``from_rows`` see it: the numeric columns, then the object columns.
ROW_FIELDS: tuple[str, ...] = tuple(c.name for c in EVENT_COLUMNS) + OBJECT_COLUMNS
_NUMERIC = {c.name: c for c in EVENT_COLUMNS}


@dataclass(slots=True)
class EventBatch:
    """Parallel arrays, one entry per event (see the module docstring for the nulls)."""

    seq: np.ndarray
    kind: np.ndarray
    user: np.ndarray
    post: np.ndarray
    target_user: np.ndarray
    ts: np.ndarray
    value: np.ndarray
    position: np.ndarray
    surface: np.ndarray | None = None
    request_id: np.ndarray | None = None
    id: np.ndarray | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def empty(cls) -> EventBatch:
        return cls.from_columns(kind=np.zeros(0, np.int8), user=np.zeros(0, np.int64), ts=np.zeros(0))

    @classmethod
    def from_columns(cls, *, kind: Any, user: Any, ts: Any, **cols: Any) -> EventBatch:
        """A batch from the required columns plus any others; absent numeric columns get their null, and every
        column is cast to its declared dtype (a copy only where the dtype differs)."""
        n = len(kind)
        given = {"kind": kind, "user": user, "ts": ts, **cols}
        unknown = given.keys() - set(ROW_FIELDS)
        if unknown:
            raise TypeError(f"unknown event column(s): {', '.join(sorted(unknown))}")
        out: dict[str, Any] = {}
        for c in EVENT_COLUMNS:
            v = given.get(c.name)
            a = np.full(n, c.null, c.dtype) if v is None else np.asarray(v, dtype=c.dtype)
            if a.shape != (n,):
                raise ValueError(f"event column {c.name!r} has shape {a.shape}, expected ({n},)")
            out[c.name] = a
        for name in OBJECT_COLUMNS:
            v = given.get(name)
            if v is not None:
                v = np.asarray(v, dtype=object) if not isinstance(v, np.ndarray) else v.astype(object, copy=False)
                if v.shape != (n,):
                    raise ValueError(f"event column {name!r} has shape {v.shape}, expected ({n},)")
                if not any(x is not None for x in v.tolist()):
                    v = None
            out[name] = v
        return cls(**out)

    @classmethod
    def from_rows(cls, rows: Iterable[Sequence[Any]]) -> EventBatch:
        """A batch from row tuples in ``ROW_FIELDS`` order (``None`` for a null); the object columns may be
        left off the end of a row."""
        rows = list(rows)
        n = len(rows)
        cols: dict[str, Any] = {}
        for j, c in enumerate(EVENT_COLUMNS):
            vals = [r[j] for r in rows]
            cols[c.name] = np.fromiter((c.null if v is None else v for v in vals), c.dtype, n)
        width = len(EVENT_COLUMNS)
        for j, name in enumerate(OBJECT_COLUMNS, start=width):
            vals = [r[j] if len(r) > j else None for r in rows]
            cols[name] = vals if any(v is not None for v in vals) else None
        return cls.from_columns(**cols)

    @staticmethod
    def concat(parts: Sequence[EventBatch]) -> EventBatch:
        """One batch from several, in order (an object column present in any part is kept, ``None``-padded)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return EventBatch.empty()
        if len(parts) == 1:
            return parts[0]
        cols: dict[str, Any] = {c.name: np.concatenate([getattr(p, c.name) for p in parts]) for c in EVENT_COLUMNS}
        for name in OBJECT_COLUMNS:
            if any(getattr(p, name) is not None for p in parts):
                cols[name] = np.concatenate(
                    [getattr(p, name) if getattr(p, name) is not None else np.full(len(p), None, object) for p in parts]
                )
        return EventBatch(**cols)

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.kind)

    def take(self, idx: np.ndarray) -> EventBatch:
        """The events at ``idx`` (integer positions or a boolean mask), in that order."""
        opt = [None if (v := getattr(self, name)) is None else v[idx] for name in OBJECT_COLUMNS]
        return EventBatch(*(getattr(self, c.name)[idx] for c in EVENT_COLUMNS), *opt)

    def with_seq(self, first: int) -> EventBatch:
        """The same events numbered ``first, first + 1, ...`` (as the store assigned them)."""
        out = self.take(np.arange(len(self)))
        out.seq = np.arange(first, first + len(self), dtype=np.int64)
        return out

    def to_rows(self) -> list[tuple[Any, ...]]:
        """Row tuples in ``ROW_FIELDS`` order with ``None`` for every null (the inverse of ``from_rows``)."""
        n = len(self)
        cols: list[list[Any]] = []
        for c in EVENT_COLUMNS:
            a = getattr(self, c.name)
            vals = a.tolist()
            null = np.isnan(a) if np.issubdtype(a.dtype, np.floating) else a == c.null
            if null.any():
                vals = [None if m else v for v, m in zip(vals, null.tolist())]
            cols.append(vals)
        for name in OBJECT_COLUMNS:
            a = getattr(self, name)
            cols.append([None] * n if a is None else a.tolist())
        return list(zip(*cols))

    def columns(self) -> dict[str, np.ndarray | None]:
        """Every column by name (object columns ``None`` when absent)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def equals(self, other: EventBatch) -> bool:
        """Same events, column by column (NaN equals NaN)."""
        if len(self) != len(other):
            return False
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if a is None or b is None:
                if (a is None) != (b is None):
                    return False
                continue
            if a.dtype == object:
                if a.tolist() != b.tolist():
                    return False
            elif not np.array_equal(a, b, equal_nan=np.issubdtype(a.dtype, np.floating)):
                return False
        return True


__all__ = ["Column", "EVENT_COLUMNS", "OBJECT_COLUMNS", "ROW_FIELDS", "EventBatch"]
