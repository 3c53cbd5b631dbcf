"""The image, for real: a new container on the same /data restores the same breakers.

Builds the ``Dockerfile`` with podman on the local Debian base image that
``../shared/tools/container-check.sh`` creates (no registry here), then runs two
containers with different host names on one data directory. Skipped, with the
reason, where podman or that base image is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = "localhost/bookworm-python"
CONF = Path.home() / ".cache" / "container-check" / "containers.conf"

pytestmark = pytest.mark.slow


def _podman(*args: str, check: bool = True, timeout: float = 600) -> str:
    env = dict(os.environ)
    if CONF.is_file():
        env["CONTAINERS_CONF"] = str(CONF)
    done = subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        msg = f"podman {' '.join(args[:2])} failed: {done.stderr.strip()[-500:]}"
        raise AssertionError(msg)
    return done.stdout


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """The project's image, built from this checkout."""
    if shutil.which("podman") is None:
        pytest.skip(
            "podman is not installed (../shared/tools/container-check.sh installs it)"
        )
    probe = subprocess.run(
        ["podman", "image", "exists", BASE_IMAGE], capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip(
            f"no local base image {BASE_IMAGE}: run ../shared/tools/container-check.sh "
            "once to create it (no registry can be reached here)"
        )
    tag = f"localhost/breaker-service-test:{uuid.uuid4().hex[:8]}"
    _podman(
        "build",
        "--network=host",
        "--format",
        "docker",
        "--build-arg",
        f"BASE_IMAGE={BASE_IMAGE}",
        "-t",
        tag,
        str(ROOT),
    )
    yield tag
    _podman("rmi", "-f", tag, check=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(url: str, body: dict[str, str] | None = None) -> dict[str, object]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as reply:
        answer: dict[str, object] = json.loads(reply.read())
    return answer


def _run(image: str, name: str, hostname: str, data: Path, port: int) -> None:
    _podman(
        "run",
        "-d",
        "--name",
        name,
        "--hostname",
        hostname,
        "-v",
        f"{data}:/data",
        "-e",
        "AUTH_DISABLED=true",
        "-p",
        f"127.0.0.1:{port}:8080",
        image,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            _request(f"http://127.0.0.1:{port}/healthz")
        except OSError:
            time.sleep(0.3)
        else:
            return
    logs = _podman("logs", name, check=False)
    raise AssertionError(f"container {name} never answered /healthz: {logs[-800:]}")


def _stop(name: str) -> None:
    _podman("stop", "-t", "10", name, check=False)
    _podman("rm", "-f", name, check=False)


def test_a_new_container_on_the_same_volume_restores_the_breakers(
    image: str, tmp_path: Path
) -> None:
    """Forced open as container-aaa, still forced open as container-bbb."""
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)  # the image runs as uid 10001
    port = _free_port()
    first, second = f"bs-a-{uuid.uuid4().hex[:6]}", f"bs-b-{uuid.uuid4().hex[:6]}"
    try:
        _run(image, first, "container-aaa", data, port)
        _request(
            f"http://127.0.0.1:{port}/breakers/kimi/force-open", {"reason": "incident"}
        )
        _stop(first)
        _run(image, second, "container-bbb", data, port)
        state = _request(f"http://127.0.0.1:{port}/breakers/kimi")
    finally:
        _stop(first)
        _stop(second)
    assert state["state"] == "forced_open"
