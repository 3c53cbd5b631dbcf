"""``breaker-service upload`` of files whose names are not UTF-8 (issue 14.4).

Such a name reaches Python as lone surrogates. It used to fail per file with a
``UnicodeEncodeError`` (the multipart header), and had it got further, the record
could not be stored (SQLite refuses surrogates: the journal would keep it forever)
and the table could not be printed on a UTF-8 terminal. Now the file is uploaded by
its real path, the provider and the record get the name with U+FFFD for each bad
byte, and the output shows the name with ``\\udcXX`` escapes. The real CLI runs in
a subprocess against the local fault-injecting provider, with a strict UTF-8
stdout, as on a UTF-8 locale.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from upload_helpers import KEY_VARIABLES, KIMI_KEY, flaky_server

from breaker_service.providers.multipart import MultipartStream


class _Body:
    size = 2

    async def chunks(self) -> AsyncIterator[bytes]:
        yield b"hi"


SCRIPT = Path(sys.executable).with_name("breaker-service")
NAME = b"caf\xe9.txt"  # Latin-1 on disk: not valid UTF-8
STORED = "caf\ufffd.txt"

pytestmark = pytest.mark.slow


def _upload(
    paths: list[bytes], tmp_path: Path, url: str, *extra: str
) -> tuple[int, str, str]:
    """Run ``upload`` in ``tmp_path``; (exit code, stdout, stderr), both strict UTF-8."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RETRY_", "CIRCUIT_", "DATABASE_", "SUPABASE_"))
        and k not in KEY_VARIABLES
    }
    env.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        UPLOAD_ALLOWED_DIRS=str(tmp_path / "files"),
        KIMI_API_KEY=KIMI_KEY,
        KIMI_BASE_URL=url,
        PYTHONIOENCODING="utf-8",  # strict, as on a UTF-8 locale
        COLUMNS="400",  # the whole path in the table
    )
    result = subprocess.run(
        [
            os.fsencode(SCRIPT),
            b"upload",
            *paths,
            b"--provider",
            b"kimi",
            *map(os.fsencode, extra),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def _files(tmp_path: Path) -> tuple[bytes, bytes]:
    folder = tmp_path / "files"
    folder.mkdir()
    odd = os.fsencode(folder) + b"/" + NAME
    with open(odd, "wb") as handle:
        handle.write(b"not utf-8 named\n")
    plain = folder / "plain.txt"
    plain.write_bytes(b"plain\n")
    return odd, os.fsencode(plain)


def _recorded_names(tmp_path: Path) -> list[str]:
    with sqlite3.connect(tmp_path / "cli.db") as db:
        return sorted(row[0] for row in db.execute("SELECT filename FROM uploads"))


def test_a_name_that_is_not_utf8_uploads(tmp_path: Path) -> None:
    """Uploaded and recorded (U+FFFD for the bad byte); the table shows an escape."""
    odd, plain = _files(tmp_path)
    with flaky_server("kimi") as kimi:
        code, out, err = _upload([odd, plain], tmp_path, kimi.url)
        sent = sorted(f.filename for f in kimi.state.files.values())
    assert code == 0, out + err
    assert "2/2 uploaded" in out
    assert "caf\\udce9.txt" in out  # the name as it is on disk, escaped
    for text in (out, err):
        assert "Traceback" not in text
        assert "UnicodeEncodeError" not in text
    assert sent == sorted([STORED, "plain.txt"])
    assert _recorded_names(tmp_path) == sorted([STORED, "plain.txt"])
    assert not (tmp_path / "cli.db.uploads-journal").exists()


def test_json_output_and_a_refused_name(tmp_path: Path) -> None:
    """``--json`` names the file; one outside the allowed directories fails in one line."""
    odd, _plain = _files(tmp_path)
    outside = os.fsencode(tmp_path) + b"/" + NAME
    with open(outside, "wb") as handle:
        handle.write(b"outside\n")
    with flaky_server("kimi") as kimi:
        code, out, err = _upload([odd, outside], tmp_path, kimi.url, "--json")
    assert code == 1, out + err
    uploaded, refused = json.loads(out)
    assert uploaded["ok"]
    assert uploaded["result"]["filename"] == STORED
    assert uploaded["result"]["recorded"] == "database"
    assert not refused["ok"]
    assert refused["error"].startswith("UploadRejected: ")
    assert "outside UPLOAD_ALLOWED_DIRS" in refused["error"]
    assert "Traceback" not in err
    assert "UnicodeEncodeError" not in out + err


async def test_the_multipart_header_takes_any_name() -> None:
    """The provider adapter sends U+FFFD for a lone surrogate, not an encoding error."""
    form = MultipartStream(_Body(), filename=os.fsdecode(NAME), purpose="file-extract")
    sent = b"".join([part async for part in form.stream()])
    assert 'filename="caf\ufffd.txt"'.encode() in sent
    assert len(sent) == form.length
