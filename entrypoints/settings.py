"""Configuration from the environment (every CLI option has a matching variable)."""

import os
from dataclasses import dataclass

DEFAULT_STORAGE_URL = "sqlite:///./sessionmeter.db"

# URL scheme -> adapter family that serves it.
FAMILIES = {
    "memory": "memory",
    "sqlite": "sqlalchemy",
    "postgresql": "sqlalchemy",
    "postgres": "sqlalchemy",
    "mongodb": "mongodb",  # mongodb+srv:// too
}


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    storage_url: str = DEFAULT_STORAGE_URL
    reaper_interval_seconds: float = 30.0
    retention_interval_seconds: float = 3600.0
    rollup_interval_seconds: float = 300.0
    livekit_reconcile_interval_seconds: float = 300.0
    max_body_bytes: int = 1024 * 1024

    @classmethod
    def from_env(cls, **overrides: object) -> "Settings":
        values: dict[str, object] = {
            "storage_url": os.environ.get("SESSIONMETER_STORAGE_URL", DEFAULT_STORAGE_URL),
            "reaper_interval_seconds": float(
                os.environ.get("SESSIONMETER_REAPER_INTERVAL_SECONDS", "30")
            ),
            "retention_interval_seconds": float(
                os.environ.get("SESSIONMETER_RETENTION_INTERVAL_SECONDS", "3600")
            ),
            "rollup_interval_seconds": float(
                os.environ.get("SESSIONMETER_ROLLUP_INTERVAL_SECONDS", "300")
            ),
            "livekit_reconcile_interval_seconds": float(
                os.environ.get("SESSIONMETER_LIVEKIT_RECONCILE_INTERVAL_SECONDS", "300")
            ),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def storage_family(self) -> str:
        scheme = self.storage_url.split(":", 1)[0].split("+", 1)[0].lower()
        try:
            return FAMILIES[scheme]
        except KeyError:
            known = ", ".join(sorted(FAMILIES))
            raise SettingsError(
                f"SESSIONMETER_STORAGE_URL: unsupported scheme {scheme!r} (use {known})"
            ) from None
