"""The HTTP service (FastAPI): ``create_app`` builds it; ``breaker-service serve`` runs it."""

from .app import create_app

__all__ = ["create_app"]
