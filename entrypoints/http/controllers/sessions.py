"""Sessions: start, heartbeat, exit, read and list."""

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from application.sessions.list_sessions import ListSessions, ListSessionsQuery
from application.sessions.ports import SessionFilter
from application.sessions.read_session import ReadSession, ReadSessionQuery
from application.sessions.record_exit import RecordExit, RecordExitCommand
from application.sessions.record_heartbeat import RecordHeartbeat, RecordHeartbeatCommand
from application.sessions.start_session import StartSession, StartSessionCommand
from application.tenants.authenticate import Principal
from domain.clock import as_utc
from domain.errors import InvalidInput
from domain.session import AttributeValue, SessionRequest, SessionStatus
from domain.tenants import Role
from entrypoints.http.auth import AUTH, KEY_IN_QUERY, OUT_OF_SCOPE, needs
from entrypoints.http.called_directly import CalledDirectly
from entrypoints.http.errors import documented
from entrypoints.http.metrics import Metrics
from entrypoints.http.openapi import KEY_IN_QUERY_TOO, rules_of
from entrypoints.http.request import header
from entrypoints.http.schemas.common import From, Page, To, attribute_filters
from entrypoints.http.schemas.sessions import (
    ExitBody,
    HeartbeatBody,
    SessionOut,
    StartedSessionOut,
    StartSessionBody,
)

LATE = "`late` (same status) when it is dated more than the late-data window ago"
BILLED = (
    f"an ingest key, for a session of a kind that has a rate or a plan limits; or {OUT_OF_SCOPE}"
)
BEACON = (
    "A page sends its exit with `navigator.sendBeacon`, which can set no header: this route "
    "alone also takes the API key as the query parameter `key` "
    "(`POST /v1/sessions/{id}/exit?key=...`, body JSON as text/plain); a header, when sent, "
    "wins. Put only an ingest key in a URL: URLs are kept in logs."
)


class SessionsController(Controller):
    path = "/sessions"
    tags = ["sessions"]
    opt = needs(Role.INGEST)

    @post(
        "/",
        summary="Start a session",
        operation_id="startSession",
        description=rules_of(StartSession),
        status_code=201,
        middleware=[CalledDirectly],
        responses=documented(
            {
                401: AUTH,
                402: "`trial_exhausted` or `insufficient_credits`, with the particulars",
                403: BILLED,
                409: "the id exists with other content",
                422: f"a field is invalid; {LATE}",
            }
        ),
    )
    async def start(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[StartSessionBody],
        caller: NamedDependency[Principal],
        start_session: NamedDependency[StartSession],
        metrics: NamedDependency[Metrics],
    ) -> Response[StartedSessionOut]:
        started = await start_session(
            StartSessionCommand(
                tenant_id=caller.tenant.id,
                session_id=data.id,
                settings=caller.tenant.settings,
                request=SessionRequest(
                    kind=data.kind,
                    resource_id=data.resource_id,
                    subject_id=data.subject_id,
                    client_key=data.client_key,
                    started_at=data.started_at,
                    attributes=data.attributes,
                    context=_request_context(request),
                ),
                access=caller.access,
            )
        )
        if started.created:
            metrics.session_started(started.session.kind)
        session = StartedSessionOut.of_start(started.session, caller.tenant.settings)
        return Response(session, status_code=201 if started.created else 200)

    @get(
        "/{session_id:str}",
        summary="Read a session (an active rated one with its running cost, charge_estimate)",
        operation_id="readSession",
        description=rules_of(ReadSession),
        responses=documented({401: AUTH, 403: OUT_OF_SCOPE, 404: "no such session in this tenant"}),
    )
    async def read(
        self,
        session_id: FromPath[str],
        caller: NamedDependency[Principal],
        read_session: NamedDependency[ReadSession],
    ) -> SessionOut:
        query = ReadSessionQuery(
            caller.tenant.id, session_id, caller.tenant.settings, caller.access
        )
        return SessionOut.of_view(await read_session(query))

    @get(
        "/",
        summary="List sessions, newest first",
        operation_id="listSessions",
        opt=needs(Role.APP),
        description=rules_of(ListSessions),
    )
    async def list(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Principal],
        list_sessions: NamedDependency[ListSessions],
        kind: FromQuery[str | None] = None,
        resource_id: FromQuery[str | None] = None,
        subject_id: FromQuery[str | None] = None,
        client_key: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        started_from: From = None,
        started_to: To = None,
        limit: FromQuery[int | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> Page[SessionOut]:
        where = SessionFilter(
            kind=kind,
            resource_id=resource_id,
            subject_id=subject_id,
            client_key=client_key,
            status=_status(status),
            started_from=None if started_from is None else as_utc("from", started_from),
            started_to=None if started_to is None else as_utc("to", started_to),
            attributes=attribute_filters(request),
        )
        query = ListSessionsQuery(caller.tenant.id, where, limit, cursor, caller.tenant.settings)
        page = await list_sessions(query)
        return Page.of(page, SessionOut.of)

    @post(
        "/{session_id:str}/heartbeat",
        summary="Keep a session alive (the answer carries its running cost)",
        operation_id="recordHeartbeat",
        description=rules_of(RecordHeartbeat),
        status_code=200,
        middleware=[CalledDirectly],
        responses=documented(
            {
                401: AUTH,
                403: BILLED,
                404: "no such session in this tenant",
                409: "the session has ended",
                422: f"`at` is invalid; {LATE}",
            }
        ),
    )
    async def heartbeat(
        self,
        session_id: FromPath[str],
        caller: NamedDependency[Principal],
        record_heartbeat: NamedDependency[RecordHeartbeat],
        data: JSONBody[HeartbeatBody | None] = None,
    ) -> SessionOut:
        at = None if data is None else data.at
        command = RecordHeartbeatCommand(
            caller.tenant.id, session_id, at, caller.tenant.settings, caller.access
        )
        return SessionOut.of_view(await record_heartbeat(command))

    @post(
        "/{session_id:str}/exit",
        summary="Record an exit (also as text/plain, for navigator.sendBeacon)",
        operation_id="recordExit",
        description=f"{rules_of(RecordExit)}\n\n{BEACON}",
        status_code=200,
        middleware=[CalledDirectly],
        opt={KEY_IN_QUERY: True},
        security=KEY_IN_QUERY_TOO,
        responses=documented(
            {
                401: AUTH,
                403: BILLED,
                404: "no such session in this tenant",
                422: f"a field is invalid, or the exit is before the start; {LATE}",
            }
        ),
    )
    async def exit(
        self,
        session_id: FromPath[str],
        caller: NamedDependency[Principal],
        record_exit: NamedDependency[RecordExit],
        metrics: NamedDependency[Metrics],
        data: JSONBody[ExitBody | None] = None,
    ) -> SessionOut:
        body = data or ExitBody()
        recorded = await record_exit(
            RecordExitCommand(
                tenant_id=caller.tenant.id,
                session_id=session_id,
                at=body.at,
                status=body.status,
                reason=body.reason,
                summary=body.summary,
                usage=body.usage,
                settings=caller.tenant.settings,
                access=caller.access,
            )
        )
        if recorded.closed:
            metrics.sessions_closed(recorded.session.kind, recorded.session.status, "client")
        return SessionOut.of(recorded.session)


def _request_context(request: Request[Any, Any, Any]) -> dict[str, AttributeValue]:
    context: dict[str, AttributeValue] = {}
    for attribute, name in (("user_agent", b"user-agent"), ("referrer", b"referer")):
        if value := header(request.scope, name):
            context[attribute] = value
    if request.client is not None:
        context["ip"] = request.client.host
    return context


def _status(value: str | None) -> SessionStatus | None:
    if value is None:
        return None
    try:
        return SessionStatus(value)
    except ValueError:
        allowed = ", ".join(s.value for s in SessionStatus)
        raise InvalidInput("status", f"must be one of {allowed}") from None
