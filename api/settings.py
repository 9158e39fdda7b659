"""Settings read from the environment (prefix `ELIG_`), so one image serves every deployment.

Lists (`ELIG_API_KEYS`, `ELIG_CORS_ORIGINS`, …) are comma-separated, because that is what
people type into an environment variable; a JSON list is accepted too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from engine.cachedir import default_cache_dir
from engine.rules import DEFAULT_RULES_DIR


def _split(value: object) -> object:
    """`a, b` or `["a", "b"]` → ["a", "b"]; an empty string → []."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [part.strip() for part in text.split(",") if part.strip()]


class Settings(BaseSettings):
    """Everything an operator may change without touching code."""

    model_config = SettingsConfigDict(env_prefix="ELIG_", extra="ignore")

    rules_dir: Path = Field(DEFAULT_RULES_DIR, description="Rules root: trials/*.elig and lib/*.elig.")
    cache_dir: Path | None = Field(
        default_factory=default_cache_dir,
        description="Compile cache (engine/cache.py): restarts reuse unchanged trials. Empty turns it off.")
    tune_gc: bool = Field(True, description="Freeze the loaded rules out of the garbage collector's reach and "
                                            "collect less often: full collections over them stalled requests.")
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Accepted API keys or bearer tokens. Empty (the default) turns authentication off for local use.")
    admin_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Keys for /v1/admin/*; when empty, the API keys are used.")
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, description="Allowed CORS origins.")
    max_body_bytes: int = Field(5 * 1024 * 1024, ge=1024, description="Largest request body, and largest NDJSON line.")
    batch_max_bytes: int = Field(1024 * 1024 * 1024, ge=1024, description="Largest body of /v1/screen/batch.")
    batch_buffer_bytes: int = Field(
        8 * 1024 * 1024, ge=64 * 1024,
        description="Results screened ahead of a client that has not read them yet; bounds batch memory.")
    fhir_timeout_seconds: float = Field(10.0, gt=0, description="Per-request timeout when reading a FHIR server.")
    fhir_max_pages: int = Field(50, ge=1, description="Most Bundle pages followed per prefetch query.")
    cds_service_id: str = Field("elig-trial-screening", pattern=r"^[A-Za-z0-9._-]+$")
    cds_issuers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="CDS client issuers (`iss`) trusted to call /cds-services with a signed JWT. When set, "
                    "those routes take JWTs (CDS Hooks 2.0 'Trusting CDS Clients') instead of API keys.")
    cds_jwks: str | None = Field(None, description="The trusted CDS clients' public keys: a JWK Set as JSON, "
                                                   "or the path of a file holding one (exchanged out of band).")
    trial_link_base: str = Field("https://clinicaltrials.gov/study/",
                                 description="Trial page link for cards when a trial names no `source` URL.")

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _empty_is_off(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("api_keys", "admin_keys", "cors_origins", "cds_issuers", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split(value)

    def keys(self, admin: bool = False) -> list[str]:
        """The plain keys that open the API (or its admin part); empty means open."""
        chosen = self.admin_keys if admin and self.admin_keys else self.api_keys
        return [k.get_secret_value() for k in chosen if k.get_secret_value()]
