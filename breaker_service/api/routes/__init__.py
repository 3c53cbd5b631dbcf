"""The JSON API's routes, one router per group; ``create_app`` includes them in order."""

from .batch import router as batch_router
from .batch_files import router as batch_files_router
from .breakers import router as breakers_router
from .health import router as health_router
from .metrics import metrics_router
from .reconcile import router as reconcile_router
from .uploads import router as uploads_router

__all__ = [
    "batch_files_router",
    "batch_router",
    "breakers_router",
    "health_router",
    "metrics_router",
    "reconcile_router",
    "uploads_router",
]
