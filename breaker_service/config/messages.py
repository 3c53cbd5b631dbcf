"""One line per invalid variable: its name, the bad value unless secret, what it accepts."""

from __future__ import annotations

import re

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from ..errors import ConfigError

__all__ = ["config_error"]

_SECRET_HINTS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "DATABASE_URL")


def _describe(field: FieldInfo) -> str:
    """Say in words what a field accepts, from its annotation and constraints."""
    annotation = field.annotation
    text = {
        int: "an integer",
        float: "a number",
        bool: "true or false",
        str: "a string",
    }.get(
        annotation,  # type: ignore[arg-type]
        "a value",
    )
    if "None" in repr(annotation):
        text = "a number, or empty for none"
    if "Literal" in repr(annotation):
        args = getattr(annotation, "__args__", ())
        return "one of " + ", ".join(repr(a) for a in args)
    bounds = []
    for meta in field.metadata:
        for attr, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            bound = getattr(meta, attr, None)
            if bound is not None:
                bounds.append(f"{word} {bound}")
    return text + (" " + " and ".join(bounds) if bounds else "")


def config_error(
    exc: ValidationError, model: type[BaseModel], *, suffix: str = ""
) -> ConfigError:
    """Turn pydantic's report into one line per variable, naming each and its range."""
    lines: list[str] = []
    first_var: str | None = None
    for error in exc.errors(include_url=False):
        loc = [str(p) for p in error.get("loc", ())]
        if loc and loc[0] in model.model_fields:
            var = loc[0].upper() + suffix
            field = model.model_fields[loc[0]]
            shown = (
                ""
                if any(h in var for h in _SECRET_HINTS)
                else f"={error.get('input')!r}"
            )
            detail = error.get("msg", "invalid")
            if detail.startswith("Value error, "):
                detail = detail.removeprefix("Value error, ")
            lines.append(
                f"{var}{shown} is invalid: expected {_describe(field)} ({detail})"
            )
        else:
            var = None
            msg = error.get("msg", "invalid").removeprefix("Value error, ")
            if suffix:
                msg = re.sub(
                    r"\b([A-Z][A-Z_]+)\b(?= \()", lambda m: m.group(1) + suffix, msg
                )
            lines.append(msg)
            match = re.search(r"\b([A-Z][A-Z0-9_]{3,})\b", msg)
            var = match.group(1) if match else None
        first_var = first_var or var
    return ConfigError("invalid configuration: " + "; ".join(lines), variable=first_var)
