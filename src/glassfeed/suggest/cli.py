"""``glassfeed suggestions``: the suggestion policies in plain words, training the P(follow | suggested) head (on
the logged suggestions when enough are logged, else on the store's newest follows), and one person's suggestions
with their reasons."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from glassfeed.cli_support import cli_settings, console, handled, open_ingestor, out
from glassfeed.suggest.policy import builtin_policies
from glassfeed.suggest.policy import describe as describe_policy

group = typer.Typer(help="People you may know: policies, the learned head, suggestions.", no_args_is_help=True)


@group.command()
def describe(name: str = typer.Argument("growth", help="a suggestion policy")) -> None:
    """Print a suggestion policy in plain words."""
    with handled():
        pols = builtin_policies()
        if name not in pols:
            raise typer.BadParameter(f"unknown suggestion policy {name!r}; expected one of {sorted(pols)}")
        out.print(describe_policy(pols[name]), markup=False)


@group.command()
def train(ctx: typer.Context, db: Path | None = typer.Option(None, "--db", help="the store")) -> None:
    """Train the head ([training] in suggest/model.toml): on the logged suggestions (shown, then followed within
    the label window or not) when at least min_logged_impressions are logged, else on the store's newest follows.
    Writes <models>/suggestions (the server reads it when it starts) and says which data it used."""
    from glassfeed.feed.service import FeedService
    from glassfeed.suggest.service import SuggestionService

    settings = cli_settings(ctx, db)
    with handled():
        ing = open_ingestor(settings)
        try:
            svc = SuggestionService(FeedService(ing, settings))
            info = svc.retrain()
        finally:
            ing.store.close()
    out.print(json.dumps(info, indent=1), markup=False, highlight=False)
    console.print(f"trained on {info['trained_on']} ({info['why']}); wrote {svc.folder}")


@group.command()
def show(
    ctx: typer.Context,
    user: str = typer.Argument(..., help="the person's id"),
    db: Path | None = typer.Option(None, "--db", help="the store"),
    policy: str = typer.Option("growth", help="a suggestion policy"),
    limit: int | None = typer.Option(None, min=1, help="how many (default: the policy's)"),
) -> None:
    """One person's suggestions, each with why (not logged as shown)."""
    from glassfeed.feed.service import FeedService
    from glassfeed.suggest.service import SuggestionService

    settings = cli_settings(ctx, db)
    with handled():
        ing = open_ingestor(settings)
        try:
            ans = SuggestionService(FeedService(ing, settings)).suggest(
                user, policy=policy, limit=limit, log_impressions=False
            )  # a look from the terminal: nobody was shown them
        finally:
            ing.store.close()
    out.print(f"ranked by {ans['ranked_by']} ({ans['policy']})", markup=False)
    for i, item in enumerate(ans["items"], 1):
        out.print(f"{i:>3}. @{item['handle']}  {item['score']:.4f}  {item['explanation']}", markup=False)


def register(app: typer.Typer) -> None:
    """Add ``suggestions`` (a group) to the main CLI."""
    app.add_typer(group, name="suggestions")
