"""Trusting CDS clients (CDS Hooks 2.0 §"Trusting CDS Clients"): signed JWT bearer tokens.

When `ELIG_CDS_ISSUERS` is set, every call to `/cds-services…` must carry
`Authorization: Bearer <JWT>` signed with an asymmetric key (never `none`, never HMAC) from the
configured JWK Set, whose `kid` names the key, `iss` is on the allowlist, `aud` is the exact URL
called, `exp` is in the future, and `jti` has not been seen before (replay). Keys are exchanged
out of band (`ELIG_CDS_JWKS`: a JWK Set as JSON, or a path to one); a `jku` header is not
fetched, since a service must not let a caller choose where keys come from. Without
`ELIG_CDS_ISSUERS`, the CDS routes use the API's keys like every other route.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..problems import Problem

if TYPE_CHECKING:
    from jwt import PyJWK

# PyJWT is imported where a token or key set is read: it pulls in `cryptography` (~0.1 s of every
# start), and only services that trust CDS clients by JWT need it.

ASYMMETRIC = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"]
MAX_SEEN = 100_000


def load_jwks(value: str | None) -> dict[str, PyJWK]:
    """The configured keys by `kid`, from inline JSON or a file path."""
    if not value:
        return {}
    from jwt import PyJWKSet

    text = value if value.lstrip().startswith("{") else Path(value).read_text(encoding="utf-8")
    return {key.key_id: key for key in PyJWKSet.from_dict(json.loads(text)).keys if key.key_id}


class ReplayGuard:
    """Remembers each `jti` until its token expires, so a captured token cannot be sent again."""

    def __init__(self):
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_use(self, jti: str, expires: float) -> bool:
        now = time.time()
        with self._lock:
            if len(self._seen) > MAX_SEEN:
                self._seen = {k: v for k, v in self._seen.items() if v > now}
            if self._seen.get(jti, 0) > now:
                return False
            self._seen[jti] = expires
            return True


def verify(token: str | None, audience: str, issuers: list[str], keys: dict[str, PyJWK], guard: ReplayGuard) -> dict:
    """The token's claims if it is trustworthy for this URL; otherwise a 401 problem saying why."""
    if not token:
        raise _unauthorized("A CDS client must send `Authorization: Bearer <JWT>`.")
    import jwt

    try:
        header = jwt.get_unverified_header(token)
        key = keys.get(header.get("kid", ""))
        if key is None:
            raise _unauthorized("The token's `kid` names no key this service trusts.")
        claims = jwt.decode(token, key, algorithms=ASYMMETRIC, audience=audience, issuer=issuers,
                            options={"require": ["iss", "aud", "exp", "iat", "jti"]})
    except jwt.PyJWTError as exc:
        raise _unauthorized(f"The token was refused: {exc}.") from None
    if not guard.first_use(str(claims["jti"]), float(claims["exp"])):
        raise _unauthorized("The token's `jti` was used before (replay).")
    return claims


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})
