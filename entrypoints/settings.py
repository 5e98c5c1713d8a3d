"""Configuration from the environment (every CLI option has a matching variable)."""

import os
import re
from dataclasses import dataclass, field

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


# What a browser sends as Origin: scheme, host and port, nothing after. `*` within one stands for
# any text (https://*.example.com), and `*` alone for any origin.
ORIGIN = re.compile(r"\*|https?://[^/?#\s]+")


def origins(listed: str) -> tuple[str, ...]:
    """Comma-separated origins, each checked: one with a path or a trailing slash would match no
    browser's Origin header, and the tracker would fail without a word."""
    entries = tuple(entry.strip() for entry in listed.split(",") if entry.strip())
    for entry in entries:
        if not ORIGIN.fullmatch(entry):
            raise SettingsError(
                f"SESSIONMETER_CORS_ORIGINS: {entry!r} is not an origin "
                "(scheme://host[:port], e.g. https://shop.example.com)"
            )
    return entries


CONNECTIONS_ENV = "SESSIONMETER_POSTGRES_CONNECTIONS"
# One for the hot paths' statements and one for the rest, at the least.
# An erasure holds one of SQLAlchemy's connections while its work takes another (engine.pool_sizes).
MIN_CONNECTIONS = 3


WAIT_ENV = "SESSIONMETER_STORAGE_WAIT_SECONDS"
# A server's requests get an answer (a 503 when the database does not answer) within this; a
# replica set's election that takes longer is ridden out by the clients' retries.
DEFAULT_WAIT_SECONDS = 10.0


def wait_seconds(given: str | None) -> float:
    """The seconds a database that does not answer is waited for, as the environment says."""
    if given is None or not given.strip():
        return DEFAULT_WAIT_SECONDS
    try:
        seconds = float(given)
    except ValueError:
        seconds = 0
    if not 0 < seconds <= 3600:
        raise SettingsError(
            f"{WAIT_ENV}: {given!r} is not a number of seconds above 0, at most 3600"
        )
    return seconds


def connections(given: str | None) -> int | None:
    """The PostgreSQL connections a process may keep, as the environment says (None: unset)."""
    if given is None or not given.strip():
        return None
    try:
        count = int(given)
    except ValueError:
        count = 0
    if count < MIN_CONNECTIONS:
        raise SettingsError(
            f"{CONNECTIONS_ENV}: {given!r} is not a whole number of at least {MIN_CONNECTIONS}"
        )
    return count


@dataclass(frozen=True)
class Settings:
    storage_url: str = DEFAULT_STORAGE_URL
    reaper_interval_seconds: float = 30.0
    retention_interval_seconds: float = 3600.0
    rollup_interval_seconds: float = 300.0
    livekit_reconcile_interval_seconds: float = 300.0
    max_body_bytes: int = 1024 * 1024
    # /metrics asks for `Authorization: Bearer <token>` when set; else it is open. Kept out of
    # the repr, so that printing the settings never prints it.
    metrics_token: str | None = field(default=None, repr=False)
    # Origins whose pages may call the API (CORS: the tracker on a site's pages); none: no CORS.
    cors_origins: tuple[str, ...] = ()
    # PostgreSQL connections a process keeps at most; None: the storage's default (30).
    postgres_connections: int | None = None
    # Seconds a database that does not answer is waited for (PostgreSQL's connect, MongoDB's
    # choice of a server) before a request is answered 503 with Retry-After. None: the drivers'
    # own, 60 s and 30 s (a server's migration at its start), which outlast what clients and
    # load balancers wait for an answer.
    storage_wait_seconds: float | None = DEFAULT_WAIT_SECONDS
    # A server's storage (serve's workers), whose database is there and migrated before they
    # start: each PostgreSQL statement is given up after the storage wait too, and SQLite opens
    # only the file that is there (adapters/sqlalchemy/engine.create_engine says why).
    serving: bool = False

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
            # Trimmed, as Prometheus trims the token it reads from a file: a token kept in a
            # file with its newline would otherwise never match.
            "metrics_token": os.environ.get("SESSIONMETER_METRICS_TOKEN", "").strip() or None,
            "cors_origins": origins(os.environ.get("SESSIONMETER_CORS_ORIGINS", "")),
            "postgres_connections": connections(os.environ.get(CONNECTIONS_ENV)),
            "storage_wait_seconds": wait_seconds(os.environ.get(WAIT_ENV)),
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
