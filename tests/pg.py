"""A throwaway PostgreSQL cluster for the tests, started from the server binaries.

    cluster = PostgresCluster.create()     # initdb + start on a free loopback port
    cluster.url                            # postgresql+asyncpg://postgres@127.0.0.1:PORT/breaker_test
    cluster.stop(); cluster.start()        # an outage: same port, same data directory
    cluster.cleanup()                      # stop at once and remove every file

PostgreSQL refuses to run as root, so when the tests run as root every server
command runs as the ``postgres`` OS user (``runuser -u postgres --``) in a
directory that user owns under ``/dev/shm`` (a tmpfs, when roomy) or ``/tmp``. Durability is off (``fsync=off``): the
cluster lives for one test session.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

__all__ = [
    "DEFAULT_DATABASE",
    "PostgresCluster",
    "PostgresUnavailable",
    "find_bindir",
    "free_port",
    "fresh_database",
]

DEFAULT_DATABASE = "breaker_test"
SERVER_USER = "postgres"
START_TIMEOUT = 30  # seconds pg_ctl waits for the server to accept connections
COMMAND_TIMEOUT = 60  # seconds any one server command may take
_SEARCH_GLOB = "/usr/lib/postgresql/*/bin"
_MIN_SHM_BYTES = 1 << 30  # a data directory needs ~40 MB; leave room for the rest


class PostgresUnavailable(RuntimeError):
    """The throwaway cluster could not be created or started; the message says why."""


def _version_key(path: Path) -> tuple[int, ...]:
    """``/usr/lib/postgresql/15/bin`` -> ``(15,)``, for picking the highest version."""
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))


def find_bindir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: PATH first, then the highest
    ``/usr/lib/postgresql/*/bin``."""
    found = shutil.which("initdb")
    if found is not None:
        bindir = Path(found).resolve().parent
        if (bindir / "pg_ctl").is_file() and (bindir / "postgres").is_file():
            return bindir
    candidates = sorted(
        (
            p
            for p in Path("/").glob(_SEARCH_GLOB.lstrip("/"))
            if (p / "initdb").is_file() and (p / "pg_ctl").is_file()
        ),
        key=_version_key,
    )
    if not candidates:
        msg = f"no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in {_SEARCH_GLOB}"
        raise PostgresUnavailable(msg)
    return candidates[-1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    """Whether nothing listens on ``port`` (connections in TIME_WAIT do not count:
    the server binds with SO_REUSEADDR too)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _clean_env() -> dict[str, str]:
    """The environment without ``PG*`` variables, which would redirect the clients."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    return env


@dataclass
class PostgresCluster:
    """One PostgreSQL server with its own data directory, socket and port."""

    bindir: Path
    base: Path
    port: int
    database: str = DEFAULT_DATABASE
    as_root: bool = field(default_factory=lambda: os.geteuid() == 0)
    running: bool = False
    start_seconds: float = 0.0
    init_seconds: float = 0.0

    # -- creation ------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        *,
        database: str = DEFAULT_DATABASE,
        attempts: int = 3,
        root: str | None = None,
    ) -> PostgresCluster:
        """initdb, start on a free port and create ``database``; raise
        ``PostgresUnavailable`` with the reason (and the server log) on failure.

        ``root`` is the parent of the cluster's directory (default: ``/dev/shm`` or
        ``/tmp``); the ``postgres`` user must be able to traverse it.
        """
        bindir = find_bindir()
        as_root = os.geteuid() == 0
        if as_root:
            try:
                pwd.getpwnam(SERVER_USER)
            except KeyError:
                msg = f"running as root but there is no {SERVER_USER!r} OS user to run the server"
                raise PostgresUnavailable(msg) from None
            if shutil.which("runuser") is None:
                msg = "running as root but `runuser` is missing"
                raise PostgresUnavailable(msg)
        base = Path(tempfile.mkdtemp(prefix="breaker-pg-", dir=root or _tmp_root()))
        cluster = cls(
            bindir=bindir, base=base, port=0, database=database, as_root=as_root
        )
        atexit.register(cluster.cleanup)
        try:
            cluster._prepare_dir()
            cluster._initdb()
            last_error: PostgresUnavailable | None = None
            for _ in range(attempts):
                cluster.port = free_port()
                try:
                    cluster.start()
                    break
                except PostgresUnavailable as exc:  # most likely lost a port race
                    last_error = exc
            else:
                assert last_error is not None
                raise last_error
            cluster.createdb(database)
        except BaseException:
            cluster.cleanup()
            raise
        return cluster

    def _prepare_dir(self) -> None:
        self.base.chmod(0o755)
        if self.as_root:
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        started = time.perf_counter()
        self._run_server_cmd(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-A",
                "trust",
                "-U",
                SERVER_USER,
                "--no-sync",
                "-E",
                "UTF8",
                "--no-locale",
            ],
            what="initdb",
        )
        self.init_seconds = time.perf_counter() - started

    # -- paths and URLs ------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory (PGDATA)."""
        return self.base / "data"

    @property
    def log_file(self) -> Path:
        """The server log, for diagnosing a failed start."""
        return self.base / "server.log"

    @property
    def socket_dir(self) -> Path:
        """Where the server puts its Unix socket."""
        return self.base

    def url_for(self, database: str) -> str:
        """An SQLAlchemy asyncpg URL for ``database`` on this cluster."""
        return f"postgresql+asyncpg://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    @property
    def url(self) -> str:
        """The URL of the database made by ``create``."""
        return self.url_for(self.database)

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Start the server (again) on the same port and data directory; wait until
        it accepts connections."""
        if self.running:
            return
        if not _port_is_free(self.port):
            msg = f"port {self.port} on 127.0.0.1 is taken"
            raise PostgresUnavailable(msg)
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-p {self.port}",
                f"-c unix_socket_directories={self.socket_dir}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
                "-c shared_buffers=32MB",
                "-c dynamic_shared_memory_type=mmap",
            ]
        )
        started = time.perf_counter()
        self._run_server_cmd(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                str(START_TIMEOUT),
                "-o",
                options,
                "start",
            ],
            what=f"pg_ctl start (port {self.port})",
        )
        self.running = True
        self.start_seconds = time.perf_counter() - started

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast`` closes client connections; ``immediate`` is a crash)."""
        if not self.running:
            return
        self._run_server_cmd(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-m",
                mode,
                "-w",
                "-t",
                str(START_TIMEOUT),
                "stop",
            ],
            what="pg_ctl stop",
        )
        self.running = False

    def restart(self, mode: str = "fast") -> None:
        """Stop, then start on the same port and data directory."""
        self.stop(mode)
        self.start()

    def ensure_running(self) -> None:
        """Start the server if a test left it stopped."""
        if not self.running or not self.is_accepting():
            self.running = False
            self.start()

    def is_accepting(self) -> bool:
        """Whether something accepts TCP connections on the cluster's port."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def cleanup(self) -> None:
        """Stop the server at once (if running) and remove its directory; idempotent."""
        if self.data_dir.joinpath("postmaster.pid").exists():
            with contextlib.suppress(PostgresUnavailable):
                self.stop("immediate")
        self.running = False
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    # -- databases -----------------------------------------------------------------

    def createdb(self, name: str) -> None:
        """Create an empty database (clients connect as ``postgres`` over the socket)."""
        self._run(
            [
                str(self.bindir / "createdb"),
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                SERVER_USER,
                name,
            ],
            what=f"createdb {name}",
        )

    # -- running commands ----------------------------------------------------------

    def _run_server_cmd(self, argv: Sequence[str], *, what: str) -> None:
        """Run a server command, as the ``postgres`` user when we are root."""
        if self.as_root:
            argv = ["runuser", "-u", SERVER_USER, "--", *argv]
        self._run(argv, what=what)

    def _run(self, argv: Sequence[str], *, what: str) -> None:
        try:
            done = subprocess.run(
                list(argv),
                cwd=self.base,
                env=_clean_env(),
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            msg = f"{what} failed: {exc}"
            raise PostgresUnavailable(msg) from exc
        if done.returncode != 0:
            output = (done.stderr or done.stdout).strip()
            msg = f"{what} failed (exit {done.returncode}): {output[-2000:]}"
            tail = self._log_tail()
            if tail:
                msg += f"\n--- server log ---\n{tail}"
            raise PostgresUnavailable(msg)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _tmp_root() -> str | None:
    """Where the cluster lives: ``/dev/shm`` when it is a roomy tmpfs (creating a
    database there takes ~10 ms instead of ~250 ms on disk), else ``/tmp``. Both are
    world-traversable, as the ``postgres`` user needs, and keep socket paths short."""
    shm = Path("/dev/shm")
    try:
        if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
            stat = os.statvfs(shm)
            if stat.f_bavail * stat.f_frsize >= _MIN_SHM_BYTES:
                return str(shm)
    except OSError:
        pass
    return "/tmp" if Path("/tmp").is_dir() else None


@asynccontextmanager
async def fresh_database(
    server_url: str, prefix: str = "bt", settings: Mapping[str, str] | None = None
) -> AsyncIterator[str]:
    """A new empty database on the server of ``server_url``, dropped afterwards.

    Yields the URL of the new database (same user, host and port). ``settings`` become
    the database's defaults (``ALTER DATABASE ... SET``), e.g. ``synchronous_commit=on``
    for tests that crash the server. Works on the throwaway cluster and on a server
    given by ``BREAKER_TEST_POSTGRES_URL``, as long as its user may create databases.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:20]}"
    base = make_url(server_url)
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with admin.connect() as conn:
            version = int(
                (await conn.execute(text("SHOW server_version_num"))).scalar_one()
            )
            # FILE_COPY (PostgreSQL 15+) skips WAL-logging the template's pages: ~10x faster.
            strategy = " STRATEGY FILE_COPY" if version >= 150000 else ""
            await conn.execute(text(f'CREATE DATABASE "{name}"{strategy}'))
            for key, value in (settings or {}).items():
                # Utility statements take no bind parameters: allow plain words only.
                if not re.fullmatch(r"[a-z_]+", key) or not re.fullmatch(
                    r"[A-Za-z0-9_.]+", value
                ):
                    msg = f"unsupported database setting {key}={value!r}"
                    raise ValueError(msg)
                await conn.execute(
                    text(f"ALTER DATABASE \"{name}\" SET {key} = '{value}'")
                )
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as conn:
                await conn.execute(
                    text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                )
    finally:
        await admin.dispose()
