"""Errors that stop start-up, in one line (issue 14.4): exit 2 configuration, 1 runtime.

Through the real ``breaker-service`` script: an unusable key, PostgreSQL out of
reach, ``?sslmode=`` in the URL, JSON that does not parse, a bad ``SUPABASE_URL``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import one_line, run_cli
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from breaker_service.api import create_app
from breaker_service.api.auth import mint_token
from breaker_service.config import load_settings, normalize_database_url
from breaker_service.errors import ConfigError

pytestmark = pytest.mark.slow

SECRET = "startup-test-secret-0123456789abcdefgh"
UNREACHABLE = "postgresql://breaker@127.0.0.1:1/breaker"
"""Port 1 on loopback: connection refused at once."""


def _private_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        .decode()
    )


RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC = ec.generate_private_key(ec.SECP256R1())


# -- key material ----------------------------------------------------------------------

BAD_KEYS = [
    pytest.param(
        {"algorithm": "RS256", "public": "not a key"},
        "BREAKER_SERVICE_JWT_PUBLIC_KEY",
        id="garbage-public",
    ),
    pytest.param(
        {"algorithm": "RS256", "public": _public_pem(RSA).replace("\n", "\\n")},
        "BREAKER_SERVICE_JWT_PUBLIC_KEY",
        id="literal-backslash-n",
    ),
    pytest.param(
        {"algorithm": "ES256", "public": _public_pem(RSA)},
        "BREAKER_SERVICE_JWT_PUBLIC_KEY",
        id="rsa-key-for-es256",
    ),
    pytest.param(
        {"algorithm": "RS256", "public": _private_pem(RSA)},
        "BREAKER_SERVICE_JWT_PUBLIC_KEY",
        id="private-key-as-public",
    ),
    pytest.param(
        {"algorithm": "RS256", "public": _public_pem(RSA), "private": "garbage"},
        "BREAKER_SERVICE_JWT_PRIVATE_KEY",
        id="garbage-private",
    ),
    pytest.param(
        {
            "algorithm": "RS256",
            "public": _public_pem(RSA),
            "private": _private_pem(OTHER_RSA),
        },
        "BREAKER_SERVICE_JWT_PRIVATE_KEY",
        id="not-one-pair",
    ),
    pytest.param(
        {"algorithm": "HS256", "secret": _public_pem(RSA)},
        "BREAKER_SERVICE_JWT_SECRET",
        id="pem-as-hmac-secret",
    ),
]


def _key_settings(keys: dict[str, str]) -> dict[str, str]:
    values = {"breaker_service_jwt_algorithm": keys["algorithm"]}
    for name in ("secret", "public", "private"):
        if name in keys:
            field = "secret" if name == "secret" else f"{name}_key"
            values[f"breaker_service_jwt_{field}"] = keys[name]
    return values


@pytest.mark.parametrize(("keys", "variable"), BAD_KEYS)
def test_unusable_key_material_stops_the_app_naming_the_variable(
    keys: dict[str, str], variable: str
) -> None:
    """Building the app refuses a key PyJWT cannot use (it used to answer 500s)."""
    settings = load_settings(
        env_file=None,
        database_url="sqlite+aiosqlite:///:memory:",
        **_key_settings(keys),
    )
    with pytest.raises(ConfigError) as caught:
        create_app(settings)
    assert caught.value.variable == variable
    assert variable in str(caught.value)
    assert "BEGIN" not in str(caught.value)  # the key is never echoed


def test_good_keys_still_start(tmp_path: Path) -> None:
    """A matching RS256 pair and an ES256 public key are accepted."""
    for keys in (
        {
            "algorithm": "RS256",
            "public": _public_pem(RSA),
            "private": _private_pem(RSA),
        },
        {"algorithm": "ES256", "public": _public_pem(EC)},
    ):
        settings = load_settings(
            env_file=None,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'k.db'}",
            **_key_settings(keys),
        )
        create_app(settings)


def test_serve_with_an_invalid_public_key_exits_2_in_one_line(tmp_path: Path) -> None:
    """``serve`` stops before binding or opening the database: one line, exit 2."""
    result = run_cli(
        ["serve", "--port", "0"],
        tmp_path,
        BREAKER_SERVICE_JWT_ALGORITHM="RS256",
        BREAKER_SERVICE_JWT_PUBLIC_KEY="-----BEGIN PUBLIC KEY-----\nnope\n",
    )
    assert result.returncode == 2, result.stderr
    assert "BREAKER_SERVICE_JWT_PUBLIC_KEY" in one_line(result)
    assert not (tmp_path / "cli.db").exists()


def test_token_with_an_invalid_private_key_exits_2_in_one_line(
    tmp_path: Path,
) -> None:
    """``token`` names the private key variable instead of a cryptography traceback."""
    result = run_cli(
        ["token", "--sub", "a", "--scope", "breakers:read"],
        tmp_path,
        BREAKER_SERVICE_JWT_ALGORITHM="ES256",
        BREAKER_SERVICE_JWT_PUBLIC_KEY=_public_pem(EC),
        BREAKER_SERVICE_JWT_PRIVATE_KEY="garbage",
    )
    assert result.returncode == 2, result.stderr
    assert "BREAKER_SERVICE_JWT_PRIVATE_KEY" in one_line(result)


# -- PostgreSQL out of reach -----------------------------------------------------------


@pytest.mark.parametrize("migrate", ["true", "false"])
@pytest.mark.parametrize(
    "command", [["status"], ["serve", "--port", "0"], ["db", "current"]]
)
def test_postgres_unreachable_is_one_line_and_exit_1(
    tmp_path: Path, command: list[str], migrate: str
) -> None:
    """No traceback (it was 128 lines under serve), exit 1 (a runtime failure)."""
    result = run_cli(
        command,
        tmp_path,
        DATABASE_URL=UNREACHABLE,
        DATABASE_AUTO_MIGRATE=migrate,
        BREAKER_SERVICE_JWT_SECRET=SECRET,
    )
    assert result.returncode == 1, result.stderr
    line = one_line(result)
    assert line.startswith("breaker-service: ")
    assert "127.0.0.1" in line or "refused" in line.lower(), line


# -- ?sslmode= -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            "postgresql://u@h/db?sslmode=require",
            "postgresql+asyncpg://u@h/db?ssl=require",
            id="require",
        ),
        pytest.param(
            "postgres://u@h/db?sslmode=verify-full&target_session_attrs=read-write",
            "postgresql+asyncpg://u@h/db?ssl=verify-full&target_session_attrs=read-write",
            id="with-another",
        ),
        pytest.param(
            "postgresql+asyncpg://u@h/db?ssl=disable",
            "postgresql+asyncpg://u@h/db?ssl=disable",
            id="asyncpg-name",
        ),
    ],
)
def test_sslmode_becomes_asyncpgs_ssl(raw: str, expected: str) -> None:
    """libpq's ``sslmode`` is translated, the rest of the query kept as written."""
    assert normalize_database_url(raw) == expected


@pytest.mark.parametrize(
    ("query", "hint"),
    [
        pytest.param("sslmode=bogus", "verify-full", id="bad-mode"),
        pytest.param("sslrootcert=/ca.pem", "PGSSLROOTCERT", id="libpq-file"),
        pytest.param("application_name=x", "not understood by asyncpg", id="unknown"),
    ],
)
def test_query_parameters_asyncpg_lacks_are_refused_at_load(
    tmp_path: Path, query: str, hint: str
) -> None:
    """Exit 2 naming DATABASE_URL, not a ``TypeError`` at the first connection."""
    result = run_cli(
        ["status"], tmp_path, DATABASE_URL=f"postgresql://u@127.0.0.1:1/db?{query}"
    )
    assert result.returncode == 2, result.stderr
    line = one_line(result)
    assert "DATABASE_URL" in line
    assert hint in line


def test_sslmode_disable_connects(tmp_path: Path, postgres_url: str) -> None:
    """``?sslmode=disable`` reaches the server (it used to be a ``TypeError``)."""
    result = run_cli(
        ["status"], tmp_path, DATABASE_URL=f"{postgres_url}?sslmode=disable"
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_sslmode_require_on_a_server_without_tls_is_one_line(
    tmp_path: Path, postgres_url: str
) -> None:
    """``?sslmode=require`` against a plain server: asyncpg's refusal, one line, exit 1."""
    result = run_cli(
        ["serve", "--port", "0"],
        tmp_path,
        DATABASE_URL=f"{postgres_url}?sslmode=require",
        BREAKER_SERVICE_JWT_SECRET=SECRET,
    )
    assert result.returncode == 1, result.stderr
    assert one_line(result).startswith("breaker-service: ")


# -- JSON and URLs in the environment --------------------------------------------------


@pytest.mark.parametrize("command", [["status"], ["serve", "--port", "0"]])
def test_malformed_compat_providers_json_is_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    """``OPENAI_COMPAT_PROVIDERS='[{bad'``: exit 2 naming it, not a SettingsError."""
    result = run_cli(
        command,
        tmp_path,
        OPENAI_COMPAT_PROVIDERS='[{"name": "x", bad',
        BREAKER_SERVICE_JWT_SECRET=SECRET,
    )
    assert result.returncode == 2, result.stderr
    line = one_line(result)
    assert "OPENAI_COMPAT_PROVIDERS is not valid JSON" in line
    assert "bad" not in line  # where, not what


def test_malformed_compat_providers_in_the_env_file_is_one_line(tmp_path: Path) -> None:
    """The same value read from ``.env``: the same one line."""
    (tmp_path / ".env").write_text("OPENAI_COMPAT_PROVIDERS=[oops\n")
    result = run_cli(["status"], tmp_path)
    assert result.returncode == 2, result.stderr
    assert "OPENAI_COMPAT_PROVIDERS" in one_line(result)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://xyz.supabase.co:abc", id="port-not-a-number"),
        pytest.param("https://xyz.supabase.co:99999", id="port-too-big"),
        pytest.param("https://", id="no-host"),
        pytest.param("https://xyz supabase.co", id="space"),
        pytest.param("ftp://xyz.supabase.co", id="scheme"),
        pytest.param("https://user:pw@xyz.supabase.co", id="credentials"),
    ],
)
@pytest.mark.parametrize("command", [["outbox"], ["serve", "--port", "0"]])
def test_a_bad_supabase_url_is_one_line_naming_it(
    tmp_path: Path, url: str, command: list[str]
) -> None:
    """Exit 2 at load, naming ``SUPABASE_URL`` and not saying "expected a number"."""
    result = run_cli(
        command,
        tmp_path,
        SUPABASE_URL=url,
        SUPABASE_SERVICE_KEY="service-key",
        BREAKER_SERVICE_JWT_SECRET=SECRET,
    )
    assert result.returncode == 2, result.stderr
    line = one_line(result)
    assert "SUPABASE_URL" in line
    assert "expected a number" not in line
    assert "service-key" not in line


def test_a_good_supabase_url_loads() -> None:
    """A plain project URL (with or without a port or path) is accepted."""
    for url in ("https://xyz.supabase.co", "http://127.0.0.1:54321/", "https://h/p"):
        settings = load_settings(
            env_file=None, supabase_url=url, SUPABASE_SERVICE_KEY="k"
        )
        assert settings.supabase_enabled


def test_mint_token_still_works_with_checked_keys() -> None:
    """The checked RS256 pair mints and verifies as before."""
    settings = load_settings(
        env_file=None,
        **_key_settings(
            {
                "algorithm": "RS256",
                "public": _public_pem(RSA),
                "private": _private_pem(RSA),
            }
        ),
    )
    assert mint_token(settings, subject="a", scopes=["breakers:read"], ttl=60)
