"""An online experiment as data: the one definition (``ExperimentSpec``), read from the admin API's JSON, from a
TOML file (``load_spec_file``) or from the store (``Experiment.from_row``), each refused with the field named.

An experiment runs on one **layer**, the surface whose lever its arms set: ``feed`` (each arm a feed policy),
``notifications`` (each arm a notification policy) or ``ads`` (each arm an ad load: the share of a page's places
that may be ads). It splits ``traffic`` (a share of the layer's people) between its **arms** by their ``share``;
the first arm (or the one named ``control``) is the baseline every other arm is compared with. **Guardrails** are
data: a metric, and the largest relative increase or decrease of the arm against the control that is allowed
(``{metric = "divisive_share", max_increase = 0.05}``: divisive share must not rise by more than 5%).

Its state: ``draft`` (created, may be replaced), ``running`` (since ``started_at``: people are assigned and served
by their arm; its layer buckets are held), ``stopped`` (since ``stopped_at``: nobody is served by it; the report
stays). ``draft -> running -> stopped`` only.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from glassfeed.ingest import IngestError, ItemError
from glassfeed.store import ExperimentRow

#: The surfaces an experiment may run on, each a layer of its own (experiments on different layers overlap).
LAYERS: tuple[str, ...] = ("feed", "notifications", "ads")
#: An experiment's states, in the only order they follow.
STATES: tuple[str, ...] = ("draft", "running", "stopped")
#: What the analysis measures per exposed person (``glassfeed.experiments.service``): name -> what it is.
METRICS: dict[str, str] = {
    "engagement": "likes, reposts and replies per impression",
    "impressions": "posts shown",
    "time_minutes": "minutes in the app (pages served, sessions split as the usage budget splits them)",
    "sessions": "sessions (pages further apart than [wellbeing] session_gap_min start a new one)",
    "worth_it": 'share of "was this worth your time?" answers that were yes',
    "divisive_share": "share of impressions that were divisive posts ([experiments] divisive_threshold)",
    "see_less_rate": '"see less" and "not interested" per impression',
    "report_rate": "reports per impression",
    "retention": "returned (a page in a later session) within [experiments] retention_days of exposure",
}
#: Ids of experiments and arms: short, URL- and TOML-safe.
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
#: How many buckets each layer's people are hashed into; an experiment holds a contiguous range of them.
BUCKETS = 10_000


class ExperimentError(IngestError):
    """A refused experiment request: each problem's field and reason (the first also as ``field``/``reason``) and
    the HTTP ``status`` (4xx) the API answers with, in the project's error body."""

    def __init__(self, field: str, reason: str, status: int = 422, more: list[tuple[str, str]] | None = None) -> None:
        self.problems = more or [(field, reason)]
        super().__init__([ItemError(-1, f, r) for f, r in self.problems], status=status)
        self.field, self.reason = self.problems[0]

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Arm(_Strict):
    """One arm: its name, its share of the experiment's people, and what it sets on its layer."""

    name: StrictStr = Field(pattern=NAME_PATTERN, description="the arm's id")
    share: StrictFloat | int = Field(gt=0, le=1, description="its share of the experiment's people; shares sum to 1")
    policy: StrictStr | None = Field(
        default=None, min_length=1, max_length=100, description="feed or notifications layer: the policy it serves"
    )
    ad_load: StrictFloat | int | None = Field(
        default=None, ge=0, le=0.5, description="ads layer: at most this share of a page's places are ads"
    )


class Limits(_Strict):
    """A guardrail: a metric's largest allowed relative change against a reference (fractions: 0.05 = 5%), as
    ``analysis.guardrail_verdict`` reads it. The one definition behind an online experiment's guardrails
    (``Guardrail``: an arm against the control) and the simulator launch gate's (``glassfeed.sim.gate``: a candidate
    policy against a baseline, across seeds); each narrows ``metric`` to the metrics it measures."""

    metric: StrictStr = Field(description="what is guarded")
    max_increase: StrictFloat | int | None = Field(default=None, ge=0, description="e.g. 0.05: must not rise 5%")
    max_decrease: StrictFloat | int | None = Field(default=None, ge=0, description="e.g. 0.02: must not fall 2%")

    @model_validator(mode="after")
    def _one_bound(self) -> Limits:
        if self.max_increase is None and self.max_decrease is None:
            raise ValueError("a guardrail needs max_increase or max_decrease")
        return self

    @property
    def limits(self) -> tuple[float | None, float | None]:
        """(max_increase, max_decrease) as floats, the arguments of ``analysis.guardrail_verdict``."""
        return (
            None if self.max_increase is None else float(self.max_increase),
            None if self.max_decrease is None else float(self.max_decrease),
        )


class Guardrail(Limits):
    """An online experiment's guardrail: an arm's metric against the control's."""

    metric: Literal[tuple(METRICS)] = Field(description="what is guarded: " + ", ".join(METRICS))  # type: ignore[valid-type]


class ExperimentSpec(_Strict):
    """What an experiment is (its state lives beside it, in ``Experiment``)."""

    name: StrictStr = Field(pattern=NAME_PATTERN, description="the experiment's id")
    description: StrictStr = Field(default="", max_length=2000, description="what it tests, for the report")
    layer: Literal["feed", "notifications", "ads"] = Field(description="the surface it runs on: " + ", ".join(LAYERS))
    traffic: StrictFloat | int = Field(default=1.0, gt=0, le=1, description="share of the layer's people it takes")
    arms: list[Arm] = Field(min_length=2, max_length=10, description="at least two arms; shares sum to 1")
    control: StrictStr | None = Field(default=None, description="the baseline arm (default: the first)")
    guardrails: list[Guardrail] = Field(default_factory=list, max_length=20)

    @field_validator("arms")
    @classmethod
    def _arms(cls, arms: list[Arm], info: ValidationInfo) -> list[Arm]:
        names = [a.name for a in arms]
        if len(set(names)) != len(names):
            raise ValueError("each arm needs its own name")
        total = sum(float(a.share) for a in arms)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"the shares sum to {total:g}, not 1")
        layer = info.data.get("layer")
        for i, a in enumerate(arms):
            if layer == "ads":
                if a.ad_load is None:
                    raise ValueError(f"arm {i} ({a.name}): ad_load is required on the ads layer (0 to 0.5)")
                if a.policy is not None:
                    raise ValueError(f"arm {i} ({a.name}): an ads arm sets ad_load, not a policy")
            elif layer is not None:
                if a.policy is None:
                    raise ValueError(f"arm {i} ({a.name}): policy is required on the {layer} layer (a {layer} policy)")
                if a.ad_load is not None:
                    raise ValueError(f"arm {i} ({a.name}): only an ads arm sets ad_load")
        return arms

    @field_validator("control")
    @classmethod
    def _control(cls, control: str | None, info: ValidationInfo) -> str | None:
        names = [a.name for a in info.data.get("arms") or []]
        if control is not None and names and control not in names:
            raise ValueError(f"{control!r} is not an arm; expected one of {', '.join(names)}")
        return control

    @property
    def control_arm(self) -> str:
        return self.control or self.arms[0].name


def spec_problems(e: ValidationError) -> list[tuple[str, str]]:
    """A pydantic error as (field, reason) pairs, the field dotted as the API's errors name it (``arms.1.share``)."""
    out = []
    for err in e.errors():
        field = ".".join(str(p) for p in err.get("loc", ())) or "body"
        out.append((field, str(err.get("msg", "invalid")).removeprefix("Value error, ")))
    return out


def parse_spec(body: Any) -> ExperimentSpec:
    """``body`` (a dict) as an ``ExperimentSpec``; an ``ExperimentError`` (422) naming each bad field."""
    try:
        return ExperimentSpec.model_validate(body)
    except ValidationError as e:
        problems = spec_problems(e)
        raise ExperimentError(problems[0][0], problems[0][1], 422, problems) from None


def load_spec_file(path: str | Path) -> ExperimentSpec:
    """An experiment from a TOML file (the same keys as the API's JSON, ``[[arms]]`` and ``[[guardrails]]``)."""
    p = Path(path)
    try:
        body = tomllib.loads(p.read_text("utf-8"))
    except FileNotFoundError:
        raise ExperimentError("file", f"{p}: not found", 404) from None
    except tomllib.TOMLDecodeError as e:
        raise ExperimentError("file", f"{p}: not valid TOML: {e}") from None
    try:
        return parse_spec(body)
    except ExperimentError as e:
        problems = [(f, f"{p}: {r}") for f, r in e.problems]
        raise ExperimentError(problems[0][0], problems[0][1], e.status, problems) from None


@dataclass(frozen=True, slots=True)
class Experiment:
    """An experiment's definition and state, as stored (``ExperimentRow.body``: the spec's keys plus ``status``,
    ``started_at``, ``stopped_at`` and ``buckets``, the range of its layer's buckets it held when it started)."""

    spec: ExperimentSpec
    status: str = "draft"
    created_at: float = 0.0
    updated_at: float = 0.0
    started_at: float | None = None
    stopped_at: float | None = None
    buckets: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def layer(self) -> str:
        return self.spec.layer

    @property
    def running(self) -> bool:
        return self.status == "running"

    def arm(self, name: str) -> Arm | None:
        return next((a for a in self.spec.arms if a.name == name), None)

    def to_row(self) -> ExperimentRow:
        body = self.spec.model_dump(mode="json")
        body.update(
            status=self.status,
            started_at=self.started_at,
            stopped_at=self.stopped_at,
            buckets=list(self.buckets) if self.buckets else None,
        )
        return ExperimentRow(self.name, body, self.created_at, self.updated_at)

    @classmethod
    def from_row(cls, row: ExperimentRow) -> Experiment:
        body = dict(row.body)
        status = body.pop("status", "draft")
        started, stopped, buckets = (
            body.pop("started_at", None),
            body.pop("stopped_at", None),
            body.pop("buckets", None),
        )
        return cls(
            parse_spec(body),
            status if status in STATES else "draft",
            row.created_at,
            row.updated_at,
            started,
            stopped,
            (int(buckets[0]), int(buckets[1])) if buckets else None,
        )

    def started(self, at: float, buckets: tuple[int, int]) -> Experiment:
        return replace(self, status="running", started_at=at, updated_at=at, buckets=buckets)

    def stopped(self, at: float) -> Experiment:
        """Stopped: its buckets are free for other experiments (``free_range`` counts running ones only), and kept
        here so that the report can still tell who was assigned."""
        return replace(self, status="stopped", stopped_at=at, updated_at=at)

    def public(self) -> dict[str, Any]:
        """What the admin API shows of it."""
        return {
            **self.spec.model_dump(mode="json"),
            "control": self.spec.control_arm,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "started_at": self.started_at,
            "stopped_at": self.stopped_at,
            "buckets": list(self.buckets) if self.buckets else None,
        }


def bucket_range(traffic: float) -> int:
    """How many of a layer's ``BUCKETS`` an experiment taking ``traffic`` of its people holds."""
    return max(1, min(BUCKETS, math.floor(float(traffic) * BUCKETS + 1e-9)))


__all__ = [
    "Arm",
    "BUCKETS",
    "Experiment",
    "ExperimentError",
    "ExperimentSpec",
    "Guardrail",
    "LAYERS",
    "Limits",
    "METRICS",
    "NAME_PATTERN",
    "STATES",
    "bucket_range",
    "load_spec_file",
    "parse_spec",
    "spec_problems",
]
