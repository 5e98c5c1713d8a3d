"""The usage report added up where the rollups are (PostgreSQL). A month of a few thousand
resources' days is tens of thousands of rows: fetched and added in Python they take a second.
Here one query sums the counts and seconds per bucket and group, and gathers each group's
per-key figures (meters, statuses, currencies: small JSON objects) for Python to add; summing
those in SQL too (json_each) parsed every object once per figure and was slower than fetching.

What comes back is what domain.rollups.figures_by_bucket makes of the same rows (the contract
suite compares the stores): the calendar's buckets of the rollups found, a day cut by another
time zone left out, figures per bucket over the activity chosen, per group when grouped.
"""

import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    func,
    literal,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.sqlalchemy.dimensions import having_values
from adapters.sqlalchemy.quantities import from_json
from adapters.sqlalchemy.tables import rollup_activity, rollup_load
from application.ports import Window
from domain.calendar import Bucket, Calendar, Period
from domain.money import sum_by_currency
from domain.rollups import (
    ActivityKey,
    ActivityTally,
    Rollup,
    ServerLoad,
    UsageFigures,
    UsageFilter,
    stored_period,
    usage_figures,
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
    a = rollup_activity.c
    of_window = in_window(rollup_load, tenant_id, stored, window)
    loads = await conn.execute(select(rollup_load).where(*of_window).order_by("bucket_start"))
    buckets: dict[datetime, Bucket] = {}
    load: dict[datetime, ServerLoad] = defaultdict(ServerLoad)
    foreign = []  # days of the tenant's zone before it changed: none of this calendar's
    for row in loads:
        if (
            stored is Period.DAY
            and calendar.start_of(Period.DAY, row.bucket_start) != row.bucket_start
        ):
            foreign.append(row.bucket_start)
            continue
        bucket = calendar.bucket(size, row.bucket_start)
        buckets[bucket.start] = bucket
        load[bucket.start] += ServerLoad(**{f: getattr(row, f) for f in LOAD_FIELDS})
    if not buckets:
        return []
    starts = list(buckets)
    place = case(
        *(
            (and_(a.bucket_start >= buckets[s].start, a.bucket_start < buckets[s].end), n)
            for n, s in enumerate(starts)
        )
    )
    where = [*in_window(rollup_activity, tenant_id, stored, window), *_chosen(chosen)]
    if foreign:
        where.append(a.bucket_start.not_in(foreign))
    rows = (
        select(place.label("place"), _group(chosen).label("grp"), rollup_activity)
        .where(*where)
        .subquery("chosen")
    )
    tallies: dict[int, ActivityTally] = defaultdict(ActivityTally)
    figures = (
        *(func.sum(rows.c[name]).label(name) for name in COUNTS),
        *(func.sum(rows.c[name]).label(name) for name in SECONDS),
        # The per-key figures are few keys in small objects: gathered here, added up below (the
        # database would parse each object once more per figure to add them itself).
        *(func.json_agg(rows.c[name]).label(name) for name in MAPS),
    )
    for row in await conn.execute(_by_group(select(*figures), rows)):
        found = tallies[row.place][_key(chosen, row.grp)]
        found.update({name: int(getattr(row, name)) for name in COUNTS})
        found.update({name: float(getattr(row, name)) for name in SECONDS})
        found.update({name: ADD[name](getattr(row, name)) for name in MAPS})
    return [
        figure
        for n, start in enumerate(starts)
        for figure in usage_figures(
            Rollup(size, start, tallies[n].rows(), load[start]), buckets[start], chosen
        )
    ]


def _counts(objects: list[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for counts in objects:
        total.update(counts)
    return dict(total)


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


def _group(chosen: UsageFilter) -> ColumnElement[Any]:
    a = rollup_activity.c
    if chosen.group_by_resource:
        return a.resource_id
    if chosen.group_by is None:
        return literal(None)
    # The value's JSON string (escapes and all) read off the row's text by a pattern: parsing
    # every row's JSON would cost several times as much. _key decodes it.
    key = json.dumps(chosen.group_by)
    pattern = r"\[" + re.escape(key) + r', ("(?:[^"\\]|\\.)*")\]'
    return func.substring(a.dimensions, pattern)


def _key(chosen: UsageFilter, group: str | None) -> ActivityKey:
    """A summed row's key, spelt so that usage_figures chooses it and finds its group."""
    values = dict(chosen.dimensions)
    if chosen.group_by is not None and group is not None:
        values[chosen.group_by] = group = json.loads(group)
    resource = group if chosen.group_by_resource else chosen.resource_id
    return chosen.kind or "", resource or "", tuple(sorted(values.items()))


def in_window(table: Any, tenant_id: str, period: Period, window: Window) -> list[Any]:
    chosen = [table.c.tenant_id == tenant_id, table.c.period == period]
    if window.start is not None:
        chosen.append(table.c.bucket_start >= window.start)
    if window.end is not None:
        chosen.append(table.c.bucket_start < window.end)
    return chosen
