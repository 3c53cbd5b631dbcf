"""The JSON API's routes, one router per group; ``create_app`` includes them in order."""

from .breakers import router as breakers_router
from .health import router as health_router
from .metrics import metrics_router
from .uploads import router as uploads_router

__all__ = ["breakers_router", "health_router", "metrics_router", "uploads_router"]
