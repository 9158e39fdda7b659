"""CDS Hooks client trust: signed JWTs from allowlisted issuers, exact audience, no replay."""

import json
import time
import uuid
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings

RULES = Path(__file__).resolve().parents[1] / "rules"
ISSUER = "https://ehr.example.org"
KEY = ec.generate_private_key(ec.SECP384R1())
OTHER_KEY = ec.generate_private_key(ec.SECP384R1())


def _jwks(private_key, kid: str) -> dict:
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private_key.public_key()))
    return {"keys": [{**public, "kid": kid, "alg": "ES384", "use": "sig"}]}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    jwks_file = tmp_path_factory.mktemp("keys") / "jwks.json"
    jwks_file.write_text(json.dumps(_jwks(KEY, "ehr-1")))
    settings = Settings(rules_dir=RULES, cds_issuers=[ISSUER], cds_jwks=str(jwks_file), api_keys=["api-key"])
    with TestClient(create_app(settings)) as c:
        yield c


def token(aud: str, *, key=KEY, kid="ehr-1", iss=ISSUER, jti=None, exp_in=300, alg="ES384") -> str:
    now = int(time.time())
    claims = {"iss": iss, "aud": aud, "iat": now, "exp": now + exp_in, "jti": jti or str(uuid.uuid4())}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid, "typ": "JWT"})


DISCOVERY = "http://testserver/cds-services"


def get(client, tok):
    return client.get("/cds-services", headers={"Authorization": f"Bearer {tok}"} if tok else {})


def test_a_valid_token_opens_discovery(client):
    assert get(client, token(DISCOVERY)).status_code == 200


@pytest.mark.parametrize("make,why", [
    (lambda: None, "no token"),
    (lambda: token("http://testserver/cds-services/other"), "another audience"),
    (lambda: token(DISCOVERY, iss="https://evil.example"), "untrusted issuer"),
    (lambda: token(DISCOVERY, key=OTHER_KEY), "signed by another key"),
    (lambda: token(DISCOVERY, kid="unknown"), "unknown kid"),
    (lambda: token(DISCOVERY, exp_in=-60), "expired"),
    (lambda: jwt.encode({"iss": ISSUER, "aud": DISCOVERY, "exp": int(time.time()) + 60, "iat": int(time.time()),
                         "jti": "x"}, "secret-secret-secret-secret-secret!", algorithm="HS256",
                        headers={"kid": "ehr-1"}), "symmetric algorithm"),
    (lambda: "api-key", "an API key is not a CDS client token"),
])
def test_untrustworthy_tokens_are_refused(client, make, why):
    response = get(client, make())
    assert response.status_code == 401, why
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_token_cannot_be_replayed(client):
    once = token(DISCOVERY, jti="replay-me")
    assert get(client, once).status_code == 200
    assert get(client, once).status_code == 401


def test_other_routes_keep_their_api_keys(client):
    assert client.get("/v1/trials", headers={"X-API-Key": "api-key"}).status_code == 200
    assert client.get("/v1/trials").status_code == 401
