"""``glassfeed ads describe`` (the ad policy in plain language) and ``glassfeed ads train`` (the ad ranker's
P(click) and P(engagement) heads from the ad log, with their holdout report beside the campaigns' own rates)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from glassfeed.ads.policy import describe as describe_policy
from glassfeed.ads.policy import load_ad_policy
from glassfeed.cli_support import cli_settings, console, handled, open_ingestor, out
from glassfeed.store import models_dir

group = typer.Typer(help="Ads: the ad policy in plain language, the ad ranker's model.", no_args_is_help=True)


@group.command()
def describe(ctx: typer.Context) -> None:
    """Print the ad policy in plain language (how ads are chosen and priced, targeting, labels, the repository)."""
    settings = cli_settings(ctx)
    with handled():
        out.print(describe_policy(load_ad_policy(settings.ads.policy or None)), markup=False)


@group.command()
def train(
    ctx: typer.Context,
    db: Path | None = typer.Option(None, "--db", help="the store (default: [store] path)"),
    until: float | None = typer.Option(None, help="train on the ad log up to this epoch time (default: now)"),
    holdout: float = typer.Option(0.2, min=0.01, max=0.9, help="the newest share of impressions reported on"),
    models: Path | None = typer.Option(
        None, "--models", help="the models folder that receives ads/ (default: the store's, <db>.models)"
    ),
) -> None:
    """Train P(click) and P(engagement) from the ad log (point in time, Platt-calibrated), print each head's holdout
    AUC and log-loss beside the campaigns' own smoothed rates, then refit on everything and write
    <models>/ads; the server uses it (for people who allow interest-based ads) once it restarts."""
    from glassfeed.ads.model import AdModel, replay_state, train_ad_model
    from glassfeed.feed.policy import load_policies

    settings = cli_settings(ctx, db)
    with handled():
        policy = load_ad_policy(settings.ads.policy or None)
        ing = open_ingestor(settings)
        try:
            folder = (models or models_dir(ing.store.path)) / "ads"
            model, report = train_ad_model(
                ing.store,
                policy,
                until if until is not None else time.time(),
                holdout,
                model=AdModel.from_settings(settings.ads),
                state=replay_state(ing.store, settings.state),
                policies=load_policies(settings.serving.policies_dir or None),
            )
            model.save(folder)
        finally:
            ing.store.close()
    out.print(json.dumps(report, indent=1), markup=False, highlight=False)
    console.print(f"wrote {folder}")


def register(app: typer.Typer) -> None:
    """Add ``ads`` (a group) to the main CLI."""
    app.add_typer(group, name="ads")
