"""Uploads: path validation, the orchestrator and the local record."""

from .memory_store import MemoryUploadStore
from .model import UploadResult
from .orchestrator import BatchItem, UploadOrchestrator
from .sql_store import SqlUploadStore
from .store import UploadStore
from .validation import ValidatedFile, sha256_of, validate_path

__all__ = [
    "BatchItem",
    "MemoryUploadStore",
    "SqlUploadStore",
    "UploadOrchestrator",
    "UploadResult",
    "UploadStore",
    "ValidatedFile",
    "sha256_of",
    "validate_path",
]
