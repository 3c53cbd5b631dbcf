"""JWT bearer tokens: the 401/403 matrix through the app, key types, minting, TTLs.

Tokens for the matrix are built by hand (``claims`` plus ``encode``) so that each
case breaks exactly one rule; ``alg: none`` and the HS256-with-the-public-key
confusion token are assembled byte by byte, since PyJWT refuses to make them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.warnings import InsecureKeyLengthWarning

from breaker_service.api import create_app
from breaker_service.api.auth import (
    SCOPES,
    AuthError,
    TokenVerifier,
    mint_token,
    parse_ttl,
)
from breaker_service.config import Settings, load_settings
from breaker_service.errors import ConfigError

SECRET = "auth-test-secret-0123456789abcdefghijkl"
SCRIPT = Path(sys.executable).with_name("breaker-service")
AUDIENCE = "breaker-service"
ISSUER = "breaker-service"
ENV_VARIABLES = (
    "BREAKER_SERVICE_JWT_SECRET",
    "BREAKER_SERVICE_JWT_PUBLIC_KEY",
    "BREAKER_SERVICE_JWT_PRIVATE_KEY",
    "BREAKER_SERVICE_JWT_ALGORITHM",
    "BREAKER_SERVICE_JWT_AUDIENCE",
    "BREAKER_SERVICE_JWT_ISSUER",
    "BREAKER_SERVICE_JWT_LEEWAY",
    "AUTH_DISABLED",
    "DATABASE_URL",
)


@dataclass(frozen=True, slots=True)
class KeyPair:
    """PEM keys for one asymmetric algorithm."""

    algorithm: str
    private_pem: str
    public_pem: str


def rsa_keys() -> KeyPair:
    """A fresh 2048-bit RSA pair for RS256."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _pems("RS256", key)


def ec_keys() -> KeyPair:
    """A fresh P-256 pair for ES256."""
    return _pems("ES256", ec.generate_private_key(ec.SECP256R1()))


def _pems(
    algorithm: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
) -> KeyPair:
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        .decode()
    )
    return KeyPair(algorithm, private, public)


def make_settings(**values: Any) -> Settings:
    """Keyword settings with an in-memory database and the HS256 test secret."""
    values.setdefault("database_url", "sqlite+aiosqlite:///:memory:")
    if "breaker_service_jwt_public_key" not in values:
        values.setdefault("breaker_service_jwt_secret", SECRET)
    return load_settings(env_file=None, **values)


def asymmetric_settings(keys: KeyPair) -> Settings:
    """Settings verifying ``keys.algorithm`` tokens with the public key."""
    return make_settings(
        breaker_service_jwt_algorithm=keys.algorithm,
        breaker_service_jwt_public_key=keys.public_pem,
        breaker_service_jwt_private_key=keys.private_pem,
    )


def claims(**changes: Any) -> dict[str, Any]:
    """Valid claims for a reader, with ``changes`` applied (``None`` drops a claim)."""
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "alice",
        "scope": "breakers:read",
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": now,
        "exp": now + 600,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def b64(data: bytes) -> str:
    """Unpadded base64url, as in a JWT."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict[str, Any]) -> str:
    """A JWT header or payload segment."""
    return b64(json.dumps(value, separators=(",", ":")).encode())


def unsigned_token(payload: dict[str, Any]) -> str:
    """An ``alg: none`` token with an empty signature."""
    return f"{segment({'alg': 'none', 'typ': 'JWT'})}.{segment(payload)}."


def hs256_with(key: str, payload: dict[str, Any]) -> str:
    """An HS256 token signed with ``key`` by hand (PyJWT refuses PEM keys as secrets)."""
    signing_input = f"{segment({'alg': 'HS256', 'typ': 'JWT'})}.{segment(payload)}"
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def hs256(payload: dict[str, Any], key: str = SECRET) -> str:
    """An HS256 token through PyJWT."""
    return jwt.encode(payload, key, algorithm="HS256")


def hs512(payload: dict[str, Any]) -> str:
    """An HS512 token with the right secret: only the algorithm is wrong."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)  # 39 < 64 bytes
        return jwt.encode(payload, SECRET, algorithm="HS512")


pytestmark = pytest.mark.usefixtures("clean_environment")


@asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the app built from ``settings``, its lifespan running."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        yield client


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """A client for the app with HS256 and the test secret."""
    async with client_for(make_settings()) as running:
        yield running


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def assert_unauthorized(response: httpx.Response) -> str:
    """A 401 problem with a Bearer challenge; return the detail."""
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert response.headers["content-type"].startswith("application/problem+json")
    detail: str = response.json()["detail"]
    return detail


# -- the matrix ------------------------------------------------------------------------

# headers are made when the test runs, so "valid for 10 minutes" holds then
UNAUTHORIZED: list[Any] = [
    pytest.param(dict, "missing bearer token", id="no-token"),
    pytest.param(
        lambda: {"Authorization": ""}, "missing bearer token", id="empty-header"
    ),
    pytest.param(
        lambda: {"Authorization": "Basic YWxpY2U6cHc="}, "Bearer", id="basic-scheme"
    ),
    pytest.param(
        lambda: {"Authorization": "Bearer"}, "Bearer", id="bearer-without-token"
    ),
    pytest.param(lambda: {"Authorization": "Bearer    "}, "Bearer", id="bearer-blank"),
    pytest.param(lambda: bearer("not.a.jwt"), "DecodeError", id="garbage"),
    pytest.param(lambda: bearer("abc"), "DecodeError", id="one-segment"),
    pytest.param(
        lambda: bearer(hs256(claims(), "another-secret-0123456789abcdefghijkl")),
        "InvalidSignatureError",
        id="bad-signature",
    ),
    pytest.param(
        lambda: bearer(hs256(claims(exp=int(time.time()) - 3600))),
        "token expired",
        id="expired",
    ),
    pytest.param(
        lambda: bearer(hs256(claims(aud="someone-else"))),
        "InvalidAudienceError",
        id="wrong-audience",
    ),
    pytest.param(
        lambda: bearer(hs256(claims(iss="https://evil.example"))),
        "InvalidIssuerError",
        id="wrong-issuer",
    ),
    pytest.param(
        lambda: bearer(hs256(claims(iat=None))),
        "MissingRequiredClaimError",
        id="no-iat",
    ),
    pytest.param(
        lambda: bearer(hs256(claims(exp=None))),
        "MissingRequiredClaimError",
        id="no-exp",
    ),
    pytest.param(
        lambda: bearer(hs256(claims(sub=None))),
        "MissingRequiredClaimError",
        id="no-sub",
    ),
    pytest.param(
        lambda: bearer(hs256(claims(aud=None))),
        "MissingRequiredClaimError",
        id="no-aud",
    ),
    pytest.param(
        lambda: bearer(hs256(claims(iss=None))),
        "MissingRequiredClaimError",
        id="no-iss",
    ),
    pytest.param(
        lambda: bearer(hs256(claims(sub=""))), "invalid token", id="empty-sub"
    ),
    pytest.param(
        lambda: bearer(hs256(claims(nbf=int(time.time()) + 3600))),
        "ImmatureSignatureError",
        id="not-yet-valid",
    ),
    pytest.param(
        lambda: bearer(unsigned_token(claims())), "InvalidAlgorithmError", id="alg-none"
    ),
    pytest.param(
        lambda: bearer(unsigned_token(claims()) + "c2lnbmF0dXJl"),
        "invalid token",
        id="alg-none-with-signature",
    ),
    pytest.param(
        lambda: bearer(hs512(claims())),
        "InvalidAlgorithmError",
        id="unpinned-hs512",
    ),
]


@pytest.mark.parametrize(("headers", "detail"), UNAUTHORIZED)
async def test_unauthorized(
    client: httpx.AsyncClient, headers: Callable[[], dict[str, str]], detail: str
) -> None:
    """Each broken token is a 401 with ``WWW-Authenticate`` and says why."""
    response = await client.get("/breakers", headers=headers())
    assert detail in assert_unauthorized(response)


async def test_expired_within_leeway_is_accepted(client: httpx.AsyncClient) -> None:
    """A token a few seconds past ``exp`` still passes (30 s leeway for clock skew)."""
    token = hs256(claims(exp=int(time.time()) - 5))
    response = await client.get("/breakers", headers=bearer(token))
    assert response.status_code == 200, response.text


async def test_wrong_scope_is_403(client: httpx.AsyncClient) -> None:
    """A valid token without the scope: 403 naming it, no Bearer challenge."""
    token = hs256(claims(scope="uploads:write"))
    response = await client.get("/breakers", headers=bearer(token))
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "breakers:read" in response.json()["detail"]
    assert "www-authenticate" not in response.headers
    admin_only = await client.post(
        "/breakers/kimi/reset", json={"reason": "x"}, headers=bearer(token)
    )
    assert admin_only.status_code == 403


@pytest.mark.parametrize(
    "scope_claims",
    [
        pytest.param({"scope": "breakers:read"}, id="scope-string"),
        pytest.param({"scope": "uploads:write breakers:read"}, id="space-separated"),
        pytest.param({"scope": None, "scopes": ["breakers:read"]}, id="scopes-list"),
    ],
)
async def test_right_scope_is_200(
    client: httpx.AsyncClient, scope_claims: dict[str, Any]
) -> None:
    """A valid token with ``breakers:read`` lists the breakers."""
    response = await client.get(
        "/breakers", headers=bearer(hs256(claims(**scope_claims)))
    )
    assert response.status_code == 200, response.text
    assert "breakers" in response.json()


async def test_open_endpoints_need_no_token(client: httpx.AsyncClient) -> None:
    """``/healthz`` and a bare ``/readyz`` are open; ``/metrics`` is not by default."""
    for path in ("/healthz", "/readyz"):
        assert (await client.get(path)).status_code == 200, path
    assert (await client.get("/metrics")).status_code == 401


# -- asymmetric keys -------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_keys",
    [pytest.param(rsa_keys, id="RS256"), pytest.param(ec_keys, id="ES256")],
)
async def test_asymmetric_tokens(make_keys: Callable[[], KeyPair]) -> None:
    """Minted with the private key, verified with the public one; other keys fail."""
    keys = make_keys()
    settings = asymmetric_settings(keys)
    token = mint_token(settings, subject="alice", scopes=["breakers:read"], ttl=60)
    assert jwt.get_unverified_header(token)["alg"] == keys.algorithm
    stranger = make_keys()
    forged = jwt.encode(claims(), stranger.private_pem, algorithm=keys.algorithm)
    async with client_for(settings) as client:
        ok = await client.get("/breakers", headers=bearer(token))
        assert ok.status_code == 200, ok.text
        bad = await client.get("/breakers", headers=bearer(forged))
        assert "InvalidSignatureError" in assert_unauthorized(bad)


async def test_algorithm_confusion_is_refused() -> None:
    """RS256 configured: an HS256 token keyed with the public PEM is refused."""
    keys = rsa_keys()
    settings = asymmetric_settings(keys)
    confused = hs256_with(keys.public_pem, claims())
    async with client_for(settings) as client:
        response = await client.get("/breakers", headers=bearer(confused))
        assert "InvalidAlgorithmError" in assert_unauthorized(response)
        plain = await client.get("/breakers", headers=bearer(hs256(claims())))
        assert_unauthorized(plain)


def test_hs256_token_refused_by_an_es256_verifier() -> None:
    """The verifier pins the configured algorithm, whatever the header says."""
    keys = ec_keys()
    verifier = TokenVerifier(asymmetric_settings(keys))
    token = hs256_with(keys.public_pem, claims())
    with pytest.raises(AuthError, match="InvalidAlgorithmError") as caught:
        verifier.verify(f"Bearer {token}")
    assert caught.value.status == 401


def test_asymmetric_algorithm_needs_a_public_key() -> None:
    """RS256 with only a shared secret is a configuration error naming the key variable."""
    with pytest.raises(ConfigError, match="BREAKER_SERVICE_JWT_PUBLIC_KEY"):
        make_settings(breaker_service_jwt_algorithm="RS256")


def test_minting_asymmetric_tokens_needs_the_private_key() -> None:
    """Without a private key ``mint_token`` says which variable to set."""
    keys = rsa_keys()
    settings = make_settings(
        breaker_service_jwt_algorithm="RS256",
        breaker_service_jwt_public_key=keys.public_pem,
    )
    with pytest.raises(ConfigError) as caught:
        mint_token(settings, subject="a", scopes=["breakers:read"], ttl=60)
    assert caught.value.variable == "BREAKER_SERVICE_JWT_PRIVATE_KEY"


# -- settings and minting --------------------------------------------------------------


def test_short_secret_fails_at_settings_load() -> None:
    """A secret under 32 bytes: ``ConfigError`` naming the variable, secret not echoed."""
    short = "too-short-secret-31-bytes-long!"
    assert len(short.encode()) == 31
    with pytest.raises(ConfigError) as caught:
        make_settings(breaker_service_jwt_secret=short)
    assert caught.value.variable == "BREAKER_SERVICE_JWT_SECRET"
    assert "BREAKER_SERVICE_JWT_SECRET" in str(caught.value)
    assert "32 bytes" in str(caught.value)
    assert short not in str(caught.value)


def test_mint_token_claims() -> None:
    """Minted tokens carry every required claim and the scopes, space-separated."""
    settings = make_settings()
    token = mint_token(
        settings, subject="bob", scopes=["breakers:read", "uploads:write"], ttl=90
    )
    decoded = jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE)
    assert decoded["sub"] == "bob"
    assert decoded["scope"] == "breakers:read uploads:write"
    assert decoded["iss"] == ISSUER
    assert decoded["exp"] - decoded["iat"] == 90
    principal = TokenVerifier(settings).verify(f"Bearer {token}")
    assert principal.subject == "bob"
    assert principal.scopes == {"breakers:read", "uploads:write"}


def test_mint_token_refuses_unknown_scopes() -> None:
    """An unknown scope is a ``ConfigError`` listing the known ones."""
    with pytest.raises(ConfigError, match="breakers:admin") as caught:
        mint_token(make_settings(), subject="a", scopes=["breakers:write"], ttl=60)
    assert caught.value.variable == "--scope"


def run_cli(
    args: list[str], tmp_path: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """The installed ``breaker-service`` script, in ``tmp_path``, with ``env``."""
    clean = {k: v for k, v in os.environ.items() if k not in ENV_VARIABLES}
    clean["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    clean.update(env)
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_token_command_mints_a_verifiable_token(tmp_path: Path) -> None:
    """``breaker-service token --sub alice --scope breakers:read --ttl 1h`` verifies."""
    result = run_cli(
        ["token", "--sub", "alice", "--scope", "breakers:read", "--ttl", "1h"],
        tmp_path,
        BREAKER_SERVICE_JWT_SECRET=SECRET,
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token.count(".") == 2
    assert "\n" not in token
    decoded = jwt.decode(
        token,
        SECRET,
        algorithms=["HS256"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"require": ["exp", "iat", "sub", "aud", "iss"]},
    )
    assert decoded["sub"] == "alice"
    assert decoded["scope"] == "breakers:read"
    assert decoded["exp"] - decoded["iat"] == 3600
    assert abs(decoded["iat"] - time.time()) < 120
    principal = TokenVerifier(make_settings()).verify(f"Bearer {token}")
    assert principal.subject == "alice"
    assert principal.scopes == {"breakers:read"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "env", "variable"),
    [
        pytest.param(
            ["--scope", "breakers:read"], {}, "BREAKER_SERVICE_JWT_SECRET", id="no-key"
        ),
        pytest.param(
            ["--scope", "breakers:read"],
            {"BREAKER_SERVICE_JWT_SECRET": "short"},
            "BREAKER_SERVICE_JWT_SECRET",
            id="short-key",
        ),
        pytest.param(
            ["--scope", "root"],
            {"BREAKER_SERVICE_JWT_SECRET": SECRET},
            "unknown scope(s) root",
            id="unknown-scope",
        ),
        pytest.param(
            ["--scope", "breakers:read", "--ttl", "forever"],
            {"BREAKER_SERVICE_JWT_SECRET": SECRET},
            "--ttl",
            id="bad-ttl",
        ),
        pytest.param(
            ["--scope", "breakers:read", "--ttl", "inf"],
            {"BREAKER_SERVICE_JWT_SECRET": SECRET},
            "--ttl",
            id="infinite-ttl",
        ),
    ],
)
def test_token_command_usage_errors(
    tmp_path: Path, args: list[str], env: dict[str, str], variable: str
) -> None:
    """Bad input: exit 2 and one line naming what to fix, and no token on stdout."""
    result = run_cli(["token", "--sub", "alice", *args], tmp_path, **env)
    assert result.returncode == 2, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert SECRET not in result.stderr


# -- TTLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("90", 90, id="bare"),
        pytest.param("90s", 90, id="seconds"),
        pytest.param("15m", 900, id="minutes"),
        pytest.param("1h", 3600, id="hour"),
        pytest.param("7d", 604800, id="days"),
        pytest.param("1.5h", 5400, id="fraction"),
        pytest.param(" 2H ", 7200, id="spaces-and-case"),
    ],
)
def test_parse_ttl(text: str, seconds: float) -> None:
    """Durations with an optional s/m/h/d unit."""
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("h", id="unit-only"),
        pytest.param("abc", id="words"),
        pytest.param("1w", id="unknown-unit"),
        pytest.param("0", id="zero"),
        pytest.param("-5m", id="negative"),
        pytest.param("nan", id="nan"),
        pytest.param("inf", id="infinite"),
        pytest.param("infh", id="infinite-hours"),
    ],
)
def test_parse_ttl_rejects(text: str) -> None:
    """Anything else is a ``ConfigError`` naming ``--ttl``."""
    with pytest.raises(ConfigError) as caught:
        parse_ttl(text)
    assert caught.value.variable == "--ttl"


def test_scopes_are_the_documented_three() -> None:
    """The scopes the issue names, and no others."""
    assert set(SCOPES) == {"breakers:read", "uploads:write", "breakers:admin"}
