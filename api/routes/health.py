"""`GET /healthz` (the process answers) and `GET /readyz` (rules are loaded): always open."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

import engine

from ..models import Health, Ready

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> Health:
    """Liveness: no work, no dependencies."""
    return Health()


@router.get("/readyz", responses={503: {"model": Ready}})
def readyz(request: Request) -> Ready:
    """Readiness: 200 once the rules have been loaded (trials may still be zero), else 503."""
    registry = request.app.state.registry
    if not registry.loaded:
        body = Ready(status="not_ready", trials=0, rules_generation=0, failed_files=[],
                     engine_version=engine.__version__)
        return JSONResponse(body.model_dump(), status_code=503)
    snap = registry.snapshot
    return Ready(status="ready", trials=len(snap.trials), rules_generation=snap.generation,
                 failed_files=list(snap.failed_files), engine_version=engine.__version__)
