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


DEFERRED_MARKER = "deferred:"
"""A function-level import says why on its line or in the comment block above."""

DEFERRED_SKIP: tuple[str, ...] = ()


def _function_level_imports(path: Path) -> list[tuple[ast.stmt, ast.stmt | None]]:
    """Every import inside a function or class, with the statement just before it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[ast.stmt, ast.stmt | None]] = []

    def visit(body: list[ast.stmt], nested: bool) -> None:
        previous: ast.stmt | None = None
        for statement in body:
            if nested and isinstance(statement, ast.Import | ast.ImportFrom):
                found.append((statement, previous))
            inner = isinstance(
                statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
            )
            for field in ("body", "orelse", "finalbody"):
                visit(getattr(statement, field, []), nested or inner)
            for handler in getattr(statement, "handlers", []):
                visit(handler.body, nested or inner)
            for case in getattr(statement, "cases", []):
                visit(case.body, nested or inner)
            previous = statement

    visit(tree.body, nested=False)
    return found


def _says_why(lines: list[str], node: ast.stmt) -> bool:
    """The marker on the import's own lines or in the comments right above it."""
    own = lines[node.lineno - 1 : node.end_lineno]
    if any(DEFERRED_MARKER in line for line in own):
        return True
    index = node.lineno - 2
    while index >= 0 and lines[index].strip().startswith("#"):
        if DEFERRED_MARKER in lines[index]:
            return True
        index -= 1
    return False


def _unexplained_imports(path: Path) -> list[int]:
    """Lines of the function-level imports in ``path`` that do not say why."""
    lines = path.read_text(encoding="utf-8").splitlines()
    bad: list[int] = []
    explained: set[int] = set()
    for node, previous in _function_level_imports(path):
        # Imports that follow one another form a group sharing the first's reason.
        grouped = previous is not None and id(previous) in explained
        if grouped or _says_why(lines, node):
            explained.add(id(node))
        else:
            bad.append(node.lineno)
    return bad


def test_function_level_imports_say_why_they_are_deferred() -> None:
    """An import inside a function carries ``# deferred: <why>`` (docs/architecture.md)."""
    paths = [
        p
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.relative_to(PACKAGE).parts[0] not in DEFERRED_SKIP
    ]
    bad = [
        f"{path.relative_to(PACKAGE)}:{line}"
        for path in paths
        for line in _unexplained_imports(path)
    ]
    assert bad == [], "function-level imports without a `# deferred:` reason"


def test_the_deferred_import_check_sees_what_it_should(tmp_path: Path) -> None:
    """The scan flags a bare function-level import, accepts marked ones and groups."""
    module = tmp_path / "sample.py"
    module.write_text(
        "import os\n"
        "def bare():\n"
        "    import json\n"
        "def marked():\n"
        "    # deferred: slow to import\n"
        "    import json\n"
        "\n"
        "    import csv\n"
        "def inline():\n"
        "    import json  # noqa: PLC0415 - deferred: a cycle\n"
        "class Holder:\n"
        "    def method(self):\n"
        "        if True:\n"
        "            import json\n",
        encoding="utf-8",
    )
    found = _function_level_imports(module)
    assert [node.lineno for node, _ in found] == [3, 6, 8, 10, 14]
    assert _unexplained_imports(module) == [3, 14]
