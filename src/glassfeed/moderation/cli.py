"""``glassfeed moderation ...`` (describe the policy, train the text classifiers) and ``glassfeed
transparency-report`` (the DSA Art. 15/24 counts of a period, as JSON and HTML)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import typer

from glassfeed.cli_support import cli_settings, console, fail, handled, open_ingestor, out
from glassfeed.moderation.policy import load_moderation_policy
from glassfeed.moderation.report import report_html, transparency_report
from glassfeed.settings import Settings
from glassfeed.store import models_dir

group = typer.Typer(help="Moderation: the policy in plain language, text classifiers.", no_args_is_help=True)


def _when(text: str, name: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        fail(f"--{name}: not an ISO 8601 date or time: {text!r}")


@group.command()
def describe(ctx: typer.Context) -> None:
    """Print the moderation policy in plain language (categories, automated rules per surface, appeals)."""
    settings = cli_settings(ctx)
    with handled():
        out.print(load_moderation_policy(settings.moderation.policy or None).describe(), markup=False)


def _classifier_folder(settings: Settings, out: Path | None) -> Path:
    if out is not None:
        return out
    if settings.moderation.classifiers:
        return Path(settings.moderation.classifiers)
    return models_dir(settings.store.path) / "classifiers"  # beside the store, with the feed's models


@group.command("train-classifiers")
def train_classifiers_cmd(
    ctx: typer.Context,
    out: Path | None = typer.Option(
        None, "--out", help="folder for the models (default: [moderation] classifiers, else <db>.models/classifiers)"
    ),
    db: Path | None = typer.Option(None, "--db", help="the store whose models folder receives them"),
) -> None:
    """Train the text classifiers (TweetEval offensive and hate, chosen on validation) from the data folder
    (GLASSFEED_DATA); the server then scores every new post with them (docs/classifiers.md)."""
    from glassfeed.moderation.classifiers import train_classifiers

    settings = cli_settings(ctx, db)
    folder = _classifier_folder(settings, out)
    with handled():
        trained = train_classifiers(settings.data_dir, folder, say=console.print)
    console.print(f"wrote {', '.join(trained.names)} to {folder}")


@group.command()
def score(
    ctx: typer.Context,
    db: Path | None = typer.Option(None, "--db", help="the store (default: [store] path)"),
    models: Path | None = typer.Option(None, "--models", help="the classifiers' folder (default as train-classifiers)"),
    batch: int = typer.Option(2000, min=1, help="posts scored per transaction"),
) -> None:
    """Score the posts that have no classifier score yet (written before the classifiers were trained)."""
    from glassfeed.moderation.classifiers import ClassifierSet

    settings = cli_settings(ctx, db)
    with handled():
        classifiers = ClassifierSet.load(_classifier_folder(settings, models))
        ing = open_ingestor(settings)
        try:
            done = {int(p) for posts, _ in ing.store.post_scores().values() for p in posts.tolist()}
            posts = ing.store.load_posts()
            todo = [(int(i), t) for i, t in zip(posts["idx"].tolist(), posts["text"]) if int(i) not in done]
            for at in range(0, len(todo), batch):
                chunk = todo[at : at + batch]
                got = classifiers.score([t for _, t in chunk])
                idx = [i for i, _ in chunk]
                ing.score_posts({name: (idx, values.tolist()) for name, values in got.items()})
        finally:
            ing.store.close()
    console.print(f"scored {len(todo):,} posts with {', '.join(classifiers.names)}")


def register(app: typer.Typer) -> None:
    """Add ``moderation`` (a group) and ``transparency-report`` to the main CLI."""
    app.add_typer(group, name="moderation")

    @app.command("transparency-report")
    def transparency_report_cmd(
        ctx: typer.Context,
        t_from: str = typer.Option(..., "--from", help="start of the period (ISO 8601, inclusive)"),
        t_to: str = typer.Option(..., "--to", help="end of the period (ISO 8601, exclusive)"),
        out: Path = typer.Option(Path("transparency"), "--out", help="folder for report.json and report.html"),
        db: Path | None = typer.Option(None, "--db", help="the store (default: [store] path)"),
    ) -> None:
        """The transparency report (DSA Art. 15/24) of a period: notices by category, actions by type and
        ground, the automated share, median time to action, appeals and reversals."""
        a, b = _when(t_from, "from"), _when(t_to, "to")
        if not a < b:
            fail("--from must be before --to")
        with handled():
            settings = cli_settings(ctx, db)
            ing = open_ingestor(settings)
            try:
                rep = transparency_report(ing.store.moderation_log(), a, b)
            finally:
                ing.store.close()
            out.mkdir(parents=True, exist_ok=True)
            (out / "report.json").write_text(json.dumps(rep, indent=1))
            (out / "report.html").write_text(report_html(rep))
            console.print(f"wrote {out / 'report.json'} and {out / 'report.html'}")
