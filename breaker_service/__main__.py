"""``python -m breaker_service`` runs the command line."""

from .cli import main

raise SystemExit(main())
