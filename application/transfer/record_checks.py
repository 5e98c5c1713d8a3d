"""What an import checks of a record beyond the types of its fields, for the records that this
service makes itself: a rollup or a funnel's day is what a rollup run could have made, a track
what webhooks could have said, an erasure, a room, a webhook id or a day's refused starts what
the service records of them. Every store would take a negative count, a week's bucket or two
rows of one key, and a report would then add up what no run makes (or a store fail partway
through the import); so a line that holds one is refused as it is read. A check fails with
ValueError or InvalidInput, which the format names the line with."""

from collections.abc import Iterable, Mapping
from dataclasses import asdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

from application.transfer.ports import (
    ArchivedErasure,
    ArchivedFinishedRoom,
    ArchivedFunnelDay,
    ArchivedRefusals,
    ArchivedTrack,
    ArchivedWebhook,
)
from domain.calendar import Period
from domain.erasure import DRAWN_PSEUDONYM
from domain.funnels import FunnelTally
from domain.money import MAX_PLACES, check_currency
from domain.rollups import Activity, Dimensions, Rollup
from domain.session import KIND_PATTERN, MAX_ID_LENGTH, SessionStatus
from domain.text import MAX_ATTRIBUTE_KEY, MAX_ATTRIBUTE_TEXT, MAX_INT64, check_text
from domain.usage import MAX_DECIMAL_PLACES, METER_NAME, decimal_places

NAME_LENGTH = 64  # a funnel's name and a definition's fingerprint, as the stores keep them
# A calendar day's length: 23 or 25 hours around a change of clocks in most zones, 26 in some
# zones' history, up to two days where a zone moved back across the date line.
LONGEST_DAY = timedelta(days=2)
STATUSES = frozenset(s.value for s in SessionStatus)


def check_rollup(rollup: Rollup) -> None:
    if rollup.period not in (Period.HOUR, Period.DAY):
        raise ValueError(f"a rollup is of an hour or a day, not a {rollup.period}")
    start = rollup.start
    if start.second or start.microsecond or (rollup.period is Period.HOUR and start.minute):
        raise ValueError(f"no {rollup.period} starts at {start.isoformat()}")
    _unique("activity row", [(a.kind, a.resource_id, a.dimensions) for a in rollup.activity])
    for activity in rollup.activity:
        _check_activity(activity)
    _not_negative("load", asdict(rollup.load))


def check_funnel_day(archived: ArchivedFunnelDay) -> None:
    day = archived.day
    check_text("funnel", archived.funnel, NAME_LENGTH)
    check_text("fingerprint", day.fingerprint, NAME_LENGTH)
    if day.start.second or day.start.microsecond:
        raise ValueError(f"no day starts at {day.start.isoformat()}")
    if day.end is not None and not timedelta(0) < day.end - day.start <= LONGEST_DAY:
        raise ValueError(f"no day runs from {day.start.isoformat()} to {day.end.isoformat()}")
    for key in day.dimensions:
        check_text("dimension", key, MAX_ATTRIBUTE_KEY)
    _unique("funnel row", [(row.resource_id, row.dimensions) for row in day.rows])
    for tally in (day.whole, *(row.tally for row in day.rows)):
        _check_tally(tally, day.whole.stages)
    for row in day.rows:
        check_text("resource_id", row.resource_id, MAX_ID_LENGTH)
        _check_dimensions(row.dimensions)


def check_track(archived: ArchivedTrack) -> None:
    track = archived.report
    check_text("session_id", archived.session_id, MAX_ID_LENGTH)
    check_text("track_sid", track.track_sid, MAX_ID_LENGTH)
    if any(c in track.track_sid for c in ".$"):  # MongoDB keeps a track under its sid
        raise ValueError(f"{track.track_sid!r} is not a track sid")
    if not METER_NAME.match(track.meter):
        raise ValueError(f"{track.meter!r} is not a meter name")
    if archived.counted and track.seconds is None:
        raise ValueError(f"track {track.track_sid} is counted before both its ends are known")


def check_erasure(erasure: ArchivedErasure) -> None:
    check_text("subject_id", erasure.subject_id, MAX_ID_LENGTH)
    if not DRAWN_PSEUDONYM.fullmatch(erasure.pseudonym):
        raise ValueError(f"{erasure.pseudonym!r} is not a pseudonym an erasure gives")


def check_finished_room(room: ArchivedFinishedRoom) -> None:
    check_text("room_sid", room.room_sid, MAX_ID_LENGTH)


def check_webhook(webhook: ArchivedWebhook) -> None:
    check_text("id", webhook.id, MAX_ID_LENGTH)


def check_refusals(refusals: ArchivedRefusals) -> None:
    check_text("subject_id", refusals.refused.subject_id, MAX_ID_LENGTH)
    if not KIND_PATTERN.match(refusals.refused.kind):
        raise ValueError(f"{refusals.refused.kind!r} is not a session kind")
    if not 1 <= refusals.count <= MAX_INT64:
        raise ValueError(f"{refusals.count} refused starts is not a count of them")


def _check_activity(a: Activity) -> None:
    if not KIND_PATTERN.match(a.kind):
        raise ValueError(f"{a.kind!r} is not a session kind")
    check_text("resource_id", a.resource_id, MAX_ID_LENGTH)
    _check_dimensions(a.dimensions)
    counts = {
        "sessions_started": a.sessions_started,
        "sessions_ended": a.sessions_ended,
        "active_seconds": a.active_seconds,
        "events": a.events,
        "ended_seconds": a.ended_seconds,
        "errors": a.errors,
        "fatal_errors": a.fatal_errors,
    }
    _not_negative("activity", counts)
    _not_negative("track_seconds", a.track_seconds)
    _not_negative("ended_statuses", a.ended_statuses)
    _known("ended_statuses", a.ended_statuses, STATUSES)
    _not_negative("sales", a.sales)
    for meter, quantity in a.meters.items():
        if not METER_NAME.match(meter):
            raise ValueError(f"{meter!r} is not a meter name")
        _not_negative("meters", {meter: quantity})
        if isinstance(quantity, Decimal):
            _places("meters", quantity, MAX_DECIMAL_PLACES)
    for currency in (*a.sales, *a.sales_net):
        check_currency("currency", currency)
    for net in a.sales_net.values():
        _places("sales_net", net, MAX_PLACES)


def _check_tally(tally: FunnelTally, stages: int) -> None:
    if tally.stages != stages or not stages:
        raise ValueError(f"a tally of {tally.stages} stages in a funnel of {stages}")
    _not_negative("reached", dict(enumerate(tally.reached)))
    _not_negative("dropped", dict(enumerate(tally.dropped)))
    _not_negative("statuses", tally.statuses)
    _known("statuses", tally.statuses, STATUSES)
    for durations in tally.durations:
        _not_negative("durations", durations)
        _not_negative("durations", {ms: ms for ms in durations})


def _check_dimensions(dimensions: Dimensions) -> None:
    for key, value in dimensions:
        check_text("dimension", key, MAX_ATTRIBUTE_KEY)
        check_text(f"dimension {key}", value, MAX_ATTRIBUTE_TEXT)
    _unique("dimension", [key for key, _ in dimensions])


def _not_negative(what: str, figures: Mapping[Any, Any]) -> None:
    for key, figure in figures.items():
        if figure < 0:
            raise ValueError(f"{what} {key} is negative: {figure}")


def _known(what: str, figures: Mapping[str, Any], known: frozenset[str]) -> None:
    for key in figures:
        if key not in known:
            raise ValueError(f"{what} names {key!r}, none of {', '.join(sorted(known))}")


def _places(what: str, amount: Decimal, places: int) -> None:
    if decimal_places(amount) > places:
        raise ValueError(f"{what} {amount} has more than {places} decimal places")


def _unique(what: str, keys: Iterable[Any]) -> None:
    seen = set()
    for key in keys:
        if key in seen:
            raise ValueError(f"two of one {what}: {key!r}")
        seen.add(key)
