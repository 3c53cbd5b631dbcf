"""A PostgREST-compatible endpoint for tests: the part of the protocol supabase-py uses.

No PostgREST or Supabase can run here, so the tests talk to this instead, over a
real socket, with the real ``supabase`` client. It follows PostgREST's documented
behaviour for ``POST /rest/v1/<table>``: ``Prefer: return=representation|minimal``,
``resolution=merge-duplicates|ignore-duplicates``, ``on_conflict`` and ``columns``
query parameters, JSON object or array bodies, PostgREST's JSON error bodies
(``code``, ``details``, ``hint``, ``message``), 409 with code 23505 on a unique
violation, 404 PGRST205 for an unknown table, 400 PGRST204 for an unknown column,
and the gateway's 401 on a missing or wrong ``apikey``. Rows live in a real SQLite
table. Faults: forced status (every write or the next N), hangs, dropped
connections, and a lost acknowledgement after the write.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

SCHEMA = """
create table if not exists provider_uploads (
    id text primary key,
    provider text not null,
    provider_file_id text not null,
    filename text not null,
    sha256 text not null,
    bytes integer not null,
    purpose text not null,
    attempts integer not null,
    uploaded_at text not null,
    instance_id text not null,
    tracked_at text not null default current_timestamp,
    constraint provider_uploads_provider_file_unique unique (provider, provider_file_id)
)
"""


def _error(
    status: int, code: str | None, message: str, details: Any = None, hint: Any = None
) -> JSONResponse:
    return JSONResponse(
        {"code": code, "details": details, "hint": hint, "message": message},
        status_code=status,
    )


class _Drop(Response):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 201,
                "headers": [(b"content-length", b"500")],
            }
        )
        await send({"type": "http.response.body", "body": b"[{", "more_body": True})
        raise ConnectionAbortedError("fault injection: dropped connection")


class PostgrestStub:
    """State of the stub: the SQLite table, the key, faults and counters."""

    def __init__(self, db_path: Path, *, service_key: str) -> None:
        self.db_path = db_path
        self.service_key = service_key
        self.fail_status: int | None = None  # answer every write with this status
        self.fail_times: int | None = None  # with fail_status: only the next N writes
        self.fail_after_write = False  # write the rows, then answer 503 (lost ack)
        self.hang_seconds: float | None = None
        self.drop = False
        self.stats: Counter[str] = Counter()
        self.deliveries: Counter[str] = Counter()  # writes received per row id
        self._lock = threading.Lock()
        with self._connect() as conn:
            conn.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, timeout=10)
        conn.row_factory = sqlite3.Row
        return conn

    def rows(self, table: str = "provider_uploads") -> list[dict[str, Any]]:
        """Every row of ``table`` (for assertions)."""
        with self._connect() as conn:
            return [dict(r) for r in conn.execute(f"select * from {table} order by id")]

    def columns(self, table: str) -> list[str] | None:
        with self._connect() as conn:
            found = conn.execute(
                "select name from sqlite_master where type='table' and name=?", (table,)
            ).fetchone()
            if found is None:
                return None
            return [r["name"] for r in conn.execute(f"pragma table_info({table})")]

    def write(
        self,
        table: str,
        rows: list[dict[str, Any]],
        conflict: list[str],
        resolution: str | None,
    ) -> list[dict[str, Any]]:
        """Insert or upsert ``rows``; raises sqlite3.IntegrityError on a violation."""
        cols = list(rows[0])
        placeholders = ", ".join(f":{c}" for c in cols)
        sql = f"insert into {table} ({', '.join(cols)}) values ({placeholders})"
        if resolution == "merge-duplicates":
            target = conflict or ["id"]
            updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in target)
            sql += (
                f" on conflict ({', '.join(target)}) do update set {updates}"
                if updates
                else " on conflict do nothing"
            )
        elif resolution == "ignore-duplicates":
            sql += f" on conflict ({', '.join(conflict or ['id'])}) do nothing"
        with self._lock, self._connect() as conn:
            conn.executemany(sql, [{c: r.get(c) for c in cols} for r in rows])
            ids = [r.get("id") for r in rows]
            marks = ", ".join("?" for _ in ids)
            return [
                dict(r)
                for r in conn.execute(
                    f"select * from {table} where id in ({marks})", ids
                )
            ]


def _prefer(request: Request) -> dict[str, str]:
    prefs: dict[str, str] = {}
    for header in request.headers.getlist("prefer"):
        for part in header.split(","):
            if "=" in part:
                key, value = part.strip().split("=", 1)
                prefs[key] = value
    return prefs


def create_postgrest_app(stub: PostgrestStub) -> Starlette:
    """The ASGI app serving ``/rest/v1/<table>``."""

    def authorise(request: Request) -> Response | None:
        key = request.headers.get("apikey")
        if key is None:
            return JSONResponse(
                {
                    "message": "No API key found in request",
                    "hint": "No `apikey` request header or url param was found.",
                },
                status_code=401,
            )
        if key != stub.service_key:
            return JSONResponse(
                {
                    "message": "Invalid API key",
                    "hint": "Double check your Supabase `anon` or `service_role` API key.",
                },
                status_code=401,
            )
        return None

    async def write(request: Request) -> Response:
        stub.stats["requests"] += 1
        denied = authorise(request)
        if denied is not None:
            stub.stats["unauthorised"] += 1
            return denied
        if stub.hang_seconds:
            await asyncio.sleep(stub.hang_seconds)
        if stub.drop:
            stub.stats["dropped"] += 1
            return _Drop()
        if stub.fail_status is not None:
            status = stub.fail_status
            if stub.fail_times is not None:
                stub.fail_times -= 1
                if stub.fail_times <= 0:
                    stub.fail_status = stub.fail_times = None
            stub.stats["failed"] += 1
            return _error(status, str(status), "injected failure")
        table = request.path_params["table"]
        columns = stub.columns(table)
        if columns is None:
            return _error(
                404,
                "PGRST205",
                f"Could not find the table 'public.{table}' in the schema cache",
            )
        try:
            body = json.loads(await request.body())
        except ClientDisconnect:  # the client gave up (a timeout): nobody to answer
            stub.stats["disconnected"] += 1
            return Response(status_code=499)
        except ValueError:
            return _error(400, "PGRST102", "Empty or invalid json")
        rows = body if isinstance(body, list) else [body]
        if not rows or not all(isinstance(r, dict) for r in rows):
            return _error(400, "PGRST102", "All object keys must match")
        for row in rows:
            for column in row:
                if column not in columns:
                    return _error(
                        400,
                        "PGRST204",
                        f"Could not find the '{column}' column of '{table}' in the schema cache",
                    )
        prefer = _prefer(request)
        conflict = [
            c for c in request.query_params.get("on_conflict", "").split(",") if c
        ]
        try:
            written = stub.write(table, rows, conflict, prefer.get("resolution"))
        except sqlite3.IntegrityError as exc:
            text = str(exc)
            if "UNIQUE" in text:
                return _error(
                    409,
                    "23505",
                    "duplicate key value violates unique constraint",
                    details=text,
                )
            return _error(
                400, "23502", "null value violates not-null constraint", details=text
            )
        stub.stats["written"] += len(rows)
        stub.deliveries.update(str(r.get("id")) for r in rows)
        if stub.fail_after_write:
            return _error(503, "503", "acknowledgement lost after the write")
        if prefer.get("return") == "representation":
            return JSONResponse(written, status_code=201)
        return Response(status_code=201)

    async def read(request: Request) -> Response:
        denied = authorise(request)
        if denied is not None:
            return denied
        table = request.path_params["table"]
        if stub.columns(table) is None:
            return _error(
                404,
                "PGRST205",
                f"Could not find the table 'public.{table}' in the schema cache",
            )
        return JSONResponse(stub.rows(table))

    app = Starlette(
        routes=[
            Route("/rest/v1/{table}", write, methods=["POST"]),
            Route("/rest/v1/{table}", read, methods=["GET"]),
        ]
    )
    app.state.stub = stub
    return app
