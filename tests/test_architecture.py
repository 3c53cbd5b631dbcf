"""The layering in docs/architecture.md, checked on the source so it stays true."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "breaker_service"


def _imports(path: Path) -> list[tuple[str, bool]]:
    """Every import of ``path`` as (absolute module, at module level?)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = parts[:-1]  # the package a relative import starts from
    top_level = {id(node) for node in tree.body}
    for statement in tree.body:  # `if TYPE_CHECKING:` blocks count as module level
        if isinstance(statement, ast.If):
            top_level.update(id(child) for child in statement.body)
    found: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, id(node) in top_level) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append((module, id(node) in top_level))
            found.extend(
                (f"{module}.{alias.name}", id(node) in top_level)
                for alias in node.names
            )
    return found


def _modules(subpackage: str) -> list[Path]:
    return sorted((PACKAGE / subpackage).rglob("*.py"))


def _offending(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in paths:
        for module, _ in _imports(path):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(PACKAGE)} imports {module}")
    return bad


BREAKER_MUST_NOT_IMPORT = (
    "breaker_service.events.sql",
    "breaker_service.events.follower",
    "breaker_service.events.trials",
    "breaker_service.migrate",
    "breaker_service.tracking",
    "breaker_service.api",
    "breaker_service.uploads",
    "breaker_service.providers",
    "sqlalchemy",
    "httpx",
    "fastapi",
    "starlette",
)


def test_breakers_know_no_sql_tracking_or_http() -> None:
    """``breaker/`` talks to the event log only through its port."""
    assert _offending(_modules("breaker"), BREAKER_MUST_NOT_IMPORT) == []


def test_uploads_import_sql_only_in_their_own_store() -> None:
    """``uploads/`` imports no SQL module except its own SQL store."""
    stores = {"sql_store.py", "sql_intents.py", "tables.py", "store.py"}
    paths = [p for p in _modules("uploads") if p.name not in stores]
    forbidden = (
        "sqlalchemy",
        "breaker_service.events.sql",
        "breaker_service.migrate",
        "breaker_service.tracking.outbox",
        "fastapi",
    )
    assert _offending(paths, forbidden) == []


@pytest.mark.parametrize(
    "layer", ["clock", "errors", "retry", "events", "breaker", "providers"]
)
def test_lower_layers_never_import_the_service_or_the_interfaces(layer: str) -> None:
    """Dependencies point inward: nothing below reaches the API, the CLI or the demo."""
    path = PACKAGE / layer
    paths = sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
    upward = ("breaker_service.api", "breaker_service.cli", "breaker_service.demo")
    assert _offending(paths, upward) == []
