"""``token --sub S --scope SCOPE [--ttl 1h]``: a JWT for local use."""

from __future__ import annotations

import argparse

from ..config import Settings
from .command import EXIT_OK

__all__ = ["token"]


def token(args: argparse.Namespace, settings: Settings) -> int:
    """Print a token signed with the configured key."""
    # deferred: PyJWT and cryptography take about half a second to import.
    from ..api.auth import check_keys, mint_token, parse_ttl  # noqa: PLC0415

    check_keys(settings)  # an unusable key: one line naming it, not a traceback
    print(
        mint_token(
            settings, subject=args.sub, scopes=args.scope, ttl=parse_ttl(args.ttl)
        )
    )
    return EXIT_OK
