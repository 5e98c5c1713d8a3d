"""Starts refused for payment (402): counted per subject, kind, reason and day, so that the
trial report can say how many starts were refused and why."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from domain.calendar import Calendar


class Refusal(StrEnum):
    """Why a start was refused: the error code the client got."""

    TRIAL_EXHAUSTED = "trial_exhausted"  # the plan's sessions per resource are used up
    QUOTA_EXCEEDED = "quota_exceeded"  # the plan's resources a month are used up
    INSUFFICIENT_CREDITS = "insufficient_credits"  # the balance is below the minimum to start


@dataclass(frozen=True)
class RefusedStart:
    """One refusal of a subject's start of `kind` (a session's kind; for quota_exceeded, the
    kind of the resource it tried to add) on `day`: the unit the stores count."""

    subject_id: str
    kind: str
    reason: Refusal
    day: date

    @classmethod
    def at(
        cls, when: datetime, subject_id: str, kind: str, reason: Refusal, calendar: Calendar
    ) -> "RefusedStart":
        """A refusal made at the instant `when`, counted on its day of the tenant's calendar."""
        return cls(subject_id, kind, reason, calendar.date_of(when))


def days_of(start: datetime, end: datetime, calendar: Calendar) -> tuple[date, date]:
    """The first and last calendar days that the window [start, end) touches: refusals are
    kept per day, so a report counts those of every day it touches."""
    return calendar.date_of(start), calendar.date_of(end - timedelta(microseconds=1))
