"""The Docker image's commands, run outside a container (no Docker engine here).

The entrypoint (``CMD``) starts the service with the image's environment, and the
``HEALTHCHECK`` command succeeds against it and fails once it is gone.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def _json_instruction(name: str) -> list[str]:
    """The exec-form argument list of the last ``name`` instruction (e.g. CMD)."""
    joined = DOCKERFILE.replace("\\\n", " ")
    found = re.findall(
        rf"^{name}\s+(?:--\S+\s+)*(?:CMD\s+)?(\[.*\])\s*$", joined, flags=re.MULTILINE
    )
    assert found, f"no exec-form {name} in the Dockerfile"
    value: list[str] = json.loads(found[-1])
    return value


def _image_env() -> dict[str, str]:
    """The ENV block of the runtime stage, as a dict."""
    joined = DOCKERFILE.replace("\\\n", " ")
    env: dict[str, str] = {}
    for block in re.findall(r"^ENV\s+(.+)$", joined, flags=re.MULTILINE):
        for key, value in re.findall(r"(\w+)=(\S+)", block):
            env[key] = value
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_dockerfile_keeps_its_promises() -> None:
    """Slim base as an ARG, locked sync, non-root user, healthcheck, serve as the command."""
    assert "ARG BASE_IMAGE=python:3.11-slim" in DOCKERFILE
    assert "FROM ${BASE_IMAGE}" in DOCKERFILE
    assert "uv sync --frozen" in DOCKERFILE
    assert re.search(r"^USER breaker$", DOCKERFILE, flags=re.MULTILINE)
    assert _json_instruction("CMD") == ["breaker-service", "serve"]
    assert "HEALTHCHECK" in DOCKERFILE
    assert (ROOT / ".dockerignore").is_file()


def test_entrypoint_and_healthcheck_outside_a_container(tmp_path: Path) -> None:
    """CMD serves with the image's environment; HEALTHCHECK passes, then fails when it stops."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "SERVICE_", "UPLOAD_"))
    }
    image = _image_env()
    port = _free_port()
    data = tmp_path / "data"
    (data / "uploads").mkdir(parents=True)
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "DATABASE_URL": image["DATABASE_URL"].replace("////data/", f"///{data}/"),
            "DATABASE_AUTO_MIGRATE": image["DATABASE_AUTO_MIGRATE"],
            "SERVICE_HOST": "127.0.0.1",
            "SERVICE_PORT": str(port),
            "UPLOAD_ALLOWED_DIRS": str(data / "uploads"),
            "BREAKER_SERVICE_JWT_SECRET": "d" * 40,
        }
    )
    command = _json_instruction("CMD")
    healthcheck = _json_instruction("HEALTHCHECK")
    assert healthcheck[0] == "python"
    healthcheck[0] = sys.executable
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            probe = subprocess.run(
                healthcheck, env=env, capture_output=True, timeout=30, check=False
            )
            if probe.returncode == 0:
                break
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, probe.stderr.decode()
            time.sleep(0.3)
        assert (
            data / "breaker_service.db"
        ).is_file()  # migrated at start in the volume
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    after = subprocess.run(
        healthcheck, env=env, capture_output=True, timeout=30, check=False
    )
    assert after.returncode != 0
