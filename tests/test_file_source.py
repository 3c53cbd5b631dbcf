"""The file that was checked is the file that is hashed and sent."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from breaker_service.errors import UploadRejected
from breaker_service.uploads.source import FileSource
from breaker_service.uploads.validation import validate_path


async def _collect(source: FileSource, sent: bytearray) -> None:
    async for block in source.chunks(7):
        sent += block


async def _read_all(source: FileSource) -> bytes:
    return b"".join([block async for block in source.chunks(7)])


async def test_reads_exactly_the_validated_bytes_again_and_again(
    tmp_path: Path,
) -> None:
    """Each call of ``chunks`` starts at offset 0: one body per attempt."""
    path = tmp_path / "a.txt"
    path.write_bytes(b"hello, provider" * 10)
    file = validate_path(path, [tmp_path], 1000)
    async with await FileSource.open(file) as source:
        assert await _read_all(source) == path.read_bytes()
        assert await _read_all(source) == path.read_bytes()
        assert await source.sha256() == hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_symlink_swapped_in_after_validation_is_refused(tmp_path: Path) -> None:
    """Validated, then replaced by a symlink to a file outside: not opened."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"outside!")
    path = allowed / "a.txt"
    path.write_bytes(b"x" * 100)
    file = validate_path(path, [allowed], 1000)
    path.unlink()
    path.symlink_to(secret)
    with pytest.raises(UploadRejected) as caught:
        await FileSource.open(file)
    assert caught.value.reason == "file_changed"


async def test_a_swap_during_the_backoff_is_not_sent(tmp_path: Path) -> None:
    """The handle keeps the validated file: a later swap by name changes nothing sent."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    path = allowed / "a.txt"
    path.write_bytes(b"y" * 100)
    file = validate_path(path, [allowed], 1000)
    async with await FileSource.open(file) as source:
        first = await _read_all(source)
        path.rename(allowed / "moved.txt")
        (tmp_path / "evil.txt").write_bytes(b"evil")
        path.symlink_to(tmp_path / "evil.txt")
        assert await _read_all(source) == first == b"y" * 100


async def test_a_fifo_never_hangs_the_open(tmp_path: Path) -> None:
    """A FIFO swapped in after validation: refused at once, no writer needed."""
    path = tmp_path / "a.txt"
    path.write_bytes(b"z" * 10)
    file = validate_path(path, [tmp_path], 1000)
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(UploadRejected) as caught:
        await asyncio.wait_for(FileSource.open(file), timeout=2)
    assert caught.value.reason == "file_changed"


async def test_another_file_under_the_same_name_is_refused(tmp_path: Path) -> None:
    """Same name, same size, different inode: refused."""
    path = tmp_path / "a.txt"
    path.write_bytes(b"1" * 10)
    file = validate_path(path, [tmp_path], 1000)
    other = tmp_path / "other.txt"
    other.write_bytes(b"2" * 10)
    other.replace(path)  # both existed at once: a different inode
    with pytest.raises(UploadRejected, match="replaced by another file"):
        await FileSource.open(file)


async def test_a_file_that_shrinks_fails_clearly(tmp_path: Path) -> None:
    """Truncated between validation and reading: ``file_changed``, nothing short sent."""
    path = tmp_path / "a.txt"
    path.write_bytes(b"q" * 100)
    file = validate_path(path, [tmp_path], 1000)
    async with await FileSource.open(file) as source:
        os.truncate(path, 10)
        with pytest.raises(UploadRejected) as caught:
            await _read_all(source)
    assert caught.value.reason == "file_changed"


async def test_a_file_that_grows_sends_only_the_validated_bytes_and_fails(
    tmp_path: Path,
) -> None:
    """Appended to while sending: reads stop at the validated size, then it fails."""
    path = tmp_path / "a.txt"
    path.write_bytes(b"g" * 20)
    file = validate_path(path, [tmp_path], 1000)
    async with await FileSource.open(file) as source:
        with path.open("ab") as stream:
            stream.write(b"more")
        sent = bytearray()
        with pytest.raises(UploadRejected, match="now 24 bytes"):
            await _collect(source, sent)
    assert bytes(sent) == b"g" * 20


async def test_hard_links_are_refused_unless_allowed(tmp_path: Path) -> None:
    """A hard link inside the allowed directory to a file outside it: refused."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"private")
    link = allowed / "innocent.txt"
    os.link(outside, link)
    file = validate_path(link, [allowed], 1000)
    with pytest.raises(UploadRejected) as caught:
        await FileSource.open(file)
    assert caught.value.reason == "hard_link"
    async with await FileSource.open(file, allow_hardlinks=True) as source:
        assert await _read_all(source) == b"private"


def test_containment_is_decided_before_touching_the_file_system(tmp_path: Path) -> None:
    """Outside the allowed dirs: one answer whether the file exists or not."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    exists = tmp_path / "exists.txt"
    exists.write_bytes(b"x")
    answers = []
    for path in (exists, tmp_path / "missing.txt", Path("/root/.ssh/id_rsa")):
        with pytest.raises(UploadRejected) as caught:
            validate_path(path, [allowed], 1000)
        answers.append(caught.value.reason)
    assert answers == ["outside_allowed_dirs"] * 3
