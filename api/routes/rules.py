"""`POST /v1/rules/check`: criteria text in, `elig check`'s diagnostics out.

Imports resolve against the served rules directory, so an author can check an edit of a
trial before saving it over the file the server will reload.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

import engine
from engine.diagnostics import Diagnostic
from engine.rules import ImportResolver, check_source
from engine.source import Source

from ..strict_json import StrictJsonRoute
from ..deps import RulesDep, require_key
from ..models import CheckRequest, CheckResponse, DiagnosticOut

router = APIRouter(prefix="/v1/rules", tags=["rules"], dependencies=[Depends(require_key)],
                   route_class=StrictJsonRoute)


@router.post("/check")
def check_rules(body: CheckRequest, rules: RulesDep) -> CheckResponse:
    """Parse and check the text; 200 with `ok: false` when it has errors (the request was fine)."""
    found = check_source(Source(body.name, body.text), ImportResolver(rules.root))
    unique = {(d.source.name, d.span.start, d.code, d.message): d for d in found}
    diagnostics = sorted(unique.values(), key=Diagnostic.sort_key)
    errors = sum(d.severity == "error" for d in diagnostics)
    return CheckResponse(ok=errors == 0, errors=errors, warnings=len(diagnostics) - errors,
                         diagnostics=[DiagnosticOut(**rules.diagnostic_dict(d)) for d in diagnostics],
                         engine_version=engine.__version__)
