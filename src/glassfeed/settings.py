"""One typed ``Settings`` object, built once at the edge (CLI, server, simulator) and passed down.

Layers, each overriding the one before:

1. ``defaults.toml`` shipped in the package: the one place where every default value is written;
2. a ``glassfeed.toml``: the ``config_path`` argument, else ``$GLASSFEED_CONFIG``;
3. environment variables ``GLASSFEED_<SECTION>__<KEY>`` (e.g. ``GLASSFEED_STATE__COUNTER_HALF_LIFE_H=24``; the
   value is read as a TOML value, and as a plain string when it is not one), plus the short aliases in
   ``ENV_ALIASES`` (``GLASSFEED_DB``, ``GLASSFEED_API_KEY``, ...);
4. keyword overrides from the caller (``load_settings(store={"path": "x.db"})``: a command's ``--db`` flag).

Every section is validated: an unknown section or key, or a value of the wrong type or range, is refused with
the file (or environment variable) and the key named. Nothing below the edge reads the environment or calls
``load_settings`` again; components take the section they need as an argument, and fall back to the packaged
defaults (``packaged_settings()``) only when a caller gives none.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from glassfeed.domain import EventKind

ENV_PREFIX = "GLASSFEED_"
#: Short environment variables kept for convenience: name -> (section, key).
ENV_ALIASES: dict[str, tuple[str, str]] = {
    "GLASSFEED_DB": ("store", "path"),
    "GLASSFEED_API_KEY": ("api", "key"),
    "GLASSFEED_DATA": ("data", "shared_dir"),
    "GLASSFEED_WEB_DEMO": ("web", "demo"),
    "GLASSFEED_AUDIT_REPORT": ("web", "audit_report"),
    "GLASSFEED_BSKY_HOSTNAME": ("bluesky", "hostname"),
    "GLASSFEED_BSKY_SERVICE_DID": ("bluesky", "service_did"),
    "GLASSFEED_BSKY_PUBLISHER_DID": ("bluesky", "publisher_did"),
    "GLASSFEED_BSKY_FEEDS": ("bluesky", "feeds"),
    "GLASSFEED_BSKY_KEYS_FILE": ("bluesky", "keys_file"),
    "GLASSFEED_BSKY_IMPRESSIONS": ("bluesky", "impressions"),
}
#: Environment variables with the prefix that are not settings keys.
ENV_OTHER = frozenset({"GLASSFEED_CONFIG"})


class SettingsError(ValueError):
    """A settings file, environment variable or override is invalid; the message names where and which key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    @model_validator(mode="before")
    @classmethod
    def _paths_as_text(cls, data: Any) -> Any:
        """A ``pathlib.Path`` given for a text key (``store={"path": tmp / "x.db"}``) is taken as its text."""
        if isinstance(data, dict):
            return {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in data.items()}
        return data


class StoreSettings(_Section):
    path: str = Field(description="the store: a SQLite file path (or sqlite:///path)")
    synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"]
    sqlite_cache_mib: int = Field(gt=0, description="SQLite's page cache per connection, in MiB")
    retention_days: float = Field(ge=0, description="`glassfeed prune` drops posts older than this; 0 = keep all")

    @field_validator("synchronous", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v


class IngestLimits(_Section):
    max_batch: int = Field(gt=0)
    max_text_chars: int = Field(gt=0)
    max_id_chars: int = Field(gt=0)
    max_future_skew_s: float = Field(ge=0)
    max_dwell_ms: float = Field(gt=0)
    max_position: int = Field(gt=0)
    max_surface_chars: int = Field(gt=0)
    max_request_id_chars: int = Field(gt=0)
    max_list_items: int = Field(gt=0)
    max_topic_chars: int = Field(gt=0)
    max_lang_chars: int = Field(gt=0)
    max_muted_words: int = Field(gt=0)
    max_muted_word_chars: int = Field(gt=0)
    max_community: int = Field(gt=0, le=2**31 - 1)
    batch_atomic: bool
    bulk_chunk: int = Field(gt=0)


class DataSettings(_Section):
    shared_dir: str = Field(description="real datasets, read in place; empty = ../shared/data beside the project")


class ApiSettings(_Section):
    key: str = Field(description="service API key for writes; empty = none set")
    max_body_bytes: int = Field(gt=0, description="request bodies over this are refused (413) before being read")
    anonymous_feed_rate_per_s: float = Field(gt=0, description="anonymous feed requests a second per address")
    anonymous_feed_burst: float = Field(ge=1, description="anonymous feed requests an address may make at once")
    anonymous_feed_clients: int = Field(gt=0, description="client addresses the rate limiter remembers")
    key_rate_per_s: float = Field(gt=0, description="requests a second per credential (not the service key)")
    key_burst: float = Field(ge=1, description="requests a credential may make at once")
    user_rate_per_s: float = Field(gt=0, description="requests a second about one person (not the service key)")
    user_burst: float = Field(ge=1, description="requests about one person at once")
    rate_limit_keys: int = Field(gt=0, description="credentials and people an in-process limiter remembers")
    content_security_policy: str = Field(description="the CSP header of every response (no inline script)")
    docs_content_security_policy: str = Field(description="the CSP of /docs and /redoc (Swagger UI, ReDoc)")
    log_format: Literal["json", "text"] = Field(description="server log lines: one JSON object each, or plain text")
    ready_max_lag_events: int = Field(ge=0, description="/readyz: events the serving state may be behind the log")
    latency_buckets_s: list[float] = Field(min_length=1, description="/metrics request-latency histogram buckets")
    candidate_buckets: list[float] = Field(min_length=1, description="/metrics candidates-per-page buckets")


class ContentSettings(_Section):
    """``[state.content]``: post text embeddings, people's content vectors and topic inference (glassfeed.content)."""

    enabled: bool = Field(description="embed posts at ingest and keep content vectors; false: as without them")
    model: Literal["wordllama-l2-supercat"] = Field(description="static embedding model shipped in a PyPI package")
    dims: Literal[64, 128, 256] = Field(description="leading dimensions of the model kept (its trained truncations)")
    embed_window_h: float = Field(ge=0, description="at build, posts this much older than the newest are not embedded")
    user_half_life_h: float = Field(gt=0, description="half-life of an engagement in a person's content vector")
    interest_weight: float = Field(ge=0, description="onboarding interests count as this many (undecayed) likes")
    topic_min_similarity: float = Field(ge=-1, le=1, description="a post without topics gets the nearest this close")
    search_dims: Literal[64, 128, 256] = Field(description="leading dims the content source's index searches")
    search_max_posts: int = Field(ge=0, description="... over at most this many of the newest posts; 0 = the window")
    rebuild_every_s: float = Field(ge=0, description="the content source's index over recent posts: rebuilt this often")
    exact_below: int = Field(ge=0, description="... searched exactly below this many posts, else through HNSW")
    weights: dict[str, float] = Field(description="event kind -> weight of the post's embedding in the person's vector")

    @field_validator("weights")
    @classmethod
    def _known_kinds(cls, v: dict[str, float]) -> dict[str, float]:
        for name in v:
            EventKind.parse(name)
        return v


class StateSettings(_Section):
    counter_half_life_h: float = Field(gt=0)
    trending_half_life_h: float = Field(gt=0)
    affinity_half_life_h: float = Field(gt=0)
    recent_actions_per_user: int = Field(gt=0)
    seen_retention_h: float = Field(gt=0)
    seen_merge_at: int = Field(gt=0)
    post_retention_days: float = Field(ge=0, description="posts older than this are not held; 0 = every post")
    usage_retention_h: float = Field(gt=0, description="pages served are remembered this long (the usage budget)")
    affinity_weights: dict[str, float]
    content: ContentSettings

    @field_validator("affinity_weights")
    @classmethod
    def _known_kinds(cls, v: dict[str, float]) -> dict[str, float]:
        for name in v:
            EventKind.parse(name)  # raises ValueError naming the expected kinds
        return v


class RetrievalSettings(_Section):
    collaborative_model: Literal["als", "ease"]
    ease_lam: float = Field(gt=0)
    ease_gamma: float = Field(ge=0)
    ease_max_items: int = Field(gt=0)
    ann_rebuild_every_s: float = Field(ge=0)
    ann_exact_below: int = Field(ge=0)


class ServingSettings(_Section):
    clock: Literal["wall", "data"]
    impression_flush_ms: float = Field(ge=0)
    session_ttl_s: float = Field(gt=0)
    cursor_ttl_s: float = Field(gt=0)
    explained_pages_per_user: int = Field(gt=0)
    explained_users: int = Field(gt=0)
    policies_dir: str = Field(description="a folder of extra policy TOML files; empty = the built-in presets only")
    tail_interval_ms: float = Field(ge=0, description="how often a worker folds in other writers' commits; 0 = never")
    redis_url: str = Field(description="Redis for state shared by workers; empty = in this process")
    redis_prefix: str = Field(description="prefix of every Redis key glassfeed writes")
    redis_timeout_s: float = Field(gt=0, description="longest wait to connect to Redis or for its answer")
    compiled_trees: bool = Field(description="serve the heads' trees compiled to native code (feed/compiled.py)")


class BlueskySection(_Section):
    hostname: str
    service_did: str
    publisher_did: str
    feeds: tuple[str, ...]
    privacy_policy: str
    terms_of_service: str
    keys_file: str
    plc_url: str
    strict_low_s: bool
    impressions: Literal["served", "seen"]
    jetstream_url: str
    cursor_rewind_s: float = Field(ge=0)
    ingest_batch: int = Field(ge=1)
    flush_interval_s: float = Field(gt=0)
    reconnect_min_s: float = Field(gt=0)
    reconnect_max_s: float = Field(gt=0)
    reconnect_healthy_s: float = Field(ge=0)
    open_timeout_s: float = Field(gt=0)
    max_message_bytes: int = Field(ge=1024)
    stats_interval_s: float = Field(gt=0)
    prune_interval_s: float = Field(gt=0)
    allowed_did_methods: tuple[Literal["plc", "web", "key"], ...]
    create_users_from_interactions: bool
    max_token_lifetime_s: float = Field(gt=0)
    clock_skew_s: float = Field(ge=0)
    resolver_timeout_s: float = Field(gt=0)
    resolver_concurrency: int = Field(ge=1)
    resolver_wait_s: float = Field(ge=0)
    did_document_max_bytes: int = Field(ge=1024)
    key_cache_size: int = Field(ge=1)
    key_cache_ttl_s: float = Field(ge=0)
    key_failure_ttl_s: float = Field(ge=0)
    key_refresh_min_s: float = Field(ge=0)

    @field_validator("feeds", "allowed_did_methods", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        return [f.strip() for f in v.split(",") if f.strip()] if isinstance(v, str) else v


class WebSettings(_Section):
    demo: bool
    audit_report: str
    report_content_security_policy: str = Field(description="the CSP of /audit/ reports (inline styles)")


class TrainSettings(_Section):
    keep_versions: int = Field(
        ge=2, description="versioned model folders kept (>= 2: a worker may still read the one just replaced)"
    )
    dask_workers: int = Field(ge=1, description="`glassfeed train --dask local`: workers of the LocalCluster")
    dask_threads_per_worker: int = Field(ge=1, description="... threads each of them trains with")
    dask_processes: bool = Field(description="... workers as processes (true) or as threads of this process")
    dask_network_timeout_min: int = Field(
        ge=1, description="LightGBM's time_out: machines wait this long for each other"
    )
    position_feature: bool = Field(
        description="the heads see each logged impression's slot and serving asks at slot 0 (position debiasing)"
    )
    retrieval_share: float = Field(
        ge=0.0,
        lt=1.0,
        description="share of the log (by impression time) the replay's retrieval models are fit on; the heads' "
        "examples come from the rest",
    )
    sampled_negatives: float = Field(
        ge=0.0, le=1000.0, description="unserved candidates sampled as negatives per logged impression, when ..."
    )
    min_unengaged_share: float = Field(
        ge=0.0, le=1.0, description="... fewer than this share of the logged impressions went unengaged"
    )
    heads_feature_fraction: float = Field(
        gt=0.0, le=1.0, description="share of the features each of the heads' trees may split on (LightGBM)"
    )
    heads_bagging_fraction: float = Field(
        gt=0.0, le=1.0, description="share of the examples each of the heads' trees is grown on (1 = all)"
    )
    heads_l2: float = Field(ge=0.0, description="L2 penalty on the heads' leaf values (LightGBM lambda_l2)")
    heads_offset: str = Field(
        description="a feature each head starts from (its trees learn the residual over a logistic fit of the label "
        "on it, e.g. collab_gap); empty = none"
    )
    heads_stopping: Literal["logloss", "request_ndcg"] = Field(
        description="the heads keep the trees of the lowest held-out log-loss, or those the held-out requests' "
        "nDCG@10 supports (the one-standard-error rule: no more trees than help by more than their noise)"
    )


class ModerationSettings(_Section):
    policy: str = Field(
        description="a moderation policy TOML file; empty: the packaged policies/moderation/moderation.toml"
    )
    moderator_keys: dict[str, str] = Field(
        description="moderator name -> key (GLASSFEED_MODERATION__MODERATOR_KEYS='{alice = \"...\"}'); a moderator key "
        "opens the moderation API and console, and nothing else"
    )
    classifiers: str = Field(
        description="folder of trained text classifiers (`glassfeed moderation train-classifiers`); empty: "
        "<models folder>/classifiers; none there: posts are not scored"
    )
    queue_limit: int = Field(ge=1, le=10000, description="most cases one queue page lists")


class NotificationSettings(_Section):
    default_policy: str = Field(description="the notification policy of people who chose none")
    policies_dir: str = Field(description="a folder of notification policy TOMLs; empty: the packaged ones")
    webhook_url: str = Field(description="POST every push here too, signed (empty: no webhook channel)")
    webhook_secret: str = Field(
        description="the webhook's HMAC-SHA256 secret (GLASSFEED_NOTIFICATIONS__WEBHOOK_SECRET)"
    )
    vapid_key: str = Field(
        description="the VAPID private key (PEM file) Web Push is signed with; empty: <db>.vapid.pem"
    )
    vapid_subject: str = Field(description="the contact push services may use (mailto: or https:)")
    push_ttl_s: int = Field(ge=0, le=2419200, description="how long a push service keeps an undelivered push")
    retry_base_s: float = Field(gt=0, description="the outbox retries after up to base x 2^attempt seconds ...")
    retry_cap_s: float = Field(gt=0, description="... at most this long")
    max_attempts: int = Field(ge=1, le=100, description="attempts before a push is given up (state failed)")
    worker_interval_s: float = Field(gt=0, description="how often the delivery worker looks for due pushes")
    candidates_from: Literal["ingest", "log"] = Field(
        description='who turns events into notifications: "ingest": each API process, from the events it commits '
        "(other writers' events make none); \"log\": the delivery worker alone, tailing the store's event log from "
        "a cursor in the store (every writer's events; the API processes make none). The same in every process"
    )
    tail_batch: int = Field(
        ge=1, le=100_000, description='"log": events (or new posts) the worker folds in one transaction with its cursor'
    )
    send_timeout_s: float = Field(gt=0, description="timeout of one push or webhook request")
    affinity_authors: int = Field(ge=0, le=100, description="suggest: new posts of this many top-affinity accounts")
    suggest_page: int = Field(ge=1, le=200, description="suggest: feed items ranked to find one out of network")
    digest_days: float = Field(gt=0, description="the weekly digest covers this many days")
    digest_posts: int = Field(ge=1, le=50, description="the weekly digest's most liked missed posts")
    open_window_h: float = Field(gt=0, description="an open this long after the push counts as opening it")
    session_window_min: float = Field(gt=0, description="an impression this soon after an open: a session from it")
    model_trees: int = Field(ge=1, le=2000, description="LightGBM rounds of each notification head")
    model_leaves: int = Field(ge=2, le=1024, description="leaves per tree of each notification head")
    model_learning_rate: float = Field(gt=0, le=1, description="learning rate of the notification heads")


class WellbeingSettings(_Section):
    session_gap_min: float = Field(gt=0, description="pages further apart than this are separate sessions")
    page_min: float = Field(ge=0, description="time counted for the last page of each session")
    budget_min: tuple[int, int] = Field(description="the daily budget a person may set, in minutes (low, high)")
    survey_every_pages: int = Field(ge=0, description='"was this worth your time?" on every n-th page; 0 = never')


class AdsSettings(_Section):
    policy: str = Field(description="an ad policy TOML file; empty: the packaged policies/ads/ads.toml")
    advertiser_keys: dict[str, str] = Field(
        description="advertiser -> key (GLASSFEED_ADS__ADVERTISER_KEYS='{acme = \"...\"}'); an advertiser key opens "
        "that advertiser's campaigns and reports, and nothing else"
    )
    enabled: bool = Field(description="place ads in feeds (the public ad repository is open either way)")
    refresh_s: float = Field(gt=0, description="how often a worker rereads campaigns and the ad log others wrote")
    model_trees: int = Field(ge=1, le=2000, description="the ad model: most LightGBM rounds of each head")
    model_leaves: int = Field(ge=2, le=1024, description="the ad model: leaves per tree")
    model_learning_rate: float = Field(gt=0, le=1, description="the ad model: learning rate")
    model_min_child_samples: int = Field(ge=1, description="the ad model: fewest impressions in a leaf")


class ExperimentSettings(_Section):
    salt: str = Field(max_length=200, description="mixed into every assignment hash (a new salt reshuffles everyone)")
    refresh_s: float = Field(gt=0, description="how often a worker rereads the experiments others created or stopped")
    divisive_threshold: float = Field(ge=0, le=1, description="analysis: a post this divisive or more is divisive")
    retention_days: float = Field(gt=0, description="analysis: returned = a page in a later session within this")
    pre_period_days: float = Field(ge=0, description="analysis: CUPED's covariate, the days before each exposure")
    alpha: float = Field(gt=0, lt=1, description="analysis: error level of intervals and guardrail verdicts")
    srm_alpha: float = Field(gt=0, lt=1, description="analysis: a sample-ratio mismatch is flagged below this p")
    msprt_tau: float = Field(gt=0, description="analysis: the mSPRT's mixing sd, on the relative difference")


class TrendSettings(_Section):
    policy: str = Field(description="a trend rules TOML file; empty: the packaged policies/trends/default.toml")
    refresh_s: float = Field(gt=0, description="a scope's trends are recomputed at most this often (wall seconds)")


#: The time series buckets creator analytics offers (their sizes: ``creators.attribution.BUCKET_S``).
CreatorBucket = Literal["hour", "day", "week"]


class CreatorSettings(_Section):
    default_days: int = Field(ge=1, description="creator analytics: the window when a request names none (days)")
    max_days: int = Field(ge=1, description="creator analytics: the longest window a request may ask for (days)")
    default_bucket: CreatorBucket = Field(description="the time series' bucket when none is named")
    max_buckets: int = Field(ge=1, description="the most buckets one time series may hold (days x bucket size)")
    max_posts: int = Field(ge=1, description="the most posts one answer lists (the newest in the window)")
    refresh_s: float = Field(ge=0, description="an author's answer is recomputed at most this often (wall seconds)")


class AuditSettings(_Section):
    """``[audit]``: ``glassfeed audit``'s intervals and the sample sizes below which a number is no finding."""

    divisive_threshold: float = Field(ge=0, le=1, description="a post this divisive or more counts as divisive")
    min_viewers: int = Field(ge=2, description="a policy (or arm of a comparison) with fewer viewers is no finding")
    min_impressions: int = Field(ge=1, description="... and one with fewer impressions neither")
    confidence: float = Field(gt=0, lt=1, description="coverage of the intervals (0.95: 95% intervals)")
    bootstrap_reps: int = Field(ge=100, description="replicates of the cluster bootstrap over viewers")
    seed: int = Field(ge=0, description="the bootstrap's seed: the same log and settings give the same intervals")
    batch_values: int = Field(ge=1, description="most numbers one batch of replicates holds (a bound on memory)")


class SimulationSettings(_Section):
    """``[simulation]``: when ``glassfeed simulate``'s headline states a finding (``sim/headline.py``)."""

    alpha: float = Field(gt=0, lt=1, description="two-sided error level of the headline's t-intervals across seeds")
    min_person_steps: int = Field(
        ge=1, description="a run of fewer users x steps per seed is too small to tell: the headline states no finding"
    )


class Settings(_Section):
    store: StoreSettings
    ingest: IngestLimits
    data: DataSettings
    api: ApiSettings
    state: StateSettings
    retrieval: RetrievalSettings
    serving: ServingSettings
    bluesky: BlueskySection
    web: WebSettings
    train: TrainSettings
    moderation: ModerationSettings
    notifications: NotificationSettings
    wellbeing: WellbeingSettings
    ads: AdsSettings
    experiments: ExperimentSettings
    trends: TrendSettings
    creators: CreatorSettings
    audit: AuditSettings
    simulation: SimulationSettings

    @property
    def api_key(self) -> str | None:
        return self.api.key or None

    @property
    def data_dir(self) -> Path:
        return Path(self.data.shared_dir) if self.data.shared_dir else default_data_dir()

    def replace(self, **sections: Mapping[str, Any]) -> Settings:
        """A copy with some keys changed, validated like any other layer (``replace(store={"path": p})``)."""
        return _build([("base settings", self.model_dump()), ("overrides", dict(sections))])


# ---------------------------------------------------------------------------------------------- loading
def load_toml_resource(name: str) -> dict[str, Any]:
    """Read a TOML file shipped inside the package (e.g. ``"defaults.toml"``, ``"policies/engagement.toml"``)."""
    return tomllib.loads(resources.files("glassfeed").joinpath(name).read_text("utf-8"))


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Mapping[str, Any],
) -> Settings:
    """Defaults, then the TOML file at ``config_path`` / ``$GLASSFEED_CONFIG``, then the environment, then
    ``overrides`` (section -> {key: value}); raises ``SettingsError`` naming the source and key of a bad value."""
    env = os.environ if environ is None else environ
    layers: list[tuple[str, dict[str, Any]]] = [("defaults.toml", load_toml_resource("defaults.toml"))]
    path = config_path or env.get("GLASSFEED_CONFIG")
    if path:
        p = Path(path)
        try:
            layers.append((str(p), tomllib.loads(p.read_text("utf-8"))))
        except FileNotFoundError:
            raise SettingsError(f"{p}: settings file not found") from None
        except tomllib.TOMLDecodeError as e:
            raise SettingsError(f"{p}: not valid TOML: {e}") from None
    layers.extend(_env_layers(env))
    if overrides:
        layers.append(("overrides", {k: dict(v) for k, v in overrides.items()}))
    return _build(layers)


@cache
def packaged_settings() -> Settings:
    """The packaged defaults alone (no file, no environment): what a component uses when given no settings."""
    return load_settings(environ={})


def default_data_dir() -> Path:
    """``../shared/data`` beside the project root, when the package runs from a checkout; else ``./shared/data``."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent.parent / "shared" / "data"
        if (parent / "pyproject.toml").exists() and cand.exists():
            return cand
    return Path("../shared/data")


def _env_layers(env: Mapping[str, str]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in ENV_OTHER:
            continue
        raw = env[name]
        if name in ENV_ALIASES:
            section, key = ENV_ALIASES[name]
        elif "__" in name:
            section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        else:
            continue  # not a settings variable (e.g. one a test harness sets)
        out.append((f"environment variable {name}", {section: {key: _env_value(raw)}}))
    return out


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _build(layers: list[tuple[str, dict[str, Any]]]) -> Settings:
    merged: dict[str, dict[str, Any]] = {}
    origin: dict[tuple[str, str], str] = {}
    sections = Settings.model_fields
    for where, layer in layers:
        for section, body in layer.items():
            if section not in sections:
                raise SettingsError(f"{where}: [{section}]: unknown section; expected one of {', '.join(sections)}")
            if not isinstance(body, dict):
                raise SettingsError(f"{where}: [{section}]: must be a table of keys")
            model = sections[section].annotation
            assert isinstance(model, type) and issubclass(model, _Section)
            for key, value in body.items():
                if key not in model.model_fields:
                    raise SettingsError(
                        f"{where}: [{section}] {key}: unknown key; expected one of {', '.join(model.model_fields)}"
                    )
                if isinstance(value, dict) and isinstance(merged.get(section, {}).get(key), dict):
                    value = {**merged[section][key], **value}
                merged.setdefault(section, {})[key] = value
                origin[(section, key)] = where
    try:
        return Settings.model_validate(merged)
    except ValidationError as e:
        err = e.errors()[0]
        loc = [str(p) for p in err["loc"]]
        where = origin.get((loc[0], loc[1]), "settings") if len(loc) > 1 else "settings"
        key = f"[{loc[0]}] {'.'.join(loc[1:])}" if loc else "settings"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise SettingsError(f"{where}: {key}: {err['msg']}{more}") from None


__all__ = [
    "Settings",
    "SettingsError",
    "StoreSettings",
    "IngestLimits",
    "DataSettings",
    "ApiSettings",
    "StateSettings",
    "ContentSettings",
    "RetrievalSettings",
    "ServingSettings",
    "BlueskySection",
    "WebSettings",
    "TrainSettings",
    "AuditSettings",
    "SimulationSettings",
    "load_settings",
    "packaged_settings",
    "load_toml_resource",
    "default_data_dir",
    "ENV_ALIASES",
]
