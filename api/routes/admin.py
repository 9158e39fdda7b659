"""`POST /v1/admin/reload`: reload the rules without a restart (SIGHUP does the same)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

import engine

from ..cds.models import FeedbackCounts
from ..strict_json import StrictJsonRoute
from ..deps import RegistryDep, require_admin_key
from ..models import DiagnosticOut, ReloadResponse
from ..registry import ReloadOutcome

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin_key)],
                   route_class=StrictJsonRoute)


def reload_report(outcome: ReloadOutcome) -> ReloadResponse:
    snap = outcome.snapshot
    diagnostics = [DiagnosticOut(**snap.diagnostic_dict(d)) for d in snap.diagnostics]
    return ReloadResponse(
        ok=not snap.failed_files, generation=snap.generation, loaded_at=snap.loaded_at, trials=list(snap.trials),
        added=outcome.added, updated=outcome.updated, removed=outcome.removed,
        kept_previous=list(snap.kept_previous), failed_files=list(snap.failed_files), diagnostics=diagnostics,
        engine_version=engine.__version__)


@router.post("/reload")
def reload_rules(registry: RegistryDep) -> ReloadResponse:
    """Reload the rules directory. A broken file is reported in `diagnostics`, and its trial keeps
    serving its last good version (`kept_previous`); 200 either way, since the service still serves.

    Applies to the worker process that answers; with several workers, send SIGHUP to each.
    """
    return reload_report(registry.reload())


@router.get("/feedback")
def feedback_counts(request: Request) -> FeedbackCounts:
    """CDS card feedback counts since this process started (nothing else is kept)."""
    return request.app.state.feedback.counts()
