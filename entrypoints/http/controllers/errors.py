"""Device errors: one or a batch in, a tenant's errors out (the grouped report is a report)."""

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody

from application.sessions.session_ids import canonical_session_id
from application.telemetry.list_errors import ListErrors, ListErrorsQuery
from application.telemetry.record_errors import RecordErrors, RecordErrorsCommand
from application.tenants.authenticate import Principal
from domain.error_reports import ErrorFilter, ErrorReport, Severity
from domain.tenants import Role
from entrypoints.http.auth import AUTH, NEEDS_APP, needs
from entrypoints.http.batches import read_items
from entrypoints.http.errors import documented
from entrypoints.http.openapi import rules_of
from entrypoints.http.recorded import BATCH, ONE, created_or_replayed
from entrypoints.http.schemas.common import BatchResultOut, From, Page, To
from entrypoints.http.schemas.errors import ErrorBatchBody, ErrorBody, ErrorOut, error_report


class ErrorsController(Controller):
    path = "/errors"
    tags = ["kiosk telemetry"]
    opt = needs(Role.INGEST)

    @post(
        "/",
        summary="Report an error",
        operation_id="recordError",
        description=rules_of(RecordErrors),
        status_code=201,
        responses=documented(ONE),
    )
    async def record(
        self,
        data: JSONBody[ErrorBody],
        caller: NamedDependency[Principal],
        record_errors: NamedDependency[RecordErrors],
    ) -> Response[ErrorOut]:
        recorded = await record_errors(
            RecordErrorsCommand(caller.tenant.id, [_error(data)], caller.access)
        )
        return created_or_replayed(recorded, ErrorOut.of)

    @post(
        "/batch",
        summary="Report a batch of errors",
        operation_id="recordErrors",
        description=rules_of(RecordErrors),
        status_code=200,
        responses=documented(BATCH),
    )
    async def record_batch(
        self,
        data: JSONBody[ErrorBatchBody],
        caller: NamedDependency[Principal],
        record_errors: NamedDependency[RecordErrors],
    ) -> BatchResultOut:
        errors = read_items(data.errors, ErrorBody, _error)
        return BatchResultOut.of(
            await record_errors(RecordErrorsCommand(caller.tenant.id, errors, caller.access))
        )

    @get(
        "/",
        summary="List errors, newest first",
        operation_id="listErrors",
        description=rules_of(ListErrors),
        opt=needs(Role.APP),
        responses=documented(
            {
                401: AUTH,
                403: NEEDS_APP,
                422: "a filter is invalid",
            }
        ),
    )
    async def list(
        self,
        caller: NamedDependency[Principal],
        list_errors: NamedDependency[ListErrors],
        fingerprint: FromQuery[str | None] = None,
        device_id: FromQuery[str | None] = None,
        app_version: FromQuery[str | None] = None,
        severity: FromQuery[Severity | None] = None,
        start: From = None,
        end: To = None,
        limit: FromQuery[int | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> Page[ErrorOut]:
        where = ErrorFilter(fingerprint, device_id, app_version, severity)
        query = ListErrorsQuery(caller.tenant.id, where, start, end, limit, cursor)
        return Page.of(await list_errors(query), ErrorOut.of)


def _error(body: ErrorBody) -> ErrorReport:
    session_id = body.session_id and canonical_session_id(body.session_id, "session_id")
    return error_report(body, session_id)
