"""``glassfeed evaluate``: one clear line and exit code 2 on bad input; a full run on a tiny synthetic dataset."""

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from glassfeed.evaluate.cli import register


@pytest.fixture()
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:  # a callback keeps "evaluate" a named sub-command, as in the real CLI
        pass

    return app


@pytest.fixture()
def tiny_ml100k(tmp_path, monkeypatch):
    """A synthetic ratings file in ml-100k's u.data format, under a fake data directory."""
    rng = np.random.default_rng(0)
    lines = []
    for user in range(1, 61):
        block = 0 if user <= 30 else 20
        for item in rng.choice(20, size=12, replace=False) + block + 1:
            lines.append(f"{user}\t{item}\t{rng.integers(1, 6)}\t{880000000 + len(lines)}")
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "ml-100k" / "u.data").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("GLASSFEED_DATA", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(
    "args, message",
    [
        (["--protocol", "nope"], "unknown protocol 'nope'"),
        (["--dataset", "nope"], "unknown dataset 'nope'"),
        (["--protocol", "ms-ml100k", "--models", "ease,nope"], "unknown model 'nope'"),
        (["--protocol", "ms-ml100k", "--models", "ease+nope"], "unknown model 'nope'"),
        (["--protocol", "ms-ml100k", "--dataset", "ml-1m"], "runs on dataset 'ml-100k'"),
        ([], "give --protocol"),
    ],
)
def test_bad_names_print_one_line_and_exit_2(app, args, message):
    result = CliRunner().invoke(app, ["evaluate", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_missing_data_dir_exits_2(app, tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSFEED_DATA", str(tmp_path / "absent"))
    result = CliRunner().invoke(app, ["evaluate", "--dataset", "ml-1m"])
    assert result.exit_code == 2
    assert "dataset 'ml-1m' not found" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_full_run_writes_markdown_and_json(app, tiny_ml100k, tmp_path):
    out = tmp_path / "results"
    result = CliRunner().invoke(
        app, ["evaluate", "--dataset", "ml-100k", "--models", "pop,ease,ease+pop", "--out", str(out), "--repeats", "2"]
    )
    assert result.exit_code == 0, result.output
    runs = json.loads((out / "ms-ml100k.json").read_text())
    assert [r["model"] for r in runs[0]["results"]] == ["pop", "ease", "ease+pop"]
    ease = runs[0]["results"][1]
    assert set(ease["params"]) == {"lam"} or set(ease["params"]) == {"lam", "gamma"}
    assert len(ease["trials"]) == 8 and 0 <= ease["metrics"]["ndcg@10"] <= 1
    # two taste blocks: personalised EASE must beat the popularity baseline on them
    assert ease["metrics"]["ndcg@10"] > runs[0]["results"][0]["metrics"]["ndcg@10"]
    assert runs[0]["machine"]["cores"] >= 1
    assert len(ease["fit_runs"]) == len(ease["rank_runs"]) == 2  # medians rest on --repeats runs
    assert len(runs[0]["results"][2]["fit_runs"]) == 2
    md = (out / "ms-ml100k.md").read_text()
    assert "| glassfeed ease |" in md and "| published BPR (cornac) |" in md
