"""``.env.example`` names every setting, keeps the defaults, and starts the compose stack.

A variable is *named* by an assignment line, active (``NAME=value``) or commented out
(``# NAME=value``, for what is unset by default or set by the image or compose). The
set of named variables must equal the set ``Settings`` reads, so a new setting without
an example line fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values
from pydantic import AliasChoices

from breaker_service.api.auth import TokenVerifier, mint_token
from breaker_service.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / ".env.example"
LINES = EXAMPLE.read_text().splitlines()
ASSIGNMENT = re.compile(r"^(?P<comment>#\s?)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")

NOT_VARIABLES = {"provider_overrides", "openai_compat_api_keys"}
"""Fields filled from other variables (``VAR__PROVIDER``, each compatible provider's
``api_key_env``), not from a variable of their own."""

REPORT_BLOCK = """\
RESILIENCE_ENABLED=true
RESILIENCE_RETRY_ENABLED=true
RETRY_MAX_ATTEMPTS=3
RETRY_BASE_DELAY=1.0
RETRY_MAX_DELAY=60.0
RETRY_EXPONENTIAL_BASE=2.0
RETRY_JITTER=true
RESILIENCE_CIRCUIT_BREAKER_ENABLED=true
CIRCUIT_BREAKER_FAILURE_THRESHOLD=5
CIRCUIT_BREAKER_SUCCESS_THRESHOLD=2
CIRCUIT_BREAKER_TIMEOUT=60.0
CIRCUIT_BREAKER_HALF_OPEN_MAX_CALLS=1"""
"""The original report's resilience block (its ``.env.docker``), in its order."""

DEV_ONLY = {"breaker_service_jwt_secret"}
"""Settings whose example value differs from the default on purpose."""


def env_names(field: str) -> tuple[str, ...]:
    """The variables that set ``field``: its aliases, else its upper-cased name."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return tuple(str(choice) for choice in alias.choices)
    if isinstance(alias, str):
        return (alias,)
    return (field.upper(),)


def settings_variables() -> set[str]:
    """The primary variable of every setting."""
    return {
        env_names(field)[0]
        for field in Settings.model_fields
        if field not in NOT_VARIABLES
    }


def assignments() -> list[tuple[int, bool, str, str]]:
    """(line index, active?, name, value) of every assignment line, in order."""
    found = []
    for index, line in enumerate(LINES):
        match = ASSIGNMENT.match(line)
        if match:
            found.append(
                (index, match["comment"] is None, match["name"], match["value"])
            )
    return found


pytestmark = pytest.mark.usefixtures("clean_environment")


def test_the_example_parses_with_python_dotenv() -> None:
    """Every active line has a value; no variable is named twice."""
    values = dotenv_values(EXAMPLE)
    assert values, "nothing parsed"
    assert all(value is not None for value in values.values())
    names = [name for _, _, name, _ in assignments()]
    assert len(names) == len(set(names)), "a variable is named twice"
    active = {name for _, is_active, name, _ in assignments() if is_active}
    assert set(values) == active


def test_the_example_names_exactly_the_variables_settings_reads() -> None:
    """Both ways: no setting without an example line, no example line for nothing."""
    named = {name for _, _, name, _ in assignments()}
    expected = settings_variables()
    assert expected - named == set(), "settings without a line in .env.example"
    assert named - expected == set(), "lines in .env.example that no setting reads"


def test_alternative_names_are_mentioned_not_assigned() -> None:
    """``MOONSHOT_API_KEY`` and friends appear in the comment of their main variable."""
    text = EXAMPLE.read_text()
    for field in Settings.model_fields:
        for alternative in env_names(field)[1:]:
            assert f"also read as {alternative}" in text, alternative


def test_every_variable_has_a_comment_line_above_it() -> None:
    """The line before each assignment is a comment saying what it is."""
    for index, _active, name, _value in assignments():
        above = LINES[index - 1]
        assert above.startswith("# "), name
        assert not ASSIGNMENT.match(above), f"{name} shares its comment"


def test_the_reports_variables_come_first_with_their_defaults() -> None:
    """The first active lines are the report's resilience block, unchanged."""
    active = [
        f"{name}={value}" for _, is_active, name, value in assignments() if is_active
    ]
    report = REPORT_BLOCK.splitlines()
    assert active[: len(report)] == report


def test_groups_follow_the_issues_order() -> None:
    """Resilience, database, providers, Supabase, auth, uploads, fleet."""
    headings = [line for line in LINES if line.startswith("# --- ")]
    words = ["Resilience", "Resilience", "Database", "Providers", "Supabase", "Auth"]
    words += ["Uploads", "Fleet"]
    assert [h.removeprefix("# --- ").split()[0].strip(":") for h in headings] == words


def test_the_example_changes_nothing_but_the_development_secret() -> None:
    """Loaded on its own, every setting has its default; only the JWT secret is set."""
    from_example = load_settings(env_file=EXAMPLE).model_dump()
    defaults = load_settings(env_file=None).model_dump()
    for field in DEV_ONLY:
        assert defaults.pop(field) != from_example.pop(field)
    assert from_example == defaults


def test_the_development_secret_is_marked_to_change() -> None:
    """The comment above the secret says it is for development and must change."""
    [(index, _, _, value)] = [
        a for a in assignments() if a[2] == "BREAKER_SERVICE_JWT_SECRET"
    ]
    comment = " ".join(LINES[index - 2 : index]).lower()
    assert "development" in comment
    assert "change it" in comment
    assert len(value.encode()) >= 32


def _image_env() -> dict[str, str]:
    """The ENV block of the Dockerfile's runtime stage."""
    joined = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for block in re.findall(r"^ENV\s+(.+)$", joined, flags=re.MULTILINE):
        env.update(re.findall(r"(\w+)=(\S+)", block))
    return env


def _compose_service() -> tuple[list[str], dict[str, str]]:
    """A replica of compose.yaml (anchors merged): its env files and environment."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    replicas = [
        service
        for name, service in compose["services"].items()
        if name.startswith("breaker-service")
    ]
    assert len(replicas) >= 2, "compose.yaml runs two replicas"
    ids = {service["environment"]["BREAKER_REPLICA_ID"] for service in replicas}
    assert len(ids) == len(replicas), "each replica has its own explicit id"
    service = replicas[0]
    env_files = service["env_file"]
    env_files = [env_files] if isinstance(env_files, str) else list(env_files)
    environment = {k: str(v) for k, v in service["environment"].items()}
    return env_files, environment


def test_cp_env_example_then_compose_up_gives_a_working_service(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The container's environment as compose builds it validates and accepts tokens.

    compose gives ``environment:`` precedence over ``env_file:``, which wins over the
    image's ``ENV``; the service refuses to start without a key, so that must be set.
    """
    env_files, environment = _compose_service()
    assert env_files == [".env"], "compose reads .env: the example must make one"
    merged = {**_image_env(), **dotenv_values(EXAMPLE), **environment}
    for key, value in merged.items():
        if value is not None and key != "PATH":
            monkeypatch.setenv(key, value)
    settings = load_settings(env_file=None)
    assert settings.database_url.startswith("postgresql+asyncpg://")
    assert settings.service_host == "0.0.0.0"
    assert settings.upload_allowed_dirs == "/data/uploads"
    assert settings.database_auto_migrate
    assert settings.breaker_service_jwt_secret is not None
    assert not settings.auth_disabled
    token = mint_token(settings, subject="newcomer", scopes=["breakers:read"], ttl=60)
    who = TokenVerifier(settings).verify(f"Bearer {token}")
    assert who.subject == "newcomer"
