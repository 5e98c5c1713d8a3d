"""The body of the trial report."""

from datetime import datetime

import msgspec

from domain.refusals import Refusal
from domain.trial_report import TrialReport


class RefusedStartsOut(msgspec.Struct):
    trial_exhausted: int
    quota_exceeded: int
    insufficient_credits: int


class TrialReportOut(msgspec.Struct):
    start: datetime = msgspec.field(name="from")
    end: datetime = msgspec.field(name="to")
    trial_subjects: int
    sessions_used: int
    avg_sessions_per_subject: float | None  # null without trial subjects
    refused_starts: RefusedStartsOut
    subjects_exhausted: int
    conversions: int
    conversion_rate: float | None  # null without trial subjects

    @classmethod
    def of(cls, report: TrialReport) -> "TrialReportOut":
        refusals = report.refusals
        return cls(
            report.start,
            report.end,
            report.use.subjects,
            report.use.sessions,
            report.avg_sessions_per_subject,
            RefusedStartsOut(
                refusals.of(Refusal.TRIAL_EXHAUSTED),
                refusals.of(Refusal.QUOTA_EXCEEDED),
                refusals.of(Refusal.INSUFFICIENT_CREDITS),
            ),
            refusals.subjects_exhausted,
            report.use.conversions,
            report.conversion_rate,
        )
