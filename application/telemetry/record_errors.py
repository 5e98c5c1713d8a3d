"""Record errors devices report."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from application.ports import Clock
from application.rollups.rollup_rewinds import RollupRewinds
from application.sessions.ports import SessionRepository
from application.telemetry.ports import ErrorLog
from application.telemetry.recorded import Recorded, RecordOnce
from domain.error_reports import ErrorReport
from domain.errors import InvalidInput
from domain.tenants import Access


@dataclass(frozen=True)
class RecordErrorsCommand:
    tenant_id: str
    # In the client's order; one that could not be read is already the reason why.
    errors: Sequence[ErrorReport | InvalidInput]
    access: Access = field(
        default_factory=Access
    )  # the caller's key: a scoped one sends only its devices' records


class RecordErrors:
    """Devices report errors one at a time as they happen, or in batches of at most 100 (a kiosk
    that was offline flushes its buffer) — also before any session exists (the app starting) and
    after its session ended (a crash on the way out is still that session's). Each error is
    judged on its own, and one refused does not hold back the others:

    - new (created): its id was not seen in the tenant;
    - a replay, adding nothing: its id was stored before with the same content;
    - `conflict`: its id was stored with other content;
    - `validation_error: <field>: <why>`: a field is missing or malformed, it is dated more than
      5 minutes ahead, or it names a session the tenant does not have.

    An error without a fingerprint gets one (domain.error_reports.fingerprint_of): its type and
    code with its stack frames (or, without a stack trace, its message) stripped of line numbers,
    addresses, hex ids, uuids and numbers — so the same fault groups together across devices and
    builds."""

    def __init__(
        self,
        errors: ErrorLog,
        sessions: SessionRepository,
        clock: Clock,
        rewinds: RollupRewinds,
    ) -> None:
        self._record = RecordOnce(errors, sessions, clock, _instant, ErrorReport.__eq__, rewinds)

    async def __call__(self, command: RecordErrorsCommand) -> Recorded[ErrorReport]:
        await self._record.check_batch(command.tenant_id, command.errors, "errors", command.access)
        return await self._record(command.tenant_id, command.errors)


def _instant(error: ErrorReport) -> tuple[str, datetime]:
    return "at", error.at
