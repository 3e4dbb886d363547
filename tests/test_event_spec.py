"""The event specification is the one source of the event rules: both validators and the schema follow it."""

from __future__ import annotations

import numpy as np
import pytest

from glassfeed.api.schemas import event_model
from glassfeed.domain import EVENT_FIELDS, KIND_RULES, ROW_FIELDS, EventBatch, EventKind, Target
from glassfeed.ingest import IngestError, Ingestor, batch_errors
from glassfeed.settings import IngestLimits, packaged_settings
from glassfeed.store import open_store

NOW = 1_700_000_000.0


@pytest.fixture()
def ing(tmp_path):
    st = open_store(tmp_path / "spec.db")
    ing = Ingestor(st, clock=lambda: NOW)
    ing.create_users([{"id": f"u{i}"} for i in range(3)], with_tokens=False)
    ing.create_posts([{"id": f"p{i}", "author": "u0", "text": "t", "created_at": NOW - 10} for i in range(3)])
    yield ing
    st.close()


def _wire_errors(ing: Ingestor, records: list) -> list[tuple[int, str, str]]:
    try:
        ing.parse_events(records)
    except IngestError as e:
        return [(x.index, x.field, x.reason) for x in e.errors]
    return []


def _batch_errors(ing: Ingestor, batch: EventBatch) -> list[tuple[int, str, str]]:
    st = ing.store
    return [
        (x.index, x.field, x.reason)
        for x in batch_errors(batch, ing.limits, NOW, len(st.user_ids()), len(st.post_ids()))
    ]


def test_spec_names_settings_keys_and_batch_columns():
    limits = IngestLimits.model_fields
    for f in EVENT_FIELDS:
        assert f.name in ROW_FIELDS  # a wire field fills the EventBatch column of the same name
        assert f.limit is None or f.limit in limits, f.name
        assert (f.limit is None) == (f.bound is None), f.name
    assert set(KIND_RULES) == set(EventKind)
    assert KIND_RULES[EventKind.FOLLOW].target is Target.USER
    assert KIND_RULES[EventKind.SEE_LESS].target is Target.POST_OR_USER
    assert KIND_RULES[EventKind.LIKE].target is Target.POST and KIND_RULES[EventKind.DWELL].requires == ("value",)


@pytest.mark.parametrize("kind", list(EventKind), ids=lambda k: k.wire)
def test_kind_rules_are_enforced_identically_by_both_validators(ing, kind):
    """Every combination of targets and value for one kind: the per-item validator (wire dicts) and the
    vectorised one (resolved columns) reject the same items with the same errors, and exactly those the spec's
    rule for the kind names."""
    combos = [(post, target, value) for post in (None, "p1") for target in (None, "u2") for value in (None, 5.0)]
    wire = [
        {"kind": kind.wire, "user": "u1", "ts": NOW - 1}
        | ({"post": p} if p else {})
        | ({"target_user": t} if t else {})
        | ({"value": v} if v is not None else {})
        for p, t, v in combos
    ]
    st = ing.store
    batch = EventBatch.from_columns(
        kind=np.full(len(combos), int(kind)),
        user=np.full(len(combos), st.user_idx("u1")),
        ts=np.full(len(combos), NOW - 1),
        post=[st.post_idx(p) if p else -1 for p, _, _ in combos],
        target_user=[st.user_idx(t) if t else -1 for _, t, _ in combos],
        value=[np.nan if v is None else v for _, _, v in combos],
    )
    per_item, vectorised = _wire_errors(ing, wire), _batch_errors(ing, batch)
    assert per_item == vectorised
    rule = KIND_RULES[kind]
    expected = {
        i
        for i, (p, t, v) in enumerate(combos)
        if (rule.target is Target.POST and p is None)
        or (rule.target is Target.USER and t is None)
        or (rule.target is Target.POST_OR_USER and p is None and t is None)
        or ("value" in rule.requires and v is None)
        or "request_id" in rule.requires  # never given here
        or (rule.value_range is not None and v is not None and not rule.value_range[0] <= v <= rule.value_range[1])
    }
    assert {i for i, _, _ in per_item} == expected
    if expected:  # a kind with no rule at all would make this test vacuous
        assert all(reason for _, _, reason in per_item)


def test_bounds_come_from_the_settings_not_the_code(ing):
    rows = [
        {
            "kind": "like",
            "user": "u1",
            "post": "p1",
            "position": 9,
            "surface": "abcdef",
            "request_id": "r" * 9,
            "value": 50,
            "ts": NOW + 20,
        }
    ]
    assert _wire_errors(ing, rows) == []
    ing.limits = packaged_settings().ingest.model_copy(
        update={
            "max_position": 9,
            "max_surface_chars": 5,
            "max_request_id_chars": 8,
            "max_dwell_ms": 49,
            "max_future_skew_s": 10,
        }
    )
    got = {(f, r) for _, f, r in _wire_errors(ing, rows)}
    assert got == {
        ("position", "must be an integer in [0, 9)"),
        ("surface", "must be a string of at most 5 characters"),
        ("request_id", "must be a string of at most 8 characters"),
        ("value", "must be a number in [0, 49]"),
        ("ts", "is 20 s in the future (limit 10 s)"),
    }
    batch = ing.parse_events([{"kind": "like", "user": "u1", "post": "p1"}])
    batch.position[:] = 9
    assert _batch_errors(ing, batch) == [(0, "position", "must be an integer in [0, 9)")]


def test_vectorised_validator_checks_store_ranges_and_strings(ing):
    batch = EventBatch.from_columns(
        kind=[4, 4, 99, 11, 4],
        user=[1, 9, 1, 1, 1],
        post=[1, 1, 1, -1, 7],
        target_user=[-1, -1, -1, 2, -1],
        ts=[NOW, NOW, NOW, NOW, np.nan],
        id=["ok", None, "gf:1", "", None],
    )
    assert _batch_errors(ing, batch) == [
        (1, "user", "unknown user index 9"),
        (2, "id", "ids starting with 'gf:' are reserved"),
        (2, "kind", "unknown event kind code 99"),
        (3, "id", "must be a non-empty string of at most 256 characters"),
        (4, "post", "unknown post index 7"),
        (4, "ts", "must be a finite, non-negative time"),
    ]


def test_openapi_model_is_generated_from_the_spec():
    limits = packaged_settings().ingest
    schema = event_model(limits).model_json_schema()
    assert list(schema["properties"]) == [f.name for f in EVENT_FIELDS]
    assert schema["required"] == [f.name for f in EVENT_FIELDS if f.required]
    assert schema["additionalProperties"] is False
    for f in EVENT_FIELDS:
        assert schema["properties"][f.name]["description"].startswith(f.description)
    assert schema["properties"]["kind"]["enum"] == [k.wire for k in EventKind]
    pos = schema["properties"]["position"]["anyOf"][0]
    assert pos == {"type": "integer", "minimum": 0, "exclusiveMaximum": limits.max_position}
    small = event_model(limits.model_copy(update={"max_surface_chars": 7})).model_json_schema()
    assert small["properties"]["surface"]["anyOf"][0]["maxLength"] == 7


@pytest.mark.parametrize(
    "field", ["id", "kind", "user", "post", "target_user", "ts", "value", "surface", "position", "request_id"]
)
@pytest.mark.parametrize("bad", [["x"], {"a": 1}, True, 10**400], ids=["list", "object", "bool", "huge"])
def test_a_wrong_type_in_any_field_is_an_item_error(ing, field, bad):
    rows = [{"kind": "like", "user": "u1", "post": "p1"}, {"kind": "like", "user": "u1", "post": "p1", field: bad}]
    errors = _wire_errors(ing, rows)
    assert [(i, f) for i, f, _ in errors] == [(1, field)]
