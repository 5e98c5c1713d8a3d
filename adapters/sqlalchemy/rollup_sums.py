"""The usage report added up where the rollups are (PostgreSQL). A month of a few thousand
resources' days is tens of thousands of rows: fetched and added in Python they take a second.
Here one query sums the counts and seconds per bucket and group, and gathers each group's
per-key figures (meters, statuses, currencies: small JSON objects) for Python to add; summing
those in SQL too (json_each) parsed every object once per figure and was slower than fetching.
A report that chooses nothing but its grouping reads the buckets' sums per group (rollup_groups,
written with each bucket): a row per store and day instead of one per resource and values.

What comes back is what domain.rollups.figures_by_bucket makes of the same rows (the contract
suite compares the stores): the calendar's buckets of the rollups found, a day cut by another
time zone left out, figures per bucket over the activity chosen, per group when grouped.
"""

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.sqlalchemy.dimensions import having_values
from adapters.sqlalchemy.quantities import from_json
from adapters.sqlalchemy.tables import rollup_activity, rollup_groups, rollup_load
from application.ports import Window
from domain.calendar import Bucket, Calendar, Period
from domain.money import sum_by_currency
from domain.rollups import (
    BY_RESOURCE,
    Activity,
    GroupSum,
    ServerLoad,
    UsageFigures,
    UsageFilter,
    grouped_figures,
    stored_period,
)
from domain.usage import Usage, add_usage

LOAD_FIELDS = [c.name for c in rollup_load.columns][3:]  # after the bucket's key
COUNTS = ("sessions_started", "sessions_ended", "events", "errors", "fatal_errors")
SECONDS = ("active_seconds", "ended_seconds")
# The activity's figures kept as JSON objects of figure by key (meter, status, currency).
MAPS = ("meters", "track_seconds", "ended_statuses", "sales", "sales_net")


async def summed_figures(
    conn: AsyncConnection,
    tenant_id: str,
    size: Period,
    window: Window,
    calendar: Calendar,
    chosen: UsageFilter,
) -> list[UsageFigures]:
    stored = stored_period(size)
    summed_by = chosen.summed_by
    loads = await conn.execute(
        select(rollup_load, _has_groups(summed_by).label("has_groups"))
        .where(*in_window(rollup_load, tenant_id, stored, window))
        .order_by("bucket_start")
    )
    buckets: dict[datetime, Bucket] = {}
    load: dict[datetime, ServerLoad] = defaultdict(ServerLoad)
    # The stored buckets of this calendar: those summed per group of the report's grouping, and
    # those read row by row. (Days of the tenant's zone before it changed are none of them.)
    grouped: list[datetime] = []
    ungrouped: list[datetime] = []
    for row in loads:
        if (
            stored is Period.DAY
            and calendar.start_of(Period.DAY, row.bucket_start) != row.bucket_start
        ):
            continue
        bucket = calendar.bucket(size, row.bucket_start)
        buckets[bucket.start] = bucket
        load[bucket.start] += ServerLoad(**{f: getattr(row, f) for f in LOAD_FIELDS})
        (grouped if row.has_groups else ungrouped).append(row.bucket_start)
    if not buckets:
        return []
    starts = list(buckets)
    parts = []
    if grouped:
        g = rollup_groups.c
        parts.append(
            select(_place(g.bucket_start, buckets), g.grp, *_figures(rollup_groups)).where(
                *in_window(rollup_groups, tenant_id, stored, window),
                g.grouping == summed_by,
                g.bucket_start.in_(grouped),
                *_chosen_groups(chosen),
            )
        )
    if ungrouped:
        a = rollup_activity.c
        parts.append(
            select(
                _place(a.bucket_start, buckets), _group(chosen), *_figures(rollup_activity)
            ).where(
                *in_window(rollup_activity, tenant_id, stored, window),
                a.bucket_start.in_(ungrouped),
                *_chosen(chosen),
            )
        )
    rows = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery("chosen")
    figures = (
        *(func.sum(rows.c[name]).label(name) for name in COUNTS),
        *(func.sum(rows.c[name]).label(name) for name in SECONDS),
        # The per-key figures are few keys in small objects, most of them empty: the others
        # gathered here, added up below (the database would parse each object once more per
        # figure to add them itself).
        *(
            func.json_agg(rows.c[name]).filter(cast(rows.c[name], Text) != "{}").label(name)
            for name in MAPS
        ),
    )
    totals: dict[int, dict[str | None, Activity]] = defaultdict(dict)
    for row in await conn.execute(_by_group(select(*figures), rows)):
        summed: dict[str, Any] = {name: int(getattr(row, name)) for name in COUNTS}
        summed.update({name: float(getattr(row, name)) for name in SECONDS})
        summed.update({name: ADD[name](getattr(row, name) or []) for name in MAPS})
        group = _group_of(chosen, row.grp)
        totals[row.place][group] = Activity(chosen.kind or "", chosen.resource_id or "", **summed)
    return [
        figure
        for n, start in enumerate(starts)
        for figure in grouped_figures(buckets[start], load[start], totals[n], chosen)
    ]


def _has_groups(summed_by: str | None) -> ColumnElement[bool]:
    """Whether a rollup_load row's bucket has the group sums of this grouping."""
    if summed_by is None:
        return false()
    g, load = rollup_groups.c, rollup_load.c
    return exists().where(
        g.tenant_id == load.tenant_id,
        g.period == load.period,
        g.grouping == summed_by,
        g.bucket_start == load.bucket_start,
    )


def _place(column: Any, buckets: dict[datetime, Bucket]) -> ColumnElement[int]:
    """The report's bucket (its number, in order) a stored bucket starting at `column` is in."""
    return case(
        *((and_(column >= b.start, column < b.end), n) for n, b in enumerate(buckets.values()))
    ).label("place")


def _figures(table: Any) -> list[Any]:
    return [table.c[name] for name in (*COUNTS, *SECONDS, *MAPS)]


def _counts(objects: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for counts in objects:
        for key, count in counts.items():
            total[key] = total.get(key, 0) + count
    return total


def _seconds(objects: list[dict[str, float]]) -> dict[str, float]:
    total: defaultdict[str, float] = defaultdict(float)
    for seconds in objects:
        for meter, value in seconds.items():
            total[meter] += value
    return dict(total)


def _meters(objects: list[dict[str, int | str]]) -> Usage:
    total: Usage = {}
    for meters in objects:
        total = add_usage(total, from_json(meters))
    return total


def _net(objects: list[dict[str, str]]) -> dict[str, Decimal]:
    return sum_by_currency((c, Decimal(net)) for amounts in objects for c, net in amounts.items())


# Each figure kept per key, added up as the domain adds it (domain.rollups.Activity.__add__).
ADD: dict[str, Callable[[list[Any]], Any]] = {
    "meters": _meters,
    "track_seconds": _seconds,
    "ended_statuses": _counts,
    "sales": _counts,
    "sales_net": _net,
}


def _by_group(query: Select[Any], rows: Any) -> Select[Any]:
    by = (rows.c.place, rows.c.grp)
    return query.add_columns(*by).select_from(rows).group_by(*by)


def _chosen(chosen: UsageFilter) -> Iterable[ColumnElement[bool]]:
    a = rollup_activity.c
    if chosen.kind is not None:
        yield a.kind == chosen.kind
    if chosen.resource_id is not None:
        yield a.resource_id == chosen.resource_id
    yield from having_values(a.dimensions, chosen.dimensions)


def _chosen_groups(chosen: UsageFilter) -> Iterable[ColumnElement[bool]]:
    g = rollup_groups.c
    if chosen.kind is not None:
        yield g.kind == chosen.kind
    if chosen.group_value is not None:
        yield g.grp == json.dumps(chosen.group_value)


def group_text(sum: GroupSum) -> str | None:
    """A group sum's group as a rollup_groups row keeps it: as _group reads a rollup_activity
    row's (a dimension's value as its JSON string), so that both read alike."""
    if sum.group is None or sum.grouping == BY_RESOURCE:
        return sum.group
    return json.dumps(sum.group)


def _group(chosen: UsageFilter) -> ColumnElement[Any]:
    a = rollup_activity.c
    if chosen.group_by_resource:
        return a.resource_id.label("grp")
    if chosen.group_by is None:
        return literal(None).label("grp")
    # The value's JSON string (escapes and all) read off the row's text by a pattern: parsing
    # every row's JSON would cost several times as much. _key decodes it.
    key = json.dumps(chosen.group_by)
    pattern = r"\[" + re.escape(key) + r', ("(?:[^"\\]|\\.)*")\]'
    return func.substring(a.dimensions, pattern).label("grp")


def _group_of(chosen: UsageFilter, group: str | None) -> str | None:
    """A summed row's group as the report names it (_group read a dimension's as JSON)."""
    if chosen.group_by is None or group is None:
        return group
    value: str = json.loads(group)
    return value


def in_window(table: Any, tenant_id: str, period: Period, window: Window) -> list[Any]:
    chosen = [table.c.tenant_id == tenant_id, table.c.period == period]
    if window.start is not None:
        chosen.append(table.c.bucket_start >= window.start)
    if window.end is not None:
        chosen.append(table.c.bucket_start < window.end)
    return chosen
