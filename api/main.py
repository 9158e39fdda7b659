"""The FastAPI application: `create_app(settings)` and the module-level `app` uvicorn serves.

`elig serve` runs `uvicorn api.main:app` with `ELIG_RULES_DIR` set; everything else comes from
`ELIG_*` environment variables (`api/settings.py`). Rules load at startup and reload on
`POST /v1/admin/reload` or SIGHUP, keeping the last good version of any trial whose file breaks.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

import engine

from .cds.feedback import FeedbackStore
from .cds.trust import ReplayGuard, load_jwks
from .problems import PROBLEM_TYPES, BodyLimit, ErrorGuard, Problem, ProblemType, install, log_exception
from .registry import RuleRegistry
from .routes import admin, cds_hooks, health, rules, screen, trials
from .settings import Settings

STATIC = Path(__file__).resolve().parent / "static"
log = logging.getLogger("elig.api")

# httpx logs every request URL at INFO; FHIR URLs carry patient ids, and patient data is never logged.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)


def _install_sighup(app: FastAPI) -> bool:
    """SIGHUP reloads the rules, in a thread so requests keep being served meanwhile.

    Only possible in the main thread of a process (as under uvicorn); elsewhere, for example an
    app served from a test thread, the admin endpoint is the way to reload.
    """
    if not hasattr(signal, "SIGHUP"):
        return False
    loop = asyncio.get_running_loop()

    def on_hup() -> None:
        async def reload() -> None:
            try:
                outcome = await run_in_threadpool(app.state.registry.reload)
                snap = outcome.snapshot
                log.info("rules reloaded on SIGHUP: generation %d, %d trials, kept previous: %s, failed: %s",
                         snap.generation, len(snap.trials), list(snap.kept_previous), list(snap.failed_files))
            except Exception as exc:  # noqa: BLE001 — a failed reload must not end the server
                log_exception(exc, "SIGHUP reload")
        app.state.reloads.add(task := loop.create_task(reload()))
        task.add_done_callback(app.state.reloads.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_hup)
    except (RuntimeError, ValueError, NotImplementedError):
        return False
    return True


@asynccontextmanager
async def lifespan(app: FastAPI):
    """Load the rules before serving; listen for SIGHUP while serving."""
    await run_in_threadpool(lambda: app.state.registry.snapshot)  # frozen when loaded (ELIG_TUNE_GC)
    hup = _install_sighup(app)
    yield
    if hup:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
    await run_in_threadpool(app.state.registry.finish_cache_writes)


def create_app(settings: Settings | None = None) -> FastAPI:
    """An app serving one rules directory with the given settings (default: from the environment)."""
    settings = settings or Settings()
    app = FastAPI(
        title="elig: clinical-trial eligibility screening",
        version=engine.__version__,
        description="Screen patients (the engine's JSON or FHIR R4) against trial criteria; every criterion comes "
                    "back met, not met, unknown (with the data that would decide it), not applicable, or left to "
                    "a person. Errors are RFC 9457 problem details. Includes a CDS Hooks 2.0 patient-view service.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.registry = RuleRegistry(settings.rules_dir, settings.cache_dir, freeze_rules=settings.tune_gc)
    app.state.feedback = FeedbackStore()
    app.state.cds_keys = load_jwks(settings.cds_jwks)
    app.state.cds_replay = ReplayGuard()
    app.state.reloads = set()
    install(app)
    # Added innermost first: CORS outermost, so that 413s and 500s carry its headers too.
    app.add_middleware(ErrorGuard)
    app.add_middleware(BodyLimit, default=settings.max_body_bytes,
                       limits={"/v1/screen/batch": settings.batch_max_bytes})
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-API-Key"])
    for module in (health, screen, trials, rules, admin, cds_hooks):
        app.include_router(module.router)
    _add_pages(app)
    return app


def _add_pages(app: FastAPI) -> None:
    """The screening page and the descriptions that problem `type` URIs resolve to."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    @app.get("/problems/{slug}", tags=["problems"])
    def problem_type(slug: str) -> ProblemType:
        """What a problem `type` means."""
        if slug not in PROBLEM_TYPES:
            raise Problem(404, "http", f"No problem type {slug!r}.")
        title, description = PROBLEM_TYPES[slug]
        return ProblemType(type=f"/problems/{slug}", title=title, description=description)


app = create_app()
