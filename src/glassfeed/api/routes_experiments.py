"""Experiment routes: create, start, stop, list and report (the service key), and a person's own experiments (their
token). ``install(app)`` builds the ExperimentService beside the feed, notification and ad services, whose levers
it sets (docs/experiments.md)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from glassfeed.api.auth import require_service_key, require_user_or_service
from glassfeed.api.routes_feed import JsonBodyRoute
from glassfeed.api.schemas import error_responses, json_error_responses
from glassfeed.experiments.model import NAME_PATTERN, ExperimentSpec
from glassfeed.experiments.service import ExperimentService, report_html

router = APIRouter(route_class=JsonBodyRoute)
_ADMIN = [Depends(require_service_key)]
_TAGS: list[str | Enum] = ["experiments"]
_NAME = Annotated[str, PathParam(pattern=NAME_PATTERN, description="the experiment's name")]


def _svc(request: Request) -> ExperimentService:
    return request.app.state.experiments


@router.post(
    "/v1/experiments", status_code=201, responses=error_responses(400, 401, 409, 422), dependencies=_ADMIN, tags=_TAGS
)
def create(request: Request, body: ExperimentSpec) -> dict[str, Any]:
    """Create an experiment as a draft (or replace a draft of the same name): its layer (feed, notifications or
    ads), its arms (a feed or notification policy each, or an ad load) with their shares, the share of the layer's
    people it takes and its guardrails. A refusal names the field."""
    return _svc(request).create(body)


@router.get("/v1/experiments", responses=error_responses(401), dependencies=_ADMIN, tags=_TAGS)
def list_experiments(request: Request) -> dict[str, Any]:
    return {"experiments": _svc(request).all()}


@router.get("/v1/experiments/{name}", responses=error_responses(401, 404), dependencies=_ADMIN, tags=_TAGS)
def get(request: Request, name: _NAME) -> dict[str, Any]:
    return _svc(request).get(name)


@router.post("/v1/experiments/{name}/start", responses=error_responses(401, 404, 409), dependencies=_ADMIN, tags=_TAGS)
def start(request: Request, name: _NAME) -> dict[str, Any]:
    """Start a draft: from now its layer's people in its share are assigned to its arms and served by them."""
    return _svc(request).start(name)


@router.post("/v1/experiments/{name}/stop", responses=error_responses(401, 404, 409), dependencies=_ADMIN, tags=_TAGS)
def stop(request: Request, name: _NAME) -> dict[str, Any]:
    """Stop a running experiment: nobody is served by it from now on; its report stays."""
    return _svc(request).stop(name)


@router.get("/v1/experiments/{name}/report", responses=error_responses(401, 404, 409), dependencies=_ADMIN, tags=_TAGS)
async def report(request: Request, name: _NAME) -> dict[str, Any]:
    """Per arm, from the event log since each person's exposure: exposures and the sample-ratio check, each metric
    with its difference against the control (Welch, CUPED, always-valid mSPRT), the guardrails' verdicts."""
    return await run_in_threadpool(_svc(request).report, name)


@router.get(
    "/v1/experiments/{name}/report.html",
    response_class=HTMLResponse,
    responses=json_error_responses(401, 404, 409, 413, 422, 429),
    dependencies=_ADMIN,
    tags=_TAGS,
)
async def report_page(request: Request, name: _NAME) -> HTMLResponse:
    """The report as an HTML page."""
    rep = await run_in_threadpool(_svc(request).report, name)
    csp = "default-src 'none'; style-src 'unsafe-inline'"  # the page's own inline style, nothing else
    return HTMLResponse(report_html(rep), headers={"cache-control": "no-store", "content-security-policy": csp})


@router.get("/v1/users/{user_id}/experiments", tags=["experiments"], responses=error_responses(401, 404))
def my_experiments(request: Request, user_id: str, idx: int = Depends(require_user_or_service)) -> dict[str, Any]:
    """The experiments you are in (or were), your arm in each and what it changes for you; ``excluded`` says when a
    choice of your own (your feed policy, your notification policy) keeps an experiment from changing it."""
    return {"user": user_id, "experiments": _svc(request).for_user(idx)}


def install(app: FastAPI) -> None:
    """Build the ExperimentService on the app's feed and notification services (install after the ad lever: it
    wraps the feed's ad server) and add the routes."""
    app.state.experiments = ExperimentService(app.state.feed, getattr(app.state, "notifications", None))
    app.include_router(router)


__all__ = ["install", "router"]
