"""The ``Store`` protocol: everything the engine asks of its durable store, as named reads and writes.

The store is the single source of truth: users, posts, the append-only event log (numbered by ``seq``), the
follow/block/mute edges that graph events maintain, muted words, per-user preferences and a small key/value
``meta`` table. Nothing outside ``glassfeed.store`` writes SQL: callers use the methods below, and every backend
(SQLite today, PostgreSQL later) implements all of them and passes the shared contract suite
(``tests/store_contract.py``).

Conventions shared by every method:

- Users and posts have a dense integer ``idx`` (from 1, in insertion order) that events and the in-memory serving
  state use; their external ids (strings) map to it through ``user_idx``/``post_idx``.
- Writes take the open transaction ``tx`` from ``transaction()`` and become visible (and durable) together when
  it commits; if the block raises, none of them happened. The id maps learn new users/posts only on commit.
- Event batches are ``EventBatch`` (see ``glassfeed.domain.events`` for the columns and their nulls).
- ``seq`` is a high-water mark: numbers are never reused, not even after ``delete_user_data`` removes the newest
  events.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np

from glassfeed.domain import EventBatch, EventKind

#: The edge tables graph events maintain (``load_edges``).
Edge = Literal["follows", "blocks", "mutes"]
#: What ``count`` can count: the entity tables plus the edge tables.
Entity = Literal["users", "posts", "events", "follows", "blocks", "mutes", "muted_words", "prefs"]
ENTITIES: tuple[str, ...] = ("users", "posts", "events", "follows", "blocks", "mutes", "muted_words", "prefs")
EDGES: tuple[str, ...] = ("follows", "blocks", "mutes")
#: Meta keys the store keeps for itself; ``set_meta`` refuses them.
RESERVED_META_KEYS: frozenset[str] = frozenset({"event_seq"})
#: What ``changes_since`` reports: changes the event log does not number, written in the same transaction as the
#: change itself (``idx`` is a user for muted_words, prefs and deleted; a post for labels and posts_erased, which
#: ``erase_posts`` and ``prune_posts`` both write).
CHANGE_KINDS: tuple[str, ...] = ("muted_words", "prefs", "labels", "posts_erased", "deleted")
#: The only label of a post its author erased (``erase_posts``); the serving state drops it from every feed.
ERASED_LABEL = "erased"

#: Row layout of ``insert_users``: (id, handle, created_at, community | None, interests_csv, token_hash | None).
UserRow = tuple[str, str, float, int | None, str, str | None]
#: Row layout of ``insert_posts``: (id, author_idx, text, created_at, reply_to, repost_of, quote_of, topics_csv,
#: lang, labels_csv, quality, divisiveness); reply_to/repost_of/quote_of are post idx or None, the last two
#: floats or None.
PostRow = tuple[str, int, str, float, int | None, int | None, int | None, str, str, str, float | None, float | None]


class StoredEvent(NamedTuple):
    """One stored event as ``user_events`` returns it (SQL nulls as ``None``; ``post``/``target_user`` are idx)."""

    seq: int
    id: str | None
    kind: int
    post: int | None
    target_user: int | None
    ts: float
    value: float | None
    surface: str | None
    position: int | None
    request_id: str | None


#: What the moderation log holds (``append_moderation``): notices and reports, automated rule actions, decisions
#: (each with its statement of reasons), appeals and their outcomes, community notes and their ratings.
MODERATION_KINDS: tuple[str, ...] = (
    "notice",
    "report",
    "automated",
    "decision",
    "appeal",
    "appeal_decision",
    "note",
    "note_rating",
)


class ModerationRecord(NamedTuple):
    """One row of the append-only moderation log. ``post``/``user`` are the subject (idx; ``None`` when the record
    has none), ``actor`` who acted (a user id, a moderator's name, ``"automated"``, or ``None`` for an anonymous
    notifier), ``ref`` the ``seq`` of the record this one answers (an appeal names its decision), ``body`` the
    kind's fields (JSON object)."""

    seq: int
    kind: str
    ts: float
    post: int | None
    user: int | None
    actor: str | None
    ref: int | None
    body: dict[str, Any]


class NotificationRow(NamedTuple):
    """One notification in a person's inbox (``upsert_notifications``): ``key`` is unique per person (its
    idempotency key), ``actors`` the people it is about in order of acting, ``sources`` the events it holds;
    ``push_at``/``rule``/``worth`` are the policy's decision (``push_at`` None: inbox only), ``pushed_at`` when it
    was delivered, ``read_at`` when the person read it."""

    id: int
    user: int
    key: str
    kind: str
    post: int | None
    actors: list[int]
    sources: list[int]
    created_at: float
    updated_at: float
    read_at: float | None
    push_at: float | None
    rule: str
    worth: float
    pushed_at: float | None


class Delivery(NamedTuple):
    """One pending push of the durable outbox (``enqueue_deliveries``): which notification, to whom, by which
    channel (``webpush`` | ``webhook``), when it is due, and how many attempts failed so far."""

    id: int
    notification: int
    user: int
    channel: str
    due_at: float
    attempts: int
    state: str


#: What the ad log holds (``append_ad_log``): an ad served to a person, and what they did with it.
AD_LOG_KINDS: tuple[str, ...] = ("impression", "click", "engagement", "hide")


class AdCampaignRow(NamedTuple):
    """One advertising campaign (``upsert_ad_campaign``): ``id`` is unique, ``advertiser`` the account that owns
    it (the only one its reports open to), ``body`` every other field (JSON object: ``glassfeed.ads.campaigns``
    reads and validates it)."""

    id: str
    advertiser: str
    body: dict[str, Any]
    created_at: float
    updated_at: float


class AdLogRow(NamedTuple):
    """One row of the append-only ad log: ``kind`` (``AD_LOG_KINDS``), the campaign, the person (idx; ``None``
    after their erasure or for an anonymous page), the creative (post idx), ``price`` charged in micro-units of
    the platform's currency (0 when the event is not billed), the page's ``request_id``, the person's country at
    the time (``None``: unknown) and ``ref``, the ``seq`` of the impression a click, engagement or hide answers."""

    seq: int
    kind: str
    ts: float
    campaign: str
    user: int | None
    post: int | None
    price: int
    request_id: str | None
    country: str | None
    ref: int | None


class ExperimentRow(NamedTuple):
    """One online experiment (``upsert_experiment``): ``name`` is unique, ``body`` everything else (JSON object:
    its definition and state; ``glassfeed.experiments.model`` reads and validates it)."""

    name: str
    body: dict[str, Any]
    created_at: float
    updated_at: float


class ExposureRow(NamedTuple):
    """The first time a person was served by an experiment's arm (``add_exposures``): one row per (experiment,
    user), never replaced; ``ts`` is when it was served."""

    experiment: str
    user: int
    arm: str
    ts: float


class PageSourcesRow(NamedTuple):
    """Which candidate source placed each post of one served feed page (``add_page_sources``), written in the
    transaction of the page's impressions: the page's ``request_id`` (unique), the person it was served to (idx),
    when, and the source names (``feed.policy.SOURCES``) in page order, so that an impression's ``position``
    indexes its source. Creator analytics joins impressions to it (docs/creators.md)."""

    request_id: str
    user: int
    ts: float
    sources: tuple[str, ...]


def join_sources(sources: Sequence[str]) -> str:
    """A page's source names as one stored text (both backends); a name holding a comma raises ``ValueError``."""
    bad = [x for x in sources if not x or "," in x]
    if bad:
        raise ValueError(f"page source name {bad[0]!r}: must be non-empty and hold no comma")
    return ",".join(sources)


def split_sources(text: str) -> tuple[str, ...]:
    """The inverse of ``join_sources``."""
    return tuple(text.split(",")) if text else ()


#: The states of an outbox row: waiting, delivered, given up after the last retry, or the subscription is gone.
DELIVERY_STATES: tuple[str, ...] = ("pending", "sent", "failed", "gone")


class Pruned(NamedTuple):
    """What ``prune_posts`` did: the posts it tombstoned (idx, ascending) and the events it deleted by kind code."""

    posts: list[int]
    events: dict[int, int]


class Change(NamedTuple):
    """One change ``changes_since`` reports: its number, its kind (``CHANGE_KINDS``) and the user or post."""

    seq: int
    kind: str
    idx: int


@dataclass(frozen=True, slots=True)
class UserSummary:
    """A user's profile and counts (``GET /v1/users/{id}``)."""

    id: str
    idx: int
    handle: str
    created_at: float
    community: int | None
    interests: list[str]
    events: int  # events this user logged
    following: int  # accounts this user follows
    followers: int  # accounts following this user
    posts: int  # posts this user authored


class Transaction(Protocol):
    """An open all-or-nothing write, obtained from ``Store.transaction()`` and passed to the store's writes.

    Opaque to callers: a backend accepts only its own transactions (another object raises ``TypeError``)."""


@runtime_checkable
class Store(Protocol):
    """The durable store every component talks to (see the module docstring for the shared conventions).

    ``runtime_checkable``: ``isinstance(x, Store)`` checks that every member is present (not their signatures;
    ``tests/store_contract.py`` does that)."""

    # ------------------------------------------------------------------ identity and lifecycle
    @property
    def path(self) -> Path | None:
        """The database file for a file-based backend (trained models are kept beside it by default, see
        ``store.models_dir``); ``None`` for a server backend."""
        ...

    @property
    def location(self) -> str:
        """Where the data lives, for messages: a file path or a URL without credentials."""
        ...

    @property
    def schema_version(self) -> int:
        """The number of schema migrations applied (opening a store applies any that are missing)."""
        ...

    def close(self) -> None:
        """Release the connection(s); the store is unusable afterwards."""
        ...

    def backup(self, dest: str | Path) -> None:
        """Write a consistent copy of the whole store to ``dest`` while it stays in use (a file-based backend writes
        a database file that ``open_store(dest)`` opens)."""
        ...

    def bulk_load(self, rows: int) -> AbstractContextManager[None]:
        """``with store.bulk_load(n):`` around appending about ``n`` events in many transactions: the backend may
        suspend and rebuild secondary indexes when that is cheaper. Each transaction inside stays atomic and
        durable; reads inside the block stay correct (only slower)."""
        ...

    # ------------------------------------------------------------------ transactions and writes
    def transaction(self) -> AbstractContextManager[Transaction]:
        """``with store.transaction() as tx:`` — one writer at a time; committed durably when the block ends,
        rolled back (nothing written, id maps unchanged) when it raises."""
        ...

    def insert_users(self, tx: Transaction, rows: Sequence[UserRow]) -> list[int]:
        """Insert new users (``UserRow`` layout; ids must be new) and return their idx, in order."""
        ...

    def insert_posts(self, tx: Transaction, rows: Sequence[PostRow]) -> list[int]:
        """Insert new posts (``PostRow`` layout; ids must be new, referenced idx must exist) and return their idx."""
        ...

    def append_events(self, tx: Transaction, batch: EventBatch) -> tuple[int, int]:
        """Append resolved events (``batch.seq`` is ignored) and return ``(first_seq, last_seq)`` of the numbers
        assigned (``last < first`` when nothing was appended). Events whose client ``id`` is already stored (or
        repeats an earlier one of the batch) are skipped, and the numbers stay consecutive over the events kept.
        Graph events (follow/unfollow, block/unblock, mute/unmute with a ``target_user``) update the edge tables
        in the same transaction, in ``seq`` order."""
        ...

    def set_muted_words(self, tx: Transaction, user: int, words: Iterable[str]) -> None:
        """Replace a user's muted words."""
        ...

    def add_post_label(self, tx: Transaction, posts: Sequence[int], label: str) -> None:
        """Add a moderation label to posts (idempotent; existing labels are kept)."""
        ...

    def set_prefs(self, tx: Transaction, user: int, prefs: dict[str, Any]) -> None:
        """Replace a user's preferences (a JSON-serialisable mapping)."""
        ...

    def set_token_hash(self, tx: Transaction, user: int, token_hash: str) -> None:
        """Replace a user's API token hash (``glassfeed token``; the old token stops working)."""
        ...

    def set_meta(self, tx: Transaction, key: str, value: str) -> None:
        """Set one key of the meta table; ``RESERVED_META_KEYS`` raise ``ValueError``. Outside the store, write
        meta through ``Ingestor.set_meta``."""
        ...

    def delete_user_data(self, tx: Transaction, user: int) -> dict[str, int]:
        """Data-rights erasure of what a user gave: their events, outgoing edges, muted words and preferences are
        deleted, and the user row is anonymised (handle reset to the id, community and interests cleared; the id,
        creation time and token hash stay, so the account remains usable). Returns rows changed by kind:
        ``events``, ``follows``, ``blocks``, ``mutes``, ``muted_words``, ``prefs``, ``profile`` (1 for the row),
        ``ad_log`` (the ad log's rows about the person lose the person: billing and the ad repository's counts stay,
        unattributed), ``exposures`` (the person's experiment exposures, deleted), ``page_sources`` (the sources of
        the feed pages served to the person, deleted).
        Other people's rows about the user (their follows, events on the user's posts) and the ``seq``
        high-water mark are kept. A backend should not leave the deleted values readable in its files."""
        ...

    def erase_posts(self, tx: Transaction, author: int) -> list[int]:
        """Tombstone every post by ``author`` ("delete my posts too") and return their idx, ascending: each keeps
        its idx, id, author and creation time (other people's replies, reposts and events point at it) while its
        text, topics, language, reply/repost/quote links, quality and divisiveness are emptied and its labels
        become ``ERASED_LABEL`` alone, which drops it from every feed."""
        ...

    def prune_posts(self, tx: Transaction, before: float) -> Pruned:
        """Retention (``glassfeed prune``): tombstone every post created before ``before`` (epoch seconds) that is
        not tombstoned yet, exactly as ``erase_posts`` does (one ``posts_erased`` change each, so tailing workers
        drop it), and delete every event on a post created before ``before`` (likes, impressions, replies and
        quotes recorded on it: also those that arrived after an earlier prune). The rows stay, so idx stay dense
        and newer posts' reply/quote links and replays of the old post's id still resolve; other events (follows,
        blocks, mutes) and edges are kept; the sources of pages served before ``before`` are deleted (every post
        such a page held was created before it). Returns the posts tombstoned now and the events deleted by kind."""
        ...

    # ------------------------------------------------------------------ id maps
    def user_idx(self, user_id: str) -> int | None:
        """The idx of a committed user, or ``None``."""
        ...

    def post_idx(self, post_id: str) -> int | None:
        """The idx of a committed post, or ``None``."""
        ...

    def user_ids(self) -> Mapping[str, int]:
        """Every committed user: external id -> idx (a live read-only view; do not mutate)."""
        ...

    def post_ids(self) -> Mapping[str, int]:
        """Every committed post: external id -> idx (a live read-only view; do not mutate)."""
        ...

    def refresh_ids(self) -> tuple[int, int]:
        """Learn the users and posts committed through other handles on this store (another process, another
        worker) since this handle last looked, so ``user_idx``/``post_idx`` find them; returns how many users and
        posts were new to this handle. A handle learns its own commits without it."""
        ...

    # ------------------------------------------------------------------ reads: entities
    def load_users(self, since_idx: int = 0) -> dict[str, Any]:
        """Users with idx > ``since_idx`` as columns, ordered by idx: ``idx`` (int64), ``id``, ``handle``,
        ``created_at`` (float64), ``community`` (int32, -1 = none), ``interests`` (list of lists)."""
        ...

    def load_posts(self, since_idx: int = 0) -> dict[str, Any]:
        """Posts with idx > ``since_idx`` as columns, ordered by idx: ``idx``, ``id``, ``author`` (int64),
        ``text``, ``created_at`` (float64), ``reply_to``/``repost_of``/``quote_of`` (int64, -1 = none),
        ``topics``, ``lang``, ``labels`` (lists), ``quality``/``divisiveness`` (float64, NaN = unknown)."""
        ...

    def load_edges(self, edge: Edge) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every current edge of one kind as numpy arrays ``(src int64, dst int64, created_at float64)``, in no
        particular order; an unknown ``edge`` raises ``ValueError``."""
        ...

    def load_muted_words(self) -> dict[int, list[str]]:
        """Muted words by user idx (users without any are absent)."""
        ...

    def load_prefs(self) -> dict[int, dict[str, Any]]:
        """Preferences by user idx (users without any are absent)."""
        ...

    def post_labels(self, posts: Sequence[int]) -> dict[int, list[str]]:
        """The labels of the given posts (unknown idx are absent; unlabelled posts map to ``[]``)."""
        ...

    def token_hash(self, user: int) -> str | None:
        """The stored hash of a user's API token (``None`` without one or for an unknown user)."""
        ...

    def user_summary(self, user: int) -> UserSummary | None:
        """A user's profile and counts, or ``None`` for an unknown idx."""
        ...

    def get_meta(self, key: str) -> str | None:
        """One key of the meta table, or ``None``."""
        ...

    def count(self, entity: Entity) -> int:
        """How many rows an entity has (``ENTITIES``; edges count current edges); anything else raises
        ``ValueError``."""
        ...

    # ------------------------------------------------------------------ reads: the event log
    def max_seq(self) -> int:
        """The highest ``seq`` ever assigned (0 for an empty log); never decreases."""
        ...

    def count_events(self, kind: EventKind | None = None) -> int:
        """How many events are stored, of one kind or in all."""
        ...

    def iter_events(
        self, since_seq: int = 0, until_seq: int | None = None, *, chunk: int = 500_000, object_columns: bool = False
    ) -> Iterator[EventBatch]:
        """Stream the events with ``since_seq < seq <= until_seq`` in ``seq`` order, at most ``chunk`` a batch
        (numeric columns only, the object columns ``None``, unless ``object_columns``: then ``surface``,
        ``request_id`` and ``id`` are read too, as a tail that needs them does). Empty batches are never yielded."""
        ...

    def events_in_window(
        self,
        t_from: float | None = None,
        t_to: float | None = None,
        *,
        kinds: Collection[EventKind] | None = None,
        object_columns: bool = False,
    ) -> EventBatch:
        """The events with ``t_from <= ts < t_to`` (an open end when ``None``), optionally only of ``kinds``,
        ordered by ``ts`` then ``seq`` (training's point-in-time replay). With ``object_columns`` the ``surface``,
        ``request_id`` and ``id`` columns are read too (audits group impressions by request id)."""
        ...

    def user_events(self, user: int, limit: int = 1000) -> list[StoredEvent]:
        """A user's newest ``limit`` events, newest first (data export, record lookups)."""
        ...

    def event_ids_exist(self, ids: Collection[str]) -> set[str]:
        """Which of the client event ids are already stored."""
        ...

    def events_about(
        self,
        posts: Collection[int] = (),
        target_users: Collection[int] = (),
        *,
        t_from: float | None = None,
        kinds: Collection[EventKind] | None = None,
    ) -> EventBatch:
        """The events on any of ``posts`` or aimed at any of ``target_users`` (follows of an author), with
        ``ts >= t_from`` when given, optionally only of ``kinds``, object columns included, ordered by ``ts`` then
        ``seq`` (creator analytics: one author's posts and followers). Scans the event log (no index on ``post``
        or ``target_user``): a per-request read, sized by the log, not by the answer."""
        ...

    # ------------------------------------------------------------------ served pages' sources
    def add_page_sources(self, tx: Transaction, rows: Sequence[PageSourcesRow]) -> int:
        """Record the sources of served feed pages (``PageSourcesRow``); a row whose ``request_id`` is already
        stored is ignored (the first stays). Returns how many were new. A source name holding a comma raises
        ``ValueError``. Erased with the person served (``delete_user_data``); pages served before ``prune_posts``'s
        cutoff go with their posts."""
        ...

    def page_sources(self, request_ids: Collection[str]) -> dict[str, tuple[str, ...]]:
        """The recorded sources of those of ``request_ids`` that have a row, by request id."""
        ...

    # ------------------------------------------------------------------ moderation
    def append_moderation(self, tx: Transaction, records: Sequence[ModerationRecord]) -> list[int]:
        """Append records to the moderation log (their ``seq`` is ignored) and return the numbers assigned, in
        order: increasing, in commit order, never reused. The log is never updated or deleted from: it is the
        audit trail of every moderation action (kinds: ``MODERATION_KINDS``, others raise ``ValueError``)."""
        ...

    def moderation_log(
        self, since_seq: int = 0, *, kinds: Collection[str] | None = None, limit: int | None = None
    ) -> list[ModerationRecord]:
        """The moderation records numbered above ``since_seq``, oldest first (optionally only ``kinds``; at most
        ``limit``)."""
        ...

    def set_post_scores(self, tx: Transaction, name: str, posts: Sequence[int], scores: Sequence[float]) -> None:
        """Store (or replace) one classifier's score of posts (``name``: the classifier, e.g. ``offensive``)."""
        ...

    def post_scores(self, since_idx: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Every classifier's stored scores of the posts above ``since_idx``: name -> (post idx int64 ascending,
        score float32)."""
        ...

    # ------------------------------------------------------------------ notifications
    def upsert_notifications(self, tx: Transaction, rows: Sequence[NotificationRow]) -> list[int]:
        """Insert notifications, or replace every field but ``id`` and ``created_at`` of the one with the same
        (user, key); returns their ids in order (``row.id`` is ignored)."""
        ...

    def notifications(
        self, user: int, *, limit: int = 50, keys: Collection[str] | None = None, ids: Collection[int] | None = None
    ) -> list[NotificationRow]:
        """A person's notifications, newest first (by ``updated_at``, then id); only ``keys`` or ``ids`` if given."""
        ...

    def unread_notifications(self, user: int) -> int: ...

    def mark_notifications_read(self, tx: Transaction, user: int, ids: Sequence[int] | None, at: float) -> int:
        """Mark a person's notifications read (``ids`` None: all of them); returns how many changed."""
        ...

    def enqueue_deliveries(self, tx: Transaction, rows: Sequence[Delivery]) -> list[int]:
        """Add pending pushes to the outbox (``row.id``, ``attempts`` and ``state`` are ignored: new rows are
        pending with no attempt), in the transaction that decided them."""
        ...

    def due_deliveries(self, now: float, limit: int = 100) -> list[Delivery]:
        """Pending pushes due at or before ``now``, oldest due first."""
        ...

    def settle_delivery(
        self, tx: Transaction, delivery: int, state: str, attempts: int, due_at: float, at: float | None = None
    ) -> None:
        """Record an attempt's outcome (``DELIVERY_STATES``); a ``sent`` push stamps its notification's
        ``pushed_at`` with ``at``. A retry stays ``pending`` with a later ``due_at``."""
        ...

    def set_push_subscription(self, tx: Transaction, user: int, endpoint: str, p256dh: str, auth: str) -> None:
        """Store (or move to ``user``) a browser's Web Push subscription, keyed by its endpoint."""
        ...

    def delete_push_subscription(self, tx: Transaction, endpoint: str) -> int: ...

    def push_subscriptions(self, user: int) -> list[tuple[str, str, str]]:
        """A person's subscriptions: (endpoint, p256dh, auth)."""
        ...

    # ------------------------------------------------------------------ ads
    def upsert_ad_campaign(self, tx: Transaction, row: AdCampaignRow) -> None:
        """Create a campaign, or replace the ``body`` and ``updated_at`` of the one with this id (its advertiser
        and creation time stay; a campaign never changes hands)."""
        ...

    def ad_campaigns(self, advertiser: str | None = None) -> list[AdCampaignRow]:
        """Every campaign (or one advertiser's), by id."""
        ...

    def append_ad_log(self, tx: Transaction, rows: Sequence[AdLogRow]) -> list[int]:
        """Append rows to the ad log (their ``seq`` is ignored; kinds: ``AD_LOG_KINDS``, others raise
        ``ValueError``) and return the numbers assigned, increasing, never reused."""
        ...

    def ad_log(
        self,
        since_seq: int = 0,
        *,
        campaigns: Collection[str] | None = None,
        kinds: Collection[str] | None = None,
        t_from: float | None = None,
        t_to: float | None = None,
        user: int | None = None,
        limit: int | None = None,
    ) -> list[AdLogRow]:
        """The ad log's rows numbered above ``since_seq``, oldest first, optionally only ``campaigns``, ``kinds``,
        ``t_from <= ts < t_to`` and one ``user``; at most ``limit``."""
        ...

    def ad_spend(self, since: float) -> dict[str, tuple[int, int]]:
        """Per campaign with any billed row: (micro-units charged at or after ``since``, micro-units charged
        ever)."""
        ...

    # ------------------------------------------------------------------ experiments
    def upsert_experiment(self, tx: Transaction, row: ExperimentRow) -> None:
        """Create an experiment, or replace the ``body`` and ``updated_at`` of the one with this name (its creation
        time stays)."""
        ...

    def experiments(self) -> list[ExperimentRow]:
        """Every experiment, by name."""
        ...

    def add_exposures(self, tx: Transaction, rows: Sequence[ExposureRow]) -> int:
        """Record exposures; a row whose (experiment, user) is recorded already is ignored (the first one stays).
        Returns how many were new."""
        ...

    def exposures(self, experiment: str | None = None, *, user: int | None = None) -> list[ExposureRow]:
        """The recorded exposures, optionally of one experiment and one user, by experiment, then time, then
        user."""
        ...

    # ------------------------------------------------------------------ reads: the change log
    def last_change(self) -> int:
        """The number of the newest change ``changes_since`` can report (0 when none); never decreases."""
        ...

    def changes_since(self, since: int, limit: int = 100_000) -> list[Change]:
        """The changes numbered above ``since``, oldest first, at most ``limit``: one row per user or post a
        committed ``set_muted_words`` (``muted_words``), ``set_prefs`` (``prefs``), ``add_post_label``
        (``labels``), ``erase_posts`` or ``prune_posts`` (``posts_erased``) or ``delete_user_data`` (``deleted``)
        touched, written in the same transaction. Workers tail it (with ``iter_events``) to learn what others
        changed; a row names what changed, never the values (read them with ``load_prefs`` etc.)."""
        ...


__all__ = [
    "AD_LOG_KINDS",
    "AdCampaignRow",
    "AdLogRow",
    "CHANGE_KINDS",
    "Change",
    "MODERATION_KINDS",
    "ModerationRecord",
    "NotificationRow",
    "PageSourcesRow",
    "Delivery",
    "DELIVERY_STATES",
    "EDGES",
    "ENTITIES",
    "ERASED_LABEL",
    "Edge",
    "ExperimentRow",
    "ExposureRow",
    "Entity",
    "PostRow",
    "Pruned",
    "RESERVED_META_KEYS",
    "Store",
    "StoredEvent",
    "Transaction",
    "UserRow",
    "UserSummary",
    "join_sources",
    "split_sources",
]
