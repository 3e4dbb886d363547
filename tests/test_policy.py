"""Policy files parse into typed sections: unknown keys, missing keys and out-of-range values are refused with
the file, section and key named."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

from glassfeed.feed.policy import (
    Adjustments,
    Breadth,
    Fatigue,
    Filters,
    Mixing,
    PolicyError,
    builtin_policies,
    load_policies,
    load_policy_file,
)

ENGAGEMENT = resources.files("glassfeed").joinpath("policies/engagement.toml").read_text("utf-8")
SECTIONS = {"adjustments": Adjustments, "filters": Filters, "mixing": Mixing, "fatigue": Fatigue, "breadth": Breadth}


def _edited(
    tmp_path: Path, section: str, line: str | None = None, drop: str | None = None, name: str = "custom.toml"
) -> Path:
    """engagement.toml with ``line`` added under ``[section]`` and/or the key ``drop`` removed from it."""
    text = ENGAGEMENT
    if drop is not None:
        text, n = re.subn(rf"^{drop} = [^\n]*\n", "", text, flags=re.M)
        assert n == 1
    if line is not None:
        text, n = re.subn(rf"^\[{section}\][^\n]*\n", lambda m: m.group(0) + line + "\n", text, flags=re.M)
        assert n == 1
    path = tmp_path / name
    path.write_text(text)
    return path


def test_presets_parse_into_typed_sections():
    pols = builtin_policies()
    assert set(pols) == {"engagement", "chronological", "stated_preference", "bridging", "breadth"}
    for p in pols.values():
        for section, model in SECTIONS.items():
            assert isinstance(getattr(p, section), model)
    eng = pols["engagement"]
    assert eng.adjustments.out_of_network_factor == 0.75 and eng.filters.max_age_hours == 168.0
    assert eng.mixing.light_ranker_keep == 150 and eng.fatigue.discount_steps == 4
    assert pols["chronological"].filters.filter_seen is False


def test_no_preset_carries_min_score_share():
    for f in resources.files("glassfeed").joinpath("policies").iterdir():
        if f.name.endswith(".toml"):
            assert "min_score_share" not in f.read_text("utf-8"), f.name


@pytest.mark.parametrize("section", list(SECTIONS))
def test_unknown_key_in_each_section_is_refused(tmp_path, section):
    path = _edited(tmp_path, section, "min_score_share = 0.0")
    with pytest.raises(PolicyError) as e:
        load_policy_file(path)
    assert str(e.value).startswith(f"custom.toml: [{section}] min_score_share: unknown key")


def test_unknown_top_level_key_is_refused(tmp_path):
    path = tmp_path / "top.toml"
    path.write_text("rankr = 'heads'\n" + ENGAGEMENT)
    with pytest.raises(PolicyError, match=r"^top\.toml: rankr: unknown key"):
        load_policy_file(path)


@pytest.mark.parametrize(
    "section, key, value, reason",
    [
        ("adjustments", "reply_factor", "-0.5", "greater than or equal to 0"),
        ("adjustments", "divisiveness_penalty", "1.5", "less than or equal to 1"),
        ("filters", "max_age_hours", "0", "greater than 0"),
        ("filters", "max_age_hours", "'a week'", "valid number"),
        ("mixing", "in_network_share", "1.2", "less than or equal to 1"),
        ("mixing", "light_ranker_keep", "0", "greater than or equal to 1"),
        ("fatigue", "filter_days", "-1.0", "greater than or equal to 0"),
        ("fatigue", "discount_steps", "0", "greater than or equal to 1"),
        ("breadth", "calibration", "1.0", "less than 1"),
        ("breadth", "smoothing", "0", "greater than 0"),
        ("breadth", "pool", "0", "greater than or equal to 1"),
        ("breadth", "prior_strength", "-1", "greater than or equal to 0"),
    ],
)
def test_values_out_of_range_are_refused(tmp_path, section, key, value, reason):
    path = _edited(tmp_path, section, f"{key} = {value}", drop=key)
    with pytest.raises(PolicyError) as e:
        load_policy_file(path)
    msg = str(e.value)
    assert msg.startswith(f"custom.toml: [{section}] {key}: ") and reason in msg


def test_missing_key_is_named(tmp_path):
    with pytest.raises(PolicyError, match=r"^custom\.toml: \[mixing\] light_ranker_keep: Field required"):
        load_policy_file(_edited(tmp_path, "mixing", drop="light_ranker_keep"))


def test_section_replace_validates():
    mixing = builtin_policies()["engagement"].mixing
    assert mixing.replace(in_network_share=1.0).in_network_share == 1.0
    assert mixing.in_network_share == 0.6  # frozen: the preset is unchanged
    with pytest.raises(ValueError):
        mixing.replace(in_network_share=2.0)
    with pytest.raises(ValueError):
        mixing.replace(min_score_share=0.0)


def test_extra_folder_adds_a_policy_and_its_errors_name_the_file(tmp_path):
    _edited(tmp_path, "filters", drop="filter_seen", line="filter_seen = false", name="mine.toml")
    text = (tmp_path / "mine.toml").read_text().replace('name = "engagement"', 'name = "mine"')
    (tmp_path / "mine.toml").write_text(text)
    pols = load_policies(tmp_path)
    assert pols["mine"].filters.filter_seen is False and pols["engagement"].filters.filter_seen is True
    _edited(tmp_path, "fatigue", "decay = 1", name="broken.toml")
    with pytest.raises(PolicyError, match=r"^broken\.toml: \[fatigue\] decay: unknown key"):
        load_policies(tmp_path)
