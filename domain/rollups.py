"""Rollups: what an hour or a day of a tenant's sessions and servers added up to.

An hour is rolled up from the raw data: per kind and resource, the sessions that started and
ended in it, the session-seconds that were active in it, the events that happened in it, the usage
of the sessions that ended in it (a session's usage is final, and charged, only when it ends), and
the published track time that fell in it (video, screen share, audio); for the tenant as a whole,
what its servers' snapshots said (traffic, CPU, concurrent users). A day is the sum of its hours.
Recomputing a bucket replaces it, so running a rollup twice changes nothing.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import groupby
from typing import Any

from domain.calendar import Bucket, Calendar, Period
from domain.money import sum_by_currency
from domain.reports import group_order, to_the_millisecond
from domain.sales import SaleStatus, attribute_text
from domain.session import AttributeValue
from domain.snapshots import MeasuredSnapshot
from domain.usage import Usage, add_usage

BYTES_PER_GB = 10**9  # traffic is billed in decimal gigabytes

# The tenant's dimensions (attribute keys) that a row's sessions have, with their values as text,
# by key: rollups are kept per kind, resource and these, so that reports group and filter by them.
Dimensions = tuple[tuple[str, str], ...]


def dimensions_of(attributes: Mapping[str, AttributeValue], keys: Iterable[str]) -> Dimensions:
    """The values a session's attributes give the dimensions `keys` (those it has)."""
    return tuple(sorted((k, attribute_text(attributes[k])) for k in keys if k in attributes))


@dataclass(frozen=True)
class Activity:
    """What sessions of one kind on one resource did in one bucket."""

    kind: str
    resource_id: str
    sessions_started: int = 0
    sessions_ended: int = 0
    active_seconds: float = 0.0  # session-seconds inside the bucket (two viewers: twice)
    events: int = 0
    meters: Usage = field(default_factory=dict)  # usage of the sessions that ended in the bucket
    # Published track time inside the bucket, by meter (video.seconds, screen_share.seconds …)
    track_seconds: Mapping[str, float] = field(default_factory=dict)
    dimensions: Dimensions = ()
    # The sessions that ended in the bucket by status, and their seconds from start to end.
    ended_statuses: Mapping[str, int] = field(default_factory=dict)
    ended_seconds: float = 0.0
    # Device errors in the bucket that name one of the row's sessions, and the fatal ones.
    errors: int = 0
    fatal_errors: int = 0
    # The row's sessions' sales in the bucket, per currency: how many completed, and their net
    # less that of the refunds (exact decimals).
    sales: Mapping[str, int] = field(default_factory=dict)
    sales_net: Mapping[str, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # To the millisecond, so that every store gives the same figures.
        object.__setattr__(self, "active_seconds", to_the_millisecond(self.active_seconds))
        object.__setattr__(self, "ended_seconds", to_the_millisecond(self.ended_seconds))
        seconds = {m: to_the_millisecond(s) for m, s in self.track_seconds.items()}
        object.__setattr__(self, "track_seconds", seconds)

    def __add__(self, other: "Activity") -> "Activity":
        return replace(
            self,
            sessions_started=self.sessions_started + other.sessions_started,
            sessions_ended=self.sessions_ended + other.sessions_ended,
            active_seconds=self.active_seconds + other.active_seconds,
            events=self.events + other.events,
            meters=add_usage(self.meters, other.meters),
            track_seconds=_add_seconds(self.track_seconds, other.track_seconds),
            ended_statuses=_add_counts(self.ended_statuses, other.ended_statuses),
            ended_seconds=self.ended_seconds + other.ended_seconds,
            errors=self.errors + other.errors,
            fatal_errors=self.fatal_errors + other.fatal_errors,
            sales=_add_counts(self.sales, other.sales),
            sales_net=sum_by_currency([*self.sales_net.items(), *other.sales_net.items()]),
        )


ActivityKey = tuple[str, str, Dimensions]  # kind, resource, dimension values


class ActivityTally:
    """What a store adds up per kind, resource and dimensions, figure by figure as one query
    after another answers, and the Activity rows it makes (ordered by key)."""

    def __init__(self) -> None:
        self._figures: defaultdict[ActivityKey, dict[str, Any]] = defaultdict(
            lambda: {
                "meters": {},
                "track_seconds": {},
                "ended_statuses": {},
                "sales": {},
                "sales_net": {},
            }
        )

    def __getitem__(self, key: ActivityKey) -> dict[str, Any]:
        """The key's figures so far, by Activity field name, to set or add to."""
        return self._figures[key]

    def add(self, key: ActivityKey, figure: str, amount: float) -> None:
        found = self._figures[key]
        found[figure] = found.get(figure, 0) + amount

    def ended(self, key: ActivityKey, status: str, count: int, seconds: float) -> None:
        self._figures[key]["ended_statuses"][status] = count
        self.add(key, "sessions_ended", count)
        self.add(key, "ended_seconds", seconds)

    def sold(self, key: ActivityKey, currency: str, status: str, count: int, net: Decimal) -> None:
        """Completed sales count and add their net; refunds take theirs off."""
        found = self._figures[key]
        if status == SaleStatus.COMPLETED:
            found["sales"][currency] = found["sales"].get(currency, 0) + count
        else:
            net = -net
        found["sales_net"] = sum_by_currency([*found["sales_net"].items(), (currency, net)])

    def rows(self) -> list[Activity]:
        return [
            Activity(kind, resource_id, **figures, dimensions=values)
            for (kind, resource_id, values), figures in sorted(self._figures.items())
        ]


@dataclass(frozen=True)
class ServerLoad:
    """What a tenant's servers reported in one bucket, summed over sources."""

    snapshots: int = 0
    traffic_bytes: int = 0
    cpu_percent_sum: float = 0.0
    cpu_percent_max: float = 0.0
    concurrent_users_sum: int = 0
    peak_concurrent_users: int = 0

    def __add__(self, other: "ServerLoad") -> "ServerLoad":
        return ServerLoad(
            self.snapshots + other.snapshots,
            self.traffic_bytes + other.traffic_bytes,
            round(self.cpu_percent_sum + other.cpu_percent_sum, 6),
            max(self.cpu_percent_max, other.cpu_percent_max),
            self.concurrent_users_sum + other.concurrent_users_sum,
            max(self.peak_concurrent_users, other.peak_concurrent_users),
        )

    @classmethod
    def of(cls, snapshots: Iterable[MeasuredSnapshot]) -> "ServerLoad":
        load = cls()
        for measured in snapshots:
            s = measured.snapshot
            load += ServerLoad(
                1,
                measured.traffic_bytes,
                s.cpu_percent,
                s.cpu_percent,
                s.concurrent_users,
                s.concurrent_users,
            )
        return load


@dataclass(frozen=True)
class Rollup:
    """One bucket of a tenant: its activity per kind and resource, and its servers' load. Hours
    and days are stored; weeks and months are sums of days when a report asks."""

    period: Period
    start: datetime
    activity: list[Activity] = field(default_factory=list)
    load: ServerLoad = field(default_factory=ServerLoad)


def sum_of(parts: Iterable[Rollup], period: Period, start: datetime) -> Rollup:
    """A longer bucket's rollup (a day from its hours, a week from its days): the sum of its
    parts, kind by kind and resource by resource."""
    activity: dict[tuple[str, str, Dimensions], Activity] = {}
    load = ServerLoad()
    for part in parts:
        load += part.load
        for a in part.activity:
            key = (a.kind, a.resource_id, a.dimensions)
            activity[key] = activity[key] + a if key in activity else a
    return Rollup(period, start, [activity[k] for k in sorted(activity)], load)


@dataclass(frozen=True)
class UsageFigures:
    """One bucket of the usage report: the activity of the kinds and resources asked for, and
    the servers' load (which belongs to the tenant as a whole, whatever the filter)."""

    bucket: Bucket
    activity: Activity
    load: ServerLoad
    group: str | None = None  # the dimension's value, when grouped by one

    @property
    def video_minutes(self) -> float:
        return self.activity.track_seconds.get("video.seconds", 0.0) / 60

    @property
    def screen_share_minutes(self) -> float:
        return self.activity.track_seconds.get("screen_share.seconds", 0.0) / 60

    @property
    def audio_minutes(self) -> float:
        return self.activity.track_seconds.get("audio.seconds", 0.0) / 60

    @property
    def user_hours(self) -> float:
        return self.activity.active_seconds / 3600

    @property
    def traffic_gb(self) -> float:
        return self.load.traffic_bytes / BYTES_PER_GB

    @property
    def cpu_percent_avg(self) -> float | None:
        return self.load.cpu_percent_sum / self.load.snapshots if self.load.snapshots else None

    @property
    def concurrent_users_avg(self) -> float | None:
        return self.load.concurrent_users_sum / self.load.snapshots if self.load.snapshots else None


@dataclass(frozen=True)
class UsageFilter:
    """Which activity a usage figure covers, and the dimension it is grouped by."""

    kind: str | None = None
    resource_id: str | None = None
    dimensions: Mapping[str, str] = field(default_factory=dict)  # attributes.<key>=<value>
    group_by: str | None = None  # a dimension's key
    group_by_resource: bool = False

    def matches(self, a: Activity) -> bool:
        values = dict(a.dimensions)
        return (
            self.kind in (None, a.kind)
            and self.resource_id in (None, a.resource_id)
            and all(values.get(k) == v for k, v in self.dimensions.items())
        )

    @property
    def grouped(self) -> bool:
        return self.group_by is not None or self.group_by_resource

    def group_of(self, a: Activity) -> str | None:
        if self.group_by_resource:
            return a.resource_id
        return None if self.group_by is None else dict(a.dimensions).get(self.group_by)

    @property
    def summed_by(self) -> str | None:
        """The grouping whose group sums (group_sums) answer this filter, if one does: the
        filter groups that way (or not at all), and picks no resource and no dimension value
        but, perhaps, one of the dimension it groups by (`group_value`)."""
        if self.resource_id is not None or set(self.dimensions) - {self.group_by}:
            return None
        return grouping_of(self.group_by, self.group_by_resource)

    @property
    def group_value(self) -> str | None:
        """With summed_by, the one value of its dimension chosen (None: every value)."""
        return None if self.group_by is None else self.dimensions.get(self.group_by)


# How the usage report groups a bucket's activity when it chooses among none of it: as a whole,
# per resource, per value of one dimension ("attributes.<key>").
WHOLE = ""
BY_RESOURCE = "resource_id"
ATTRIBUTES = "attributes."


def grouping_of(group_by: str | None, by_resource: bool) -> str:
    """A report's grouping (by a dimension's key, or by resource), spelt as above."""
    if by_resource:
        return BY_RESOURCE
    return WHOLE if group_by is None else ATTRIBUTES + group_by


@dataclass(frozen=True)
class GroupSum:
    """A bucket's activity of one kind summed over one group of a grouping (a store that adds
    the usage report up itself keeps these, so that a month per store reads a row per store,
    kind and day rather than one per resource and set of values)."""

    grouping: str  # WHOLE, BY_RESOURCE or ATTRIBUTES + a dimension's key
    group: str | None  # the resource or the dimension's value (None: whole, or without it)
    activity: Activity  # the kind's, with no resource or dimension values of its own


def group_sums(activity: Iterable[Activity]) -> list[GroupSum]:
    """The activity summed per kind for every grouping it can be reported by: as a whole, per
    resource, and per value of each dimension any row has (rows without it as None)."""
    rows = list(activity)
    keys = sorted({k for a in rows for k, _ in a.dimensions})
    sums: dict[tuple[str, str | None, str], Activity] = {}
    for a in rows:
        values = dict(a.dimensions)
        plain = replace(a, resource_id="", dimensions=())
        groups = [(WHOLE, None), (BY_RESOURCE, a.resource_id)]
        groups += [(ATTRIBUTES + k, values.get(k)) for k in keys]
        for grouping, group in groups:
            key = (grouping, group, a.kind)
            sums[key] = sums[key] + plain if key in sums else plain
    return [GroupSum(g, v, sums[g, v, kind]) for g, v, kind in sums]


def usage_figures(
    rollup: Rollup, bucket: Bucket, chosen: UsageFilter | None = None
) -> list[UsageFigures]:
    """The bucket's figures over the activity the filter chooses: one, or one per value of the
    dimension grouped by (sessions without it last, as None), in order of value."""
    chosen = chosen or UsageFilter()
    empty = Activity(chosen.kind or "", chosen.resource_id or "")
    totals: dict[str | None, Activity] = {}
    for a in rollup.activity:
        if chosen.matches(a):
            group = chosen.group_of(a)
            plain = replace(a, kind=empty.kind, resource_id=empty.resource_id, dimensions=())
            totals[group] = totals.get(group, empty) + plain
    return grouped_figures(bucket, rollup.load, totals, chosen)


def grouped_figures(
    bucket: Bucket, load: ServerLoad, totals: Mapping[str | None, Activity], chosen: UsageFilter
) -> list[UsageFigures]:
    """The bucket's figures from the chosen activity already summed per group (with the
    filter's kind and resource, no dimension values): as usage_figures gives them."""
    if not chosen.grouped:
        totals = {None: totals.get(None) or Activity(chosen.kind or "", chosen.resource_id or "")}
    return [UsageFigures(bucket, totals[g], load, g) for g in sorted(totals, key=group_order)]


def stored_period(size: Period) -> Period:
    """What the rollups keep for a report by `size`: hours for hours, days for the rest (weeks
    and months are sums of days)."""
    return Period.HOUR if size is Period.HOUR else Period.DAY


def figures_by_bucket(
    found: Iterable[Rollup], calendar: Calendar, size: Period, chosen: UsageFilter
) -> list[UsageFigures]:
    """The usage report from the stored rollups (oldest first): summed into the calendar's
    buckets of `size`, and per bucket the figures over the activity the filter chooses. A day
    cut by another time zone (the tenant's before it changed) is none of this calendar's and is
    left out."""
    if size is not Period.HOUR:
        own = [d for d in found if calendar.start_of(Period.DAY, d.start) == d.start]
        found = [
            sum_of(parts, size, start)
            for start, parts in groupby(own, lambda d: calendar.start_of(size, d.start))
        ]
    return [
        figures
        for rollup in found
        for figures in usage_figures(rollup, calendar.bucket(size, rollup.start), chosen)
    ]


def overlap_seconds(start: datetime, end: datetime, bucket: datetime, length: timedelta) -> float:
    """Seconds of [start, end) inside the bucket."""
    inside = min(end, bucket + length) - max(start, bucket)
    return max(0.0, inside.total_seconds())


def _add_counts(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in sorted({*a, *b})}


def _add_seconds(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
    total = dict(a)
    for meter, seconds in b.items():
        total[meter] = total.get(meter, 0.0) + seconds
    return total
