"""One line per invalid variable: its name, the bad value unless secret, what it accepts."""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from ..errors import ConfigError

__all__ = ["config_error", "unparsable_error"]

_SECRET_HINTS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "DATABASE_URL")


def _describe(field: FieldInfo) -> str:
    """Say in words what a field accepts, from its annotation and constraints."""
    annotation = field.annotation
    names = {
        int: "an integer",
        float: "a number",
        bool: "true or false",
        str: "a string",
    }
    inner = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
    if len(inner) == 1 and type(None) in getattr(annotation, "__args__", ()):
        # ``X | None``: say what X is (a str | None is not "a number")
        text = names.get(inner[0], "a value") + ", or empty for none"
    else:
        text = names.get(annotation, "a value")  # type: ignore[arg-type]
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


def unparsable_error(exc: Exception) -> ConfigError:
    """pydantic-settings' "error parsing value" as one line naming the variable.

    Raised for a value that must be JSON (``OPENAI_COMPAT_PROVIDERS``) and is not;
    the parser's complaint (position, not content) says where, the value is not shown.
    """
    match = re.search(r'field "(\w+)"', str(exc))
    var = match.group(1).upper() if match else None
    cause = exc.__cause__
    reason = (
        f"{cause.msg} at line {cause.lineno} column {cause.colno}"
        if isinstance(cause, json.JSONDecodeError)
        else type(cause).__name__
        if cause is not None
        else "cannot be parsed"
    )
    msg = f"invalid configuration: {var or 'a variable'} is not valid JSON ({reason})"
    return ConfigError(msg, variable=var)
