"""The ``breaker-service`` command line: argparse for parsing, Rich for output.

``parser`` builds the argument parser; ``app`` holds ``main`` and the one table
from command name to function; each command group has a module of its own
(``breakers``, ``db``, ``upload``, ``outbox``, ``reconcile``, ``serve``, ``flaky``,
``demo``, ``token``); ``render`` holds the consoles and tables (the demo uses it too).
Modules that load FastAPI, SQLAlchemy, httpx or PyJWT are imported inside the
commands that need them, so ``--help`` stays fast.
"""

from .app import main

__all__ = ["main"]
