"""Fuzz the service from its own OpenAPI schema: no input may produce a 5xx.

Requests are drawn with Hypothesis from ``app.openapi()``: every operation, its
path parameters as arbitrary (percent-encoded) text or known names, its query
parameters from their schema types and out of range (integers beyond their bounds,
NaN, infinities, far-away dates for the time parameters), JSON bodies built from
the component schemas (``Reason``, ``ByPath``) or arbitrary JSON or bytes, and
multipart bodies for ``POST /uploads``; with an admin token, a reader token, no
token or a garbage ``Authorization`` header. They run through ``httpx.ASGITransport``
against the app with its lifespan running (in an anyio blocking portal, so the
Hypothesis test itself is synchronous); uploads reach a real, well-behaved
fault-injecting provider on a loopback socket.

The only 5xx allowed is 503 from an open circuit (a fuzzed force-open may open
it) or from ``/readyz``; every error is ``application/problem+json``. An app
exception is not swallowed: ``ASGITransport`` re-raises it, failing the example.
"""

from __future__ import annotations

import json
import string
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breaker_service.api import create_app
from breaker_service.api.auth import SCOPES, mint_token
from breaker_service.config import Settings, load_settings
from breaker_service.providers.flaky import (
    FaultConfig,
    FlakyProvider,
    serve_in_thread,
)
from breaker_service.providers.flaky import create_app as flaky_app

SECRET = "fuzz-test-secret-0123456789abcdefghijkl"
PROVIDER_KEY = "sk-fuzz-provider-key-1"
PROBLEM = "application/problem+json"
EXAMPLES = 250
"""Examples per fuzz test: a few seconds each on a quiet machine."""
PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})
"""Operations open without a token (and the dashboard's page and assets)."""

Json = Any


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one path of the schema."""

    method: str
    path: str
    spec: dict[str, Any]

    def parameters(self, where: str) -> list[dict[str, Any]]:
        """The operation's parameters in ``where`` (path, query, header)."""
        return [p for p in self.spec.get("parameters", []) if p["in"] == where]

    @property
    def protected(self) -> bool:
        """Whether the operation declares the bearer security scheme."""
        return any(
            "HTTPBearer" in requirement for requirement in self.spec.get("security", [])
        )

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(slots=True)
class Drawn:
    """A request drawn for an operation, ready for ``client.request``."""

    operation: Operation
    url: str
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Target:
    """The running app: a portal to call it and what the strategies need."""

    portal: BlockingPortal
    client: httpx.AsyncClient
    schema: dict[str, Any]
    operations: list[Operation]
    auth: dict[str, dict[str, str]]
    files: list[str]

    def send(self, drawn: Drawn) -> httpx.Response:
        """Run the request in the app's event loop."""
        call = partial(
            self.client.request,
            drawn.operation.method,
            drawn.url,
            params=drawn.params,
            headers=drawn.headers,
            **drawn.body,
        )
        return self.portal.call(call)


def operations_of(schema: dict[str, Any]) -> list[Operation]:
    """Every operation in an OpenAPI document, in a stable order."""
    return [
        Operation(method.upper(), path, spec)
        for path, item in sorted(schema["paths"].items())
        for method, spec in sorted(item.items())
        if method in {"get", "post", "put", "patch", "delete"}
    ]


# -- strategies ------------------------------------------------------------------------

ascii_text = st.text(alphabet=string.printable, max_size=40)
anything = st.text(max_size=40)
NAMES = ["kimi", "glm", "nope", "KIMI", "", ".", "..", "index.html", "main.js"]

json_values: st.SearchStrategy[Json] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | anything,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(anything, children, max_size=4)
    ),
    max_leaves=12,
)

offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
times: st.SearchStrategy[str] = st.one_of(
    st.floats().map(repr),  # nan, inf, -inf, 1e308 ...
    st.floats(min_value=-1e11, max_value=1e11).map(str),
    st.integers().map(str),
    st.datetimes(timezones=st.none() | offsets).map(datetime.isoformat),
    st.datetimes(min_value=datetime(1969, 1, 1), max_value=datetime(2100, 1, 1)).map(
        lambda d: d.replace(tzinfo=UTC).isoformat()
    ),
    st.sampled_from(["", "now", "yesterday", "1970-01-01", "2026-13-01", "--"]),
    anything,
)
TIME_PARAMETERS = frozenset({"since", "until", "at"})


def from_schema(
    schema: dict[str, Any], components: dict[str, Any]
) -> st.SearchStrategy[Json]:
    """Values for a JSON schema: mostly valid, sometimes just outside its bounds."""
    if "$ref" in schema:
        name = schema["$ref"].rpartition("/")[2]
        return from_schema(components[name], components)
    if "anyOf" in schema:
        return st.one_of([from_schema(s, components) for s in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {
                k: from_schema(v, components)
                for k, v in properties.items()
                if k in required
            },
            optional={
                k: from_schema(v, components)
                for k, v in properties.items()
                if k not in required
            },
        )
    if kind == "string":
        low = schema.get("minLength", 0)
        high = schema.get("maxLength", 60)
        inside = st.text(min_size=low, max_size=min(high, 60))
        edges = st.sampled_from(["", "x" * (high + 1)])
        return inside | edges
    if kind == "integer":
        return integers(schema)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), components), max_size=4)
    return json_values


def integers(schema: dict[str, Any]) -> st.SearchStrategy[int]:
    """Integers inside the schema's bounds, at them, just beyond, and anywhere."""
    low = schema.get("minimum")
    high = schema.get("maximum")
    edges = [v for b in (low, high) if b is not None for v in (b - 1, b, b + 1)]
    return st.one_of(
        st.integers(min_value=low, max_value=high),
        st.sampled_from(edges or [0]),
        st.integers(),
        st.integers(min_value=2**63 - 2, max_value=2**80),
    )


def query_value(
    parameter: dict[str, Any], components: dict[str, Any]
) -> st.SearchStrategy[Any]:
    """A query parameter's value: by its schema, as time text, or as garbage text."""
    if parameter["name"] in TIME_PARAMETERS:
        return times
    typed = from_schema(parameter.get("schema", {}), components).filter(
        lambda v: v is not None and not isinstance(v, dict)
    )
    return typed.map(lambda v: v if isinstance(v, list) else str(v)) | anything


@st.composite
def requests(draw: st.DrawFn, target: Target, auth: list[str]) -> Drawn:
    """Any request to any operation of the target's schema."""
    operation = draw(st.sampled_from(target.operations))
    components = target.schema.get("components", {}).get("schemas", {})
    url = operation.path
    for parameter in operation.parameters("path"):
        value = draw(
            st.sampled_from(["kimi", "glm"]) | st.sampled_from(NAMES) | anything
        )
        url = url.replace("{" + parameter["name"] + "}", quote(value, safe=""))
    drawn = Drawn(operation, url)
    for parameter in operation.parameters("query"):
        if draw(st.booleans()) or (parameter.get("required") and draw(st.booleans())):
            drawn.params[parameter["name"]] = draw(query_value(parameter, components))
    who = draw(st.sampled_from(auth))
    if who == "garbage":
        drawn.headers["Authorization"] = draw(
            st.sampled_from(["Bearer ", "Bearer x.y.z", "Basic Zm9vOmJhcg=="])
            | ascii_text.map(lambda t: t.strip())
        )
    elif who != "none":
        drawn.headers.update(target.auth[who])
    content = operation.spec.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        schema = content["application/json"]["schema"]
        shape = draw(st.sampled_from(["schema", "schema", "json", "bytes"]))
        if shape == "schema":
            body = draw(from_schema(schema, components))
            if "ByPath" in json.dumps(schema) and draw(st.booleans()):
                body["path"] = draw(st.sampled_from(target.files))
            drawn.body = {"json": body}
        elif shape == "json":
            drawn.body = {"json": draw(json_values)}
        else:
            drawn.body = {"content": draw(st.binary(max_size=64))}
    elif "multipart/form-data" in content:
        drawn.body = draw(multipart())
        drawn.headers.update(drawn.body.pop("headers", {}))
    elif operation.method == "POST":
        drawn.body = draw(st.just({}) | json_values.map(lambda b: {"json": b}))
    return drawn


@st.composite
def multipart(draw: st.DrawFn) -> dict[str, Any]:
    """A multipart body: a file (or none), and provider/purpose fields."""
    data: dict[str, str] = {}
    for name in ("provider", "purpose"):
        if draw(st.booleans()):
            data[name] = draw(st.sampled_from(["kimi", "glm", "nope", ""]) | anything)
    body: dict[str, Any] = {"data": data}
    if draw(st.integers(0, 9)):
        filename = draw(
            st.sampled_from(["a.txt", "../../x", ".", "", "a\\b"]) | anything
        )
        content = draw(st.binary(max_size=256))
        body["files"] = {"file": (filename, content)}
    elif not data:
        body["content"] = draw(st.binary(max_size=64))
        body["headers"] = {"content-type": "multipart/form-data; boundary=zz"}
    return body


# -- the checks ------------------------------------------------------------------------


def check(drawn: Drawn, response: httpx.Response) -> None:
    """No 5xx except an open circuit or readiness; errors are problem+json."""
    where = f"{drawn.operation} as {drawn.url} -> {response.status_code}: {response.text[:300]}"
    status = response.status_code
    if status >= 500:
        assert status == 503, where
        if drawn.url == "/readyz":
            return
        assert response.headers["content-type"].startswith(PROBLEM), where
        body = response.json()
        assert body["type"] == "urn:breaker-service:circuit-open", where
        assert int(response.headers["retry-after"]) >= 1, where
        return
    if status >= 400:
        assert response.headers["content-type"].startswith(PROBLEM), where
        body = response.json()
        assert body["status"] == status, where
        assert isinstance(body["detail"], str), where
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer"), where
    if response.headers.get("content-type", "").startswith("application/json"):
        response.json()


# -- fixtures --------------------------------------------------------------------------


pytestmark = pytest.mark.usefixtures("clean_environment")


def make_settings(tmp_path: Path, upstream: str) -> Settings:
    """Both providers on the well-behaved local server; real retries kept small."""
    root = tmp_path / "files"
    root.mkdir(exist_ok=True)
    return load_settings(
        env_file=None,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}",
        upload_allowed_dirs=str(root),
        kimi_base_url=upstream,
        glm_base_url=upstream,
        KIMI_API_KEY=PROVIDER_KEY,
        GLM_API_KEY=PROVIDER_KEY,
        breaker_service_jwt_secret=SECRET,
        breaker_instance_id="fuzz",
        retry_max_attempts=1,
        http_read_timeout=5.0,
        http_connect_timeout=2.0,
        kimi_max_bytes=200,
        glm_max_bytes=200,
    )


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan, and a client through ``ASGITransport``."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        yield client


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    """The running app, reachable from synchronous Hypothesis tests."""
    provider = FlakyProvider(FaultConfig(seed=5, api_key=PROVIDER_KEY, flavor="kimi"))
    with serve_in_thread(flaky_app(provider)) as upstream:
        service_settings = make_settings(tmp_path, upstream)
        root = tmp_path / "files"
        files = []
        for name, content in (
            ("a.txt", b"a" * 10),
            ("empty.txt", b""),
            ("big.txt", b"b" * 300),
        ):
            (root / name).write_bytes(content)
            files.append(str(root / name))
        files.append(str(root))
        with start_blocking_portal() as portal:
            app = create_app(service_settings)
            schema = app.openapi()

            def token(*scopes: str) -> dict[str, str]:
                minted = mint_token(
                    service_settings, subject="fuzzer", scopes=list(scopes), ttl=3600
                )
                return {"Authorization": f"Bearer {minted}"}

            with portal.wrap_async_context_manager(running(service_settings)) as client:
                yield Target(
                    portal=portal,
                    client=client,
                    schema=schema,
                    operations=operations_of(schema),
                    auth={"admin": token(*SCOPES), "reader": token("breakers:read")},
                    files=files,
                )


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_schema_has_operations(target: Target) -> None:
    """The schema lists the routes the fuzzer is meant to reach."""
    paths = {op.path for op in target.operations}
    assert {"/breakers/{name}/events", "/uploads", "/uploads/by-path"} <= paths
    assert len(target.operations) >= 15


def test_fuzz_with_an_admin_token(target: Target) -> None:
    """Mostly admin requests (so bodies reach the handlers): no 5xx."""

    @FUZZ
    @given(st.data())
    def run(data: st.DataObject) -> None:
        drawn = data.draw(requests(target, ["admin", "admin", "admin", "reader"]))
        check(drawn, target.send(drawn))

    run()


def test_fuzz_without_a_valid_token(target: Target) -> None:
    """No token or a garbage header: protected operations are 401, never 5xx."""

    @FUZZ
    @given(st.data())
    def run(data: st.DataObject) -> None:
        drawn = data.draw(requests(target, ["none", "garbage"]))
        response = target.send(drawn)
        check(drawn, response)
        if drawn.operation.protected:
            # Never served, and no domain error (which would mean the handler ran):
            # FastAPI reads the body before the token, so a body it cannot parse
            # is a 400 (multipart) or 422 (JSON); a name that does not route (an
            # encoded "/", "." or "..", or empty) is Starlette's 307, 404 or 405.
            status = response.status_code
            assert not response.is_success, (drawn, response.text)
            if status not in {401, 307}:
                kinds = {"http-error", "invalid-request"}
                kind = response.json()["type"].rpartition(":")[2]
                assert kind in kinds, (drawn, response.text)

    run()


def test_every_operation_is_protected_or_public(target: Target) -> None:
    """Without a token: each protected operation is 401; only known paths are open."""
    for operation in target.operations:
        url = operation.path.replace("{name}", "kimi")
        params = {"at": "0"} if operation.path.endswith("/state") else {}
        kwargs: dict[str, Any] = {}
        if operation.method == "POST":
            kwargs = {"json": {"reason": "x", "path": "x"}}
        drawn = Drawn(operation, url, params, {}, kwargs)
        response = target.send(drawn)
        if operation.protected:
            assert response.status_code == 401, operation
            check(drawn, response)
        else:
            assert operation.path in PUBLIC_PATHS or operation.path.startswith(
                "/dashboard"
            ), f"{operation} is open without a token: add it to PUBLIC_PATHS if meant"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        pytest.param("/breakers/kimi/state", {"at": "nan"}, id="at-nan"),
        pytest.param("/breakers/kimi/state", {"at": "inf"}, id="at-inf"),
        pytest.param("/breakers/kimi/state", {"at": "1e20"}, id="at-far-future"),
        pytest.param(
            "/breakers/kimi/state",
            {"at": "0001-01-01T00:00:00+14:00"},
            id="at-before-year-1",
        ),
        pytest.param("/breakers/kimi/events", {"since": "nan"}, id="since-nan"),
        pytest.param("/breakers/kimi/events", {"until": "-inf"}, id="until-inf"),
        pytest.param("/breakers/kimi/events", {"after": str(2**70)}, id="after-huge"),
    ],
)
def test_found_by_fuzzing(target: Target, path: str, params: dict[str, str]) -> None:
    """Inputs that once were 500s: times that cannot be shown, ids beyond 64 bits."""
    operation = next(o for o in target.operations if o.path.endswith(path[-6:]))
    drawn = Drawn(operation, path, params, target.auth["admin"])
    response = target.send(drawn)
    assert response.status_code == 422, response.text
    check(drawn, response)
