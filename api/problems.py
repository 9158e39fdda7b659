"""RFC 9457 problem details: every error this API returns, in one shape.

Why one module: clients (and the web page) read `status`, `title`, `detail` and, for bad
input, `errors[*].pointer` (a JSON pointer into the request body, e.g. `/patient/birth_date`),
whatever went wrong. Each `type` is a relative URI that resolves to `GET /problems/{slug}`,
which describes it.

Two ASGI middlewares live here as well, because they answer with problems before or around
the routes: `BodyLimit` (413 over the configured size, on declared and streamed bodies alike)
and `ErrorGuard` (a 500 problem for a bug, logged without the exception's message, since
messages can quote patient data).
"""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("elig.api")
MEDIA_TYPE = "application/problem+json"

# slug → (title, description); `type` is "/problems/<slug>".
PROBLEM_TYPES: dict[str, tuple[str, str]] = {
    "validation": ("Invalid request", "The request does not match its schema; `errors` points at each bad field."),
    "malformed-json": ("Malformed JSON", "The body is not valid JSON."),
    "unscreenable-fhir": ("FHIR document cannot be screened",
                          "A FHIR document was recognised, but holds no single patient to screen "
                          "(no Patient, several Patients, or an unsupported Bundle type)."),
    "unknown-trial": ("Unknown trial", "No trial with this id is loaded."),
    "body-too-large": ("Request body too large", "The body, or one NDJSON line, is over the configured limit."),
    "unauthorized": ("Unauthorized", "A valid API key or bearer token is required."),
    "data-unavailable": ("Patient data unavailable",
                         "The CDS service could get the data it needs neither from prefetch nor from the FHIR server."),
    "unknown-service": ("Unknown CDS service", "No CDS service with this id."),
    "internal": ("Internal error", "A bug in the service; nothing about the request is logged."),
    "http": ("HTTP error", "A plain HTTP error; see status and title."),
}


class FieldError(BaseModel):
    """One bad field: where (a JSON pointer into the body, or the parameter's name) and why."""

    pointer: str | None = Field(None, description="JSON pointer into the request body, e.g. /patient/birth_date.")
    parameter: str | None = Field(None, description="Query, path or header parameter, when not in the body.")
    detail: str
    code: str | None = Field(None, description="Machine-readable reason, e.g. missing, date_from_datetime_parsing.")


class ProblemDetails(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


class ProblemType(BaseModel):
    type: str
    title: str
    description: str


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem of a known type."""

    def __init__(self, status: int, slug: str, detail: str | None = None,
                 errors: list[FieldError] | None = None, headers: dict[str, str] | None = None):
        super().__init__(detail or slug)
        self.status, self.slug, self.detail, self.errors, self.headers = status, slug, detail, errors, headers


def problem_body(status: int, slug: str, detail: str | None, instance: str | None,
                 errors: list[FieldError] | None = None, title: str | None = None) -> dict:
    """The problem as a JSON-ready dict, without empty members."""
    known = PROBLEM_TYPES.get(slug)
    doc = ProblemDetails(type=f"/problems/{slug}" if known else "about:blank",
                         title=title or (known[0] if known else "Error"), status=status, detail=detail,
                         instance=instance, errors=errors)
    return doc.model_dump(mode="json", exclude_none=True)


def problem_response(request_or_path: Request | str, status: int, slug: str, detail: str | None = None,
                     errors: list[FieldError] | None = None, headers: dict[str, str] | None = None,
                     title: str | None = None) -> JSONResponse:
    instance = request_or_path if isinstance(request_or_path, str) else request_or_path.url.path
    body = problem_body(status, slug, detail, instance, errors, title)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


# ---- pydantic errors → pointers --------------------------------------------------------------

_UNION_TAGS = frozenset({"native", "fhir"})  # tags of api.models.PatientDocument's branches


def pointer(loc: tuple | list) -> str:
    """A JSON pointer (RFC 6901) for a pydantic location, without union tags."""
    parts = [str(p) for p in loc if p not in _UNION_TAGS and not str(p).startswith("function-")]
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def field_errors(errors: list[dict], prefix: tuple = ()) -> list[FieldError]:
    """Pydantic / FastAPI errors as RFC 9457 members; body fields get pointers, others names."""
    out = []
    for err in errors:
        loc = tuple(err.get("loc", ()))
        where = loc[0] if loc else "body"
        msg = str(err.get("msg", "invalid"))
        if where in ("query", "path", "header", "cookie"):
            out.append(FieldError(parameter=".".join(map(str, loc[1:])), detail=msg, code=err.get("type")))
        else:
            rest = loc[1:] if where == "body" else loc
            out.append(FieldError(pointer=pointer(prefix + tuple(rest)), detail=msg, code=err.get("type")))
    return out


def validation_problem(exc: ValidationError, prefix: tuple = ()) -> Problem:
    """A 422 problem for a pydantic error raised outside FastAPI's own validation."""
    errors = field_errors(exc.errors(include_url=False, include_input=False), prefix)
    return Problem(422, "validation", f"{len(errors)} invalid field(s)", errors)


# ---- handlers --------------------------------------------------------------------------------

async def _on_problem(request: Request, exc: Problem) -> JSONResponse:
    return problem_response(request, exc.status, exc.slug, exc.detail, exc.errors, exc.headers)


async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        where = errors[0].get("ctx", {}).get("error", "")
        return problem_response(request, 400, "malformed-json", f"The body is not valid JSON: {where}".strip(": "))
    found = field_errors(errors)
    return problem_response(request, 422, "validation", f"{len(found)} invalid field(s)", found)


async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    slug = {401: "unauthorized", 413: "body-too-large"}.get(exc.status_code, "http")
    title = None if slug != "http" else _reason(exc.status_code)
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
    return problem_response(request, exc.status_code, slug, detail, headers=getattr(exc, "headers", None),
                            title=title)


def _reason(status: int) -> str:
    from http import HTTPStatus
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def install(app: FastAPI) -> None:
    """Register the problem handlers on an app."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)


# ---- middlewares -----------------------------------------------------------------------------

class BodyTooLarge(StarletteHTTPException):
    """Raised from `receive` once a body passes its limit; FastAPI re-raises HTTPExceptions as is."""

    def __init__(self, limit: int):
        super().__init__(413, f"The request body is over {limit} bytes.")


class BodyLimit:
    """Refuses bodies over a limit: at once by Content-Length, else while they stream in.

    Paths in `limits` get their own limit (the NDJSON batch endpoint takes far more than one
    patient); everything else gets `default`.
    """

    def __init__(self, app: ASGIApp, default: int, limits: dict[str, int] | None = None):
        self.app, self.default, self.limits = app, default, limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            response = problem_response(scope["path"], 413, "body-too-large",
                                        f"The request body is over {limit} bytes.")
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class ErrorGuard:
    """Turns an unhandled exception into a 500 problem and logs it without its message.

    Starlette's own server-error middleware re-raises so that the server logs the exception,
    message included; a pydantic or engine message can quote patient data, so this guard sits
    inside it, answers, logs only the exception's type and stack, and does not re-raise.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:  # noqa: BLE001 — the point of this middleware
            log_exception(exc, scope.get("path", ""))
            if not started:
                response = problem_response(scope.get("path", ""), 500, "internal",
                                            "The service failed; the error has been logged without request data.")
                await response(scope, receive, send)


def log_exception(exc: BaseException, where: str) -> None:
    """Type and stack (file, line, function) only: never the message, locals or source lines."""
    stack = "\n".join(f"  {f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(exc.__traceback__))
    log.error("unhandled %s at %s\n%s", type(exc).__name__, where, stack)


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
