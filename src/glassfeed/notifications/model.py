"""The learned notification model: P(open), P(a session starts from it), P(the person turns it off), trained from
the notification log with the feed heads' point-in-time discipline.

Examples: every notification that was pushed (``push_at`` at or before the training time). Labels, from the
event log: an ``open`` is a ``notification_open`` naming it (``request_id`` "n<id>") within ``open_window_h`` of
the push; a ``session`` is an open followed by an impression within ``session_window_min``; ``off`` is a
``notifications_off`` naming it. Only the person the notification is for can label it: an event naming someone
else's notification is ignored (anyone may send events about themself naming any id). Features are computed from
what was known at the push time only (``features``): the kind, how many people it is about, the local hour, and
the person's own history *before* the push (pushes, opens, the share opened, pushes in the last day, hours since
their last event). A feature never reads an event
after its example's push: tests/test_notification_model.py adds future events and checks nothing moves.

One LightGBM binary model per head (``[notifications]`` model settings); a head with a single class in its
training data is left untrained and the policy's prior is used for it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from glassfeed.domain import EventBatch, EventKind
from glassfeed.notifications.policy import KINDS, NotificationPolicy
from glassfeed.notifications.schedule import _offsets
from glassfeed.settings import NotificationSettings
from glassfeed.store import NotificationRow, Store

HEADS: tuple[str, ...] = ("open", "session", "off")
FEATURES: tuple[str, ...] = (
    *(f"kind_{k}" for k in KINDS),
    "log_count",
    "hour_sin",
    "hour_cos",
    "prior_pushes",
    "prior_opens",
    "prior_open_rate",
    "pushes_last_day",
    "log_hours_since_active",
)
FORMAT = 1
#: Hours since activity for a person with no event before the push: a year (the feature's ceiling).
NEVER_ACTIVE_H = 24.0 * 365


@dataclass
class Examples:
    """Pushed notifications, in push order, with their point-in-time features and labels."""

    ids: np.ndarray
    users: np.ndarray
    push_at: np.ndarray
    X: np.ndarray
    y: dict[str, np.ndarray]


def _request_ids(store: Store, kinds: Sequence[EventKind]) -> list[tuple[int, float, int]]:
    """(user, ts, notification id) of the events of ``kinds`` that name a notification."""
    b = store.events_in_window(kinds=list(kinds), object_columns=True)
    out: list[tuple[int, float, int]] = []
    if b.request_id is None:
        return out
    for u, t, r in zip(b.user.tolist(), b.ts.tolist(), b.request_id.tolist()):
        if isinstance(r, str) and r.startswith("n") and r[1:].isdigit():
            out.append((int(u), float(t), int(r[1:])))
    return out


def _times_by_user(b: EventBatch) -> dict[int, np.ndarray]:
    """Each person's event times, sorted."""
    order = np.lexsort((b.ts, b.user))
    us, ts = b.user[order], b.ts[order]
    cuts = np.flatnonzero(np.diff(us)) + 1
    return {int(us[a]): ts[a:z] for a, z in zip(np.r_[0, cuts], np.r_[cuts, len(us)]) if z > a}


def features(
    rows: Sequence[NotificationRow],
    time_zone: Mapping[int, str],
    opens: Mapping[int, float],
    activity: Mapping[int, np.ndarray],
) -> np.ndarray:
    """Point-in-time features of pushed notifications (``rows`` in push order; ``opens``: notification id -> when
    it was opened; ``activity``: person -> their event times, sorted). Only what happened before each push counts."""
    X = np.zeros((len(rows), len(FEATURES)))
    col = {f: i for i, f in enumerate(FEATURES)}
    history: dict[int, list[tuple[float, int]]] = {}  # person -> (push time, notification id) of earlier pushes
    for i, r in enumerate(rows):
        t = float(r.push_at or 0.0)
        X[i, col[f"kind_{r.kind}"]] = 1.0
        X[i, col["log_count"]] = math.log1p(len(r.actors))
        off = float(_offsets(np.array([t]), time_zone.get(r.user, "UTC"))[0])
        hour = ((t + off) % 86400.0) / 3600.0
        X[i, col["hour_sin"]], X[i, col["hour_cos"]] = (
            math.sin(2 * math.pi * hour / 24),
            math.cos(2 * math.pi * hour / 24),
        )
        past = history.setdefault(r.user, [])
        opened = sum(1 for _, nid in past if opens.get(nid, math.inf) < t)
        X[i, col["prior_pushes"]] = len(past)
        X[i, col["prior_opens"]] = opened
        X[i, col["prior_open_rate"]] = (opened + 1.0) / (len(past) + 2.0)
        X[i, col["pushes_last_day"]] = sum(1 for pt, _ in past if pt > t - 86400.0)
        acts = activity.get(r.user)
        last = (
            acts[np.searchsorted(acts, t, side="left") - 1] if acts is not None and len(acts) and acts[0] < t else None
        )
        X[i, col["log_hours_since_active"]] = (
            math.log1p((t - last) / 3600.0) if last is not None else math.log1p(24 * 365)
        )
        past.append((t, r.id))
    return X


def examples(
    store: Store, until: float, policy_of: Mapping[int, NotificationPolicy], settings: NotificationSettings
) -> Examples:
    """Every notification pushed at or before ``until``, with features and labels (see the module docstring)."""
    users = store.load_users()["idx"].tolist()
    rows = [r for u in users for r in store.notifications(u, limit=1_000_000) if r.push_at is not None]
    rows = sorted((r for r in rows if r.push_at is not None and r.push_at <= until), key=lambda r: (r.push_at, r.id))
    owner = {r.id: r.user for r in rows}  # an event counts only when its person owns the notification it names
    opened_at: dict[int, float] = {}
    for u, t, nid in _request_ids(store, [EventKind.NOTIFICATION_OPEN]):
        if t <= until and owner.get(nid) == u:
            opened_at[nid] = min(opened_at.get(nid, math.inf), t)
    turned_off = {
        nid for u, t, nid in _request_ids(store, [EventKind.NOTIFICATIONS_OFF]) if t <= until and owner.get(nid) == u
    }
    activity = _times_by_user(store.events_in_window(t_to=until))
    imp_by_user = _times_by_user(store.events_in_window(t_to=until, kinds=[EventKind.IMPRESSION]))
    window = settings.open_window_h * 3600.0
    session = settings.session_window_min * 60.0
    y_open, y_session, y_off = [], [], []
    for r in rows:
        t_open = opened_at.get(r.id, math.inf)
        is_open = t_open - float(r.push_at or 0.0) <= window
        y_open.append(is_open)
        imps = imp_by_user.get(r.user)
        started = False
        if is_open and imps is not None:
            k = int(np.searchsorted(imps, t_open, side="left"))
            started = bool(k < len(imps) and imps[k] <= t_open + session)
        y_session.append(started)
        y_off.append(r.id in turned_off)
    tz = {u: p.time_zone for u, p in policy_of.items()}
    return Examples(
        ids=np.array([r.id for r in rows], np.int64),
        users=np.array([r.user for r in rows], np.int64),
        push_at=np.array([r.push_at for r in rows], np.float64),
        X=features(rows, tz, opened_at, activity),
        y={"open": np.array(y_open), "session": np.array(y_session), "off": np.array(y_off)},
    )


def serving_features(store: Store, user: int, fresh: Sequence[NotificationRow], time_zone: str) -> np.ndarray:
    """``features`` of new notifications for one person at their time (``updated_at``), from the same sources
    training reads: the person's earlier pushed notifications and their own events (opens, activity)."""
    past = [r for r in reversed(store.notifications(user, limit=500)) if r.push_at is not None]
    events = store.user_events(user, limit=2000)
    opens: dict[int, float] = {}
    for e in events:
        r = e.request_id
        if e.kind == int(EventKind.NOTIFICATION_OPEN) and isinstance(r, str) and r[1:].isdigit():
            opens[int(r[1:])] = min(opens.get(int(r[1:]), math.inf), e.ts)
    activity = {user: np.sort(np.array([e.ts for e in events], np.float64))}
    rows = sorted(past, key=lambda r: (r.push_at, r.id)) + [r._replace(push_at=r.updated_at) for r in fresh]
    return features(rows, {user: time_zone}, opens, activity)[len(past) :]


class NotificationModel:
    """One LightGBM binary model per head (``HEADS``); scikit-learn conventions: ``fit`` returns self and sets
    ``models_`` (head -> booster, or None when its data had one class) and ``n_examples_``."""

    def __init__(self, trees: int, leaves: int, learning_rate: float, seed: int = 0) -> None:
        self.trees = trees
        self.leaves = leaves
        self.learning_rate = learning_rate
        self.seed = seed

    def fit(self, X: np.ndarray, y: Mapping[str, np.ndarray]) -> NotificationModel:
        self.models_: dict[str, lgb.Booster | None] = {}
        params = {
            "objective": "binary",
            "num_leaves": self.leaves,
            "learning_rate": self.learning_rate,
            "min_data_in_leaf": 20,
            "verbose": -1,
            "seed": self.seed,
            "deterministic": True,
            "num_threads": 1,
        }
        for head in HEADS:
            labels = np.asarray(y[head], np.float64)
            if len(labels) < 2 or labels.min() == labels.max():
                self.models_[head] = None
                continue
            data = lgb.Dataset(X, labels, feature_name=list(FEATURES), free_raw_data=True)
            self.models_[head] = lgb.train(params, data, num_boost_round=self.trees)
        self.n_examples_ = len(X)
        return self

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray | None]:
        """Each trained head's probabilities for the rows of ``X`` (None for an untrained head)."""
        return {h: (np.asarray(m.predict(X), np.float64) if m is not None else None) for h, m in self.models_.items()}

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for head, m in self.models_.items():
            if m is not None:
                m.save_model(str(folder / f"{head}.txt"))
        meta: dict[str, Any] = {
            "format": FORMAT,
            "features": list(FEATURES),
            "heads": [h for h, m in self.models_.items() if m is not None],
            "params": {"trees": self.trees, "leaves": self.leaves, "learning_rate": self.learning_rate},
            "n_examples": self.n_examples_,
        }
        (folder / "model.json").write_text(json.dumps(meta, indent=1))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> NotificationModel | None:
        """The model saved in ``folder``, or None when there is none (or it was made for other features)."""
        folder = Path(folder)
        meta_path = folder / "model.json"
        if not meta_path.is_file():
            return None
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT or meta.get("features") != list(FEATURES):
            return None
        m = cls(**meta["params"])
        m.models_ = {
            h: (lgb.Booster(model_file=str(folder / f"{h}.txt")) if h in meta["heads"] else None) for h in HEADS
        }
        m.n_examples_ = int(meta["n_examples"])
        return m


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """ROC AUC (ties averaged); None without both classes."""
    y = np.asarray(y, bool)
    if y.all() or not y.any():
        return None
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p))
    sp = np.asarray(p)[order]
    i = 0
    while i < len(sp):
        j = i
        while j + 1 < len(sp) and sp[j + 1] == sp[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    n1 = int(y.sum())
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * (len(y) - n1)))


def train_notification_model(
    store: Store,
    settings: NotificationSettings,
    policy_of: Mapping[int, NotificationPolicy],
    until: float,
    holdout: float = 0.2,
) -> tuple[NotificationModel, dict[str, Any]]:
    """Fit the heads on the pushes before the last ``holdout`` share (by push time), report each head's holdout
    AUC beside the policy prior's (one number per kind) and the base rates, then refit on every example."""
    ex = examples(store, until, policy_of, settings)
    n = len(ex.ids)
    cut = int(n * (1.0 - holdout))
    report: dict[str, Any] = {"examples": n, "holdout": n - cut, "heads": {}}

    def new() -> NotificationModel:
        return NotificationModel(settings.model_trees, settings.model_leaves, settings.model_learning_rate)

    if cut > 0 and n - cut > 0:
        early = new().fit(ex.X[:cut], {h: v[:cut] for h, v in ex.y.items()})
        pred = early.predict(ex.X[cut:])
        kinds = ex.X[cut:, : len(KINDS)].argmax(axis=1)
        prior = np.array(
            [policy_of[int(u)].kinds[KINDS[int(k)]].prior_open for u, k in zip(ex.users[cut:], kinds)], np.float64
        )
        for head in HEADS:
            y = ex.y[head][cut:]
            p = pred[head]
            report["heads"][head] = {
                "base_rate": float(np.mean(ex.y[head])) if n else None,
                "holdout_auc": _auc(y, p) if p is not None else None,
                "prior_auc": _auc(y, prior) if head == "open" else None,
            }
    model = new().fit(ex.X, ex.y)
    return model, report
