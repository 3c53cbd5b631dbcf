"""Schemathesis over every operation of the service's OpenAPI: no 5xx, answers as documented.

The schema is the app's own (``app.openapi()``). For each operation Schemathesis
draws requests, valid ones and (negative mode) ones that break the schema, and
they go through ``httpx.ASGITransport`` to the app with its lifespan running (in
an anyio blocking portal, so the Hypothesis tests themselves are synchronous), on
a SQLite file in ``tmp_path``; uploads reach the local fault-injecting provider,
well-behaved, on a loopback socket. Each response must pass Schemathesis's checks:
not a server error, a documented status code, the documented content type, headers
and body schema (errors are ``application/problem+json``, documented once per
router by ``api.openapi``). The same run is made with an admin token, with a
reader token (no write succeeds) and without a token (no protected route succeeds;
Schemathesis draws the ``Authorization`` header itself: absent or not a token).

The budget is fixed: ``EXAMPLES`` per operation, mode and caller, derandomized (the
same examples on every machine), a deadline per request, a timeout for the whole
module. ``tests/test_api_fuzz.py``, the hand-written
Hypothesis fuzzer, stays: it sends what Schemathesis does not (garbage
``Authorization`` headers, path names that do not route, arbitrary bytes as JSON,
multipart bodies without a file, the time parameters as NaN/infinities/far dates).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from breaker_service.api import create_app
from breaker_service.api.auth import SCOPES, mint_token
from breaker_service.api.openapi import problem_responses
from breaker_service.api.problems import PROBLEM_MEDIA_TYPE, problem_kinds
from breaker_service.config import Settings, load_settings
from breaker_service.providers.flaky import (
    FaultConfig,
    FlakyProvider,
    serve_in_thread,
)
from breaker_service.providers.flaky import create_app as flaky_app

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("clean_environment")]

SECRET = "schemathesis-secret-0123456789abcdefghijkl"
PROVIDER_KEY = "sk-schemathesis-provider-1"
EXAMPLES = 12
"""Examples per operation, per generation mode, per caller."""
DEADLINE = timedelta(seconds=5)
"""One request, uploads included (the provider is local and well-behaved)."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

BUDGET = settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE,
    phases=[Phase.explicit, Phase.generate, Phase.target, Phase.shrink],
    database=None,  # the same examples on every run and machine: a fixed budget
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@dataclass(frozen=True, slots=True)
class Target:
    """The running app, a client for it, its schema and the callers' headers."""

    portal: BlockingPortal
    client: httpx.AsyncClient
    openapi: dict[str, Any]
    callers: dict[str, dict[str, str]]

    def send(self, case: Case[Any], headers: dict[str, str]) -> httpx.Response:
        """Send a case (with ``headers``) as ``requests`` would encode it, to the app."""
        kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
        prepared = requests.Request(
            method=kwargs["method"],
            url=kwargs["url"],
            headers=kwargs.get("headers"),
            params=kwargs.get("params"),
            json=kwargs.get("json"),
            data=kwargs.get("data"),
            files=kwargs.get("files"),
            cookies=kwargs.get("cookies"),
        ).prepare()
        body = prepared.body
        assert body is None or isinstance(body, str | bytes), body

        async def request() -> httpx.Response:
            return await self.client.request(
                str(prepared.method),
                str(prepared.url),
                headers=[(k, _text(v)) for k, v in prepared.headers.items()],
                content=body,
            )

        return self.portal.call(request)


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode("latin-1")


def make_settings(tmp_path: Path, upstream: str) -> Settings:
    """Both providers on the local server; one attempt; small files."""
    root = tmp_path / "files"
    root.mkdir(exist_ok=True)
    return load_settings(
        env_file=None,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'schemathesis.db'}",
        upload_allowed_dirs=str(root),
        kimi_base_url=upstream,
        glm_base_url=upstream,
        KIMI_API_KEY=PROVIDER_KEY,
        GLM_API_KEY=PROVIDER_KEY,
        breaker_service_jwt_secret=SECRET,
        breaker_instance_id="schemathesis",
        retry_max_attempts=1,
        http_read_timeout=5.0,
        http_connect_timeout=2.0,
        kimi_max_bytes=4096,
        glm_max_bytes=4096,
    )


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    """The app running on SQLite with the local provider, and its schema."""
    provider = FlakyProvider(FaultConfig(seed=7, api_key=PROVIDER_KEY, flavor="kimi"))
    with serve_in_thread(flaky_app(provider)) as upstream:
        service_settings = make_settings(tmp_path, upstream)
        (tmp_path / "files" / "a.txt").write_bytes(b"a" * 10)
        app = create_app(service_settings)

        def bearer(*scopes: str) -> dict[str, str]:
            token = mint_token(
                service_settings, subject="schemathesis", scopes=list(scopes), ttl=3600
            )
            return {"Authorization": f"Bearer {token}"}

        with (
            start_blocking_portal() as portal,
            portal.wrap_async_context_manager(running(app)) as client,
        ):
            yield Target(
                portal=portal,
                client=client,
                openapi=app.openapi(),
                callers={
                    "admin": bearer(*SCOPES),
                    "reader": bearer("breakers:read"),
                    "anonymous": {},
                },
            )


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan, and a client through ``ASGITransport``."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        yield client


def fuzz_operation(
    target: Target, operation: Any, mode: GenerationMode, caller: str
) -> None:
    """Run the budget of ``mode`` cases against one operation as ``caller``."""
    headers = target.callers[caller]
    strategy = operation.as_strategy(generation_mode=mode)
    checks = list(CHECKS)
    if mode is GenerationMode.NEGATIVE and not _is_form(operation):
        # A form sends text: a value "of the wrong type" arrives as valid text.
        checks.append(negative_data_rejection)

    @BUDGET
    @given(case=strategy)
    def run(case: Case[Any]) -> None:
        response = target.send(case, headers)
        case.validate_response(response, checks=checks, headers=headers or None)
        assert not (response.is_success and not allowed(operation, caller)), (
            f"{operation.label} answered {response.status_code} to a caller "
            f"without the scope: {response.text[:200]}"
        )

    run()


def schema_for(target: Target, caller: str) -> Any:
    """The app's schema, generating what ``caller`` can send.

    Unknown query parameters are not drawn: the service ignores them, as HTTP APIs
    do, so they would not make a request invalid. With a token, Schemathesis does
    not draw the ``Authorization`` header (the caller's token is sent instead);
    without one, it does: no header, or one that is not a token.
    """
    config = schemathesis.Config.from_dict(
        {
            "generation": {
                "allow-extra-parameters": False,
                "with-security-parameters": caller == "anonymous",
            }
        }
    )
    return schemathesis.openapi.from_dict(target.openapi, config=config)


def allowed(operation: Any, caller: str) -> bool:
    """Whether ``caller`` may succeed: a public route, or a token with the scope."""
    if "security" not in operation.definition.raw or caller == "admin":
        return True
    return caller == "reader" and operation.method.upper() == "GET"


def _is_form(operation: Any) -> bool:
    body = operation.definition.raw.get("requestBody", {})
    return "multipart/form-data" in body.get("content", {})


@pytest.mark.parametrize("caller", ["admin", "reader", "anonymous"])
def test_every_operation_as_documented(target: Target, caller: str) -> None:
    """Each operation, valid and invalid requests: no 5xx, every answer documented."""
    failures: list[str] = []
    operations = [
        result.ok() for result in schema_for(target, caller).get_all_operations()
    ]
    assert len(operations) >= 15
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz_operation(target, operation, mode, caller)
            except Unsatisfiable as exc:
                if mode is GenerationMode.NEGATIVE:
                    continue  # nothing to break: no parameters, or any text is valid
                failures.append(f"{operation.label} [{mode.value}]: {exc!r}"[:3000])
            except (Exception, FailureGroup) as exc:  # noqa: BLE001 - all reported
                failures.append(f"{operation.label} [{mode.value}]: {exc!r}"[:3000])
    assert not failures, "\n\n".join(failures)


def test_error_answers_are_documented_as_problems(target: Target) -> None:
    """Every documented error is problem+json; token routes say 401 (with the scheme) and 403."""
    for path, item in target.openapi["paths"].items():
        for method, spec in item.items():
            where = f"{method.upper()} {path}"
            for status, response in spec["responses"].items():
                if int(status) < 400 or (path, status) == ("/readyz", "503"):
                    continue
                assert list(response["content"]) == [PROBLEM_MEDIA_TYPE], where
                assert response["description"], where
            if "security" in spec:
                assert {"401", "403", "422"} <= set(spec["responses"]), where
                assert "WWW-Authenticate" in spec["responses"]["401"]["headers"]
            if "requestBody" in spec:
                assert {"400", "413"} <= set(spec["responses"]), where


def test_descriptions_come_from_the_error_table() -> None:
    """A status's description names the problem types the one table maps to it."""
    assert problem_kinds(503) == [
        "circuit-open",
        "not-durable",
        "record-not-saved",
        "store-unavailable",
        "upload-rejected",
    ]
    assert problem_kinds(413) == ["body-too-large", "upload-rejected"]
    [(status, response)] = problem_responses(404).items()
    assert status == 404
    assert response["description"].startswith("Not Found: ")
    assert "unknown-breaker" in response["description"]
