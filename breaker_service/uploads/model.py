"""What an upload produced."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["UploadResult"]


@dataclass(frozen=True, slots=True)
class UploadResult:
    """A successful upload, as recorded locally (and tracked in Supabase)."""

    upload_id: str
    provider: str
    provider_file_id: str
    filename: str
    sha256: str
    bytes: int
    purpose: str
    attempts: int
    elapsed: float
    providers_tried: tuple[str, ...]
    uploaded_at: float
    deduplicated: bool = False
    recorded: str = "database"  # where the record is durable: "database" or "journal"

    @property
    def fallback(self) -> bool:
        """True when the file went to a provider other than the first one tried."""
        return bool(self.providers_tried) and self.providers_tried[0] != self.provider

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        data = asdict(self)
        data["providers_tried"] = list(self.providers_tried)
        data["fallback"] = self.fallback
        data["uploaded_at"] = datetime.fromtimestamp(self.uploaded_at, UTC).isoformat()
        return data
