"""Dependencies shared by the routes: settings, the rule registry, and authentication.

They are `async def` although they do no I/O: FastAPI runs a plain `def` dependency in its
thread pool, which cost ~9 % of the server's GIL time under load (bench/README.md).

Why app.state and not module globals: `create_app(settings)` may build several apps in one
process (tests do), each with its own rules directory and keys.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from .cds import trust as cds_trust
from .problems import Problem
from .registry import RuleRegistry, Snapshot
from .settings import Settings

_bearer = HTTPBearer(auto_error=False, description="An API key as a bearer token.")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key.")


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_registry(request: Request) -> RuleRegistry:
    return request.app.state.registry


async def get_rules(request: Request) -> Snapshot:
    """The rules snapshot this request uses from start to end, whatever reloads meanwhile."""
    return request.app.state.registry.snapshot


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[RuleRegistry, Depends(get_registry)]
RulesDep = Annotated[Snapshot, Depends(get_rules)]


def _presented(bearer: HTTPAuthorizationCredentials | None, api_key: str | None) -> str | None:
    if bearer is not None and bearer.scheme.lower() == "bearer":
        return bearer.credentials
    return api_key


def _check(keys: list[str], presented: str | None) -> None:
    """Open when no keys are configured; otherwise one of them, compared in constant time."""
    if not keys:
        return
    if presented is None or not any(hmac.compare_digest(presented.encode(), k.encode()) for k in keys):
        raise Problem(401, "unauthorized", "Send an API key as `Authorization: Bearer <key>` or `X-API-Key`.",
                      headers={"WWW-Authenticate": "Bearer"})


async def require_key(settings: SettingsDep,
                bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
                api_key: Annotated[str | None, Depends(_api_key)]) -> None:
    _check(settings.keys(), _presented(bearer, api_key))


async def require_cds_client(request: Request, settings: SettingsDep,
                             bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
                             api_key: Annotated[str | None, Depends(_api_key)]) -> None:
    """CDS routes: a signed JWT from a trusted issuer when issuers are configured, else the API keys."""
    if not settings.cds_issuers:
        _check(settings.keys(), _presented(bearer, api_key))
        return
    token = bearer.credentials if bearer is not None and bearer.scheme.lower() == "bearer" else None
    audience = str(request.url.replace(query=None, fragment=None))
    cds_trust.verify(token, audience, settings.cds_issuers, request.app.state.cds_keys,
                     request.app.state.cds_replay)


async def require_admin_key(settings: SettingsDep,
                      bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
                      api_key: Annotated[str | None, Depends(_api_key)]) -> None:
    _check(settings.keys(admin=True), _presented(bearer, api_key))
