"""The dashboard: its page and assets over ASGI, and the operator's scenario in a real browser.

The browser tests run headless Chromium from Debian (``/usr/bin/chromium``) under
Playwright against a real uvicorn on 127.0.0.1 with the fault-injecting providers;
each step leaves a screenshot in ``test-artifacts/dashboard/``. Without Chromium
they skip loudly (``BREAKER_TEST_REQUIRE_BROWSER=1`` makes that a failure).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashboard_helpers import (
    JWT_SECRET,
    ServiceStack,
    fresh_artifacts,
    launch_chromium,
    require_chromium,
    service_stack,
)
from upload_helpers import make_settings

from breaker_service.api.app import create_app

STATIC = resources.files("breaker_service.api") / "static"
EXTERNAL = re.compile(r"""(?:https?:)?//[^\s"'<>]+""")
ASSET_REF = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
IMPORT_REF = re.compile(r"""(?:import|from)\s*["'](\.[^"']+)["']""")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app over ASGI (these routes need no lifespan resources)."""
    settings = make_settings(tmp_path, breaker_service_jwt_secret=JWT_SECRET)
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver"
    ) as http:
        yield http


async def test_dashboard_page_is_public_self_contained_html(
    client: httpx.AsyncClient,
) -> None:
    """/dashboard serves HTML without a token, with no script or style from elsewhere."""
    response = await client.get("/dashboard")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "connect-src 'self'" in csp
    html = response.text
    tags = re.findall(r"<(?:script|link)\b[^>]*>", html)
    assert any('type="module"' in tag for tag in tags)
    refs = [ref for tag in tags for ref in ASSET_REF.findall(tag)]
    assert refs
    assert not [ref for ref in refs if EXTERNAL.match(ref)]
    assert "every 1 s" in html


async def test_root_redirects_to_the_dashboard(client: httpx.AsyncClient) -> None:
    """/ is the dashboard."""
    response = await client.get("/")
    assert response.status_code == 307
    assert response.headers["location"] == "/dashboard"


async def test_every_asset_loads_with_its_type_and_nothing_is_external(
    client: httpx.AsyncClient,
) -> None:
    """The page's modules (and what they import) and stylesheet load; none reach out."""
    html = (await client.get("/dashboard")).text
    pending = [
        ref.removeprefix("dashboard/static/")
        for ref in ASSET_REF.findall(html)
        if ref.startswith("dashboard/static/")
    ]
    loaded: dict[str, str] = {}
    while pending:
        name = pending.pop()
        if name in loaded:
            continue
        response = await client.get(f"/dashboard/static/{name}")
        assert response.status_code == 200, name
        kind = response.headers["content-type"]
        if name.endswith(".js"):
            assert kind.startswith("text/javascript"), name
            pending += [
                ref.removeprefix("./") for ref in IMPORT_REF.findall(response.text)
            ]
        else:
            assert kind.startswith("text/css"), name
        assert not EXTERNAL.findall(
            re.sub(r"http://www\.w3\.org/2000/svg", "", response.text)
        ), name
        assert "@import" not in response.text, name
        loaded[name] = response.text
    shipped = {entry.name for entry in STATIC.iterdir() if entry.name != "index.html"}
    assert set(loaded) == shipped


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("nope.js", id="unknown"),
        pytest.param("..%2Fdashboard.py", id="traversal"),
        pytest.param("..%2F..%2Fconfig.py", id="deeper-traversal"),
    ],
)
async def test_unknown_assets_are_404(client: httpx.AsyncClient, name: str) -> None:
    """Only the shipped files are served."""
    response = await client.get(f"/dashboard/static/{name}")
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("disabled", "values"),
    [
        pytest.param(False, {"breaker_service_jwt_secret": JWT_SECRET}, id="auth-on"),
        pytest.param(True, {"auth_disabled": True}, id="auth-disabled"),
    ],
)
async def test_config_tells_the_page_whether_to_ask_for_a_token(
    tmp_path: Path, disabled: bool, values: dict[str, Any]
) -> None:
    """/dashboard/config is open and says whether auth is disabled and how often to poll."""
    transport = httpx.ASGITransport(app=create_app(make_settings(tmp_path, **values)))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await http.get("/dashboard/config")
    assert response.status_code == 200
    assert response.json() == {"auth_disabled": disabled, "poll_interval": 1.0}


async def test_the_data_behind_the_page_still_needs_a_token(
    client: httpx.AsyncClient,
) -> None:
    """The page is public; the API it reads is not."""
    assert (await client.get("/dashboard")).status_code == 200
    assert (await client.get("/breakers")).status_code == 401


def test_assets_ship_inside_the_package() -> None:
    """The static files live in the package (hatch puts every file under it in the wheel)."""
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert 'packages = ["breaker_service"]' in pyproject
    names = {entry.name for entry in STATIC.iterdir()}
    assert {"index.html", "main.js", "dashboard.css"} <= names


# -- in a real browser ---------------------------------------------------------------


async def _trip_kimi(stack: ServiceStack, http: httpx.AsyncClient) -> int:
    """Uploads with kimi down until its breaker opens; returns how many it took."""
    stack.kimi.state.reconfigure({"down": True})
    for count in range(1, 11):
        result = await stack.upload(http)
        assert result["provider"] == "glm"  # kimi failed, the upload fell back
        if (await stack.breaker(http, "kimi"))["state"] == "open":
            return count
    pytest.fail("kimi's breaker did not open after 10 uploads")


@pytest.mark.slow
async def test_an_operator_watches_kimi_open_and_resets_it(tmp_path: Path) -> None:
    """Sign in, see kimi closed; kimi fails and opens on screen; reset it; closed again."""
    from playwright.async_api import expect  # noqa: PLC0415

    require_chromium()  # skip (or fail in CI) before starting anything
    shots = fresh_artifacts("operator")
    with service_stack(tmp_path) as stack:
        async with (
            launch_chromium() as browser,
            httpx.AsyncClient(timeout=30) as http,
        ):
            page = await browser.new_page(viewport={"width": 1360, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(stack.url + "/")
            assert page.url == stack.url + "/dashboard"
            await expect(page.get_by_test_id("login")).to_be_visible()
            await expect(page.get_by_test_id("live")).to_contain_text("every 1 s")
            await page.screenshot(path=shots / "01-sign-in.png")

            await page.get_by_test_id("token-input").fill(stack.admin_token)
            await page.get_by_test_id("token-submit").click()
            card = page.get_by_test_id("card-kimi")
            await expect(card).to_have_attribute("data-state", "closed")
            await expect(page.get_by_test_id("card-glm")).to_have_attribute(
                "data-state", "closed"
            )
            await expect(page.get_by_test_id("who-name")).to_have_text("alice")
            await expect(page.get_by_test_id("scope-kimi")).to_have_text(
                "scope: instance"
            )
            await expect(page.get_by_test_id("force-open-kimi")).to_be_visible()
            await expect(page.get_by_test_id("outbox")).to_contain_text("tracking off")
            await stack.upload(http)  # kimi is healthy: the first upload goes there
            await expect(page.get_by_test_id("upload-row")).to_have_count(1)
            await expect(page.get_by_test_id("replicas-kimi")).to_contain_text(
                "replica-a"
            )
            await page.screenshot(path=shots / "02-closed.png", full_page=True)

            uploads = await _trip_kimi(stack, http)
            await expect(card).to_have_attribute("data-state", "open", timeout=5000)
            await expect(page.get_by_test_id("state-kimi")).to_have_text("open")
            await expect(page.get_by_test_id("probe-kimi")).to_contain_text(
                "next probe in"
            )
            seconds = int(
                await page.get_by_test_id("probe-kimi").get_attribute("data-seconds")
                or 0
            )
            assert 0 < seconds <= 60
            opened = page.get_by_test_id("timeline-kimi").locator(
                '[data-testid="transition"][data-to="open"]'
            )
            await expect(opened).to_have_count(1, timeout=5000)
            await expect(
                page.locator(
                    '[data-testid="transition-row"][data-provider="kimi"][data-to="open"]'
                )
            ).to_have_count(1)
            title = await opened.get_attribute("title") or ""
            assert "closed → open" in title
            assert "reason: 3 consecutive failures" in title
            assert "actor: automatic" in title
            last = page.get_by_test_id("meta-kimi").locator("span[title]")
            await expect(last).to_have_attribute(
                "title",
                re.compile(r"^closed → open by the breaker: 3 consecutive failures$"),
            )
            await expect(last).to_contain_text("open")
            await expect(page.get_by_test_id("upload-row")).to_have_count(1 + uploads)
            await expect(
                page.locator('[data-testid="upload-row"][data-fallback="true"]')
            ).to_have_count(uploads)
            await expect(
                page.get_by_test_id("rates-legend-kimi").locator(
                    '[data-outcome="failure"]'
                )
            ).not_to_have_attribute("data-count", "0")
            await opened.click()
            await expect(page.get_by_test_id("transition-detail")).to_contain_text(
                "closed → open"
            )
            await page.screenshot(path=shots / "03-open.png", full_page=True)

            await page.get_by_test_id("reset-kimi").click()
            await page.get_by_test_id("reason-kimi").fill("provider recovered (test)")
            await page.screenshot(path=shots / "04-reset-reason.png", full_page=True)
            await page.get_by_test_id("confirm-kimi").click()
            await expect(card).to_have_attribute("data-state", "closed", timeout=5000)
            await expect(page.get_by_test_id("admin-result-kimi")).to_contain_text(
                "reset to closed"
            )
            reset = page.get_by_test_id("timeline-kimi").locator(
                '[data-testid="transition"][data-actor="alice"]'
            )
            await expect(reset).to_have_count(1, timeout=5000)
            await expect(reset).to_have_attribute(
                "data-reason", "provider recovered (test)"
            )
            await reset.click()
            await expect(page.get_by_test_id("detail-actor")).to_have_text("alice")
            await page.screenshot(path=shots / "05-closed-again.png", full_page=True)
            assert (await stack.breaker(http, "kimi"))["state"] == "closed"

            # a read-only token sees everything but the admin buttons
            await page.get_by_test_id("sign-out").click()
            await page.get_by_test_id("token-input").fill(stack.reader_token)
            await page.get_by_test_id("token-submit").click()
            await expect(card).to_have_attribute("data-state", "closed")
            await expect(page.get_by_test_id("who-name")).to_have_text("bob")
            await expect(page.get_by_test_id("force-open-kimi")).to_have_count(0)
            await expect(page.get_by_test_id("reset-kimi")).to_have_count(0)

            # a token the server rejects sends the operator back to sign in
            await page.get_by_test_id("sign-out").click()
            await page.get_by_test_id("token-input").fill("not.a-valid.token")
            await page.get_by_test_id("token-submit").click()
            await expect(page.get_by_test_id("login-error")).to_contain_text(
                "invalid token"
            )
            assert errors == []


@pytest.mark.slow
async def test_with_auth_disabled_the_page_asks_for_no_token(tmp_path: Path) -> None:
    """AUTH_DISABLED: straight to the cards, a warning banner, and the admin actions."""
    from playwright.async_api import expect  # noqa: PLC0415

    require_chromium()  # skip (or fail in CI) before starting anything
    shots = fresh_artifacts("auth-disabled")
    with service_stack(tmp_path, auth_disabled=True) as stack:
        async with launch_chromium() as browser:
            page = await browser.new_page(viewport={"width": 1360, "height": 900})
            await page.goto(stack.url + "/dashboard")
            await expect(page.get_by_test_id("banner")).to_contain_text("AUTH_DISABLED")
            await expect(page.get_by_test_id("login")).to_be_hidden()
            card = page.get_by_test_id("card-kimi")
            await expect(card).to_have_attribute("data-state", "closed")
            await page.get_by_test_id("force-open-kimi").click()
            await page.get_by_test_id("reason-kimi").fill("maintenance window")
            await page.get_by_test_id("reason-kimi").press("Enter")
            await expect(card).to_have_attribute(
                "data-state", "forced_open", timeout=5000
            )
            await expect(page.get_by_test_id("probe-kimi")).to_contain_text(
                "until reset"
            )
            await page.screenshot(path=shots / "forced-open.png", full_page=True)
