"""The bodies of funnels: a funnel's stages, and its report."""

from typing import Annotated

import msgspec

from domain.funnels import MAX_STAGES, MIN_STAGES, Funnel, FunnelFigures, Stage, StageMatch


class MatchBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    type: str
    label: str | None = None
    category: str | None = None


class StageBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    match: MatchBody


class FunnelBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    kind: str
    stages: Annotated[list[StageBody], msgspec.Meta(min_length=MIN_STAGES, max_length=MAX_STAGES)]

    def funnel(self, name: str) -> Funnel:
        stages = [
            Stage(s.name, StageMatch(s.match.type, s.match.label, s.match.category))
            for s in self.stages
        ]
        return Funnel(name, self.kind, tuple(stages))


class FunnelOut(msgspec.Struct):
    name: str
    kind: str
    stages: list[StageBody]

    @classmethod
    def of(cls, funnel: Funnel) -> "FunnelOut":
        stages = [
            StageBody(
                name=s.name,
                match=MatchBody(type=s.match.type, label=s.match.label, category=s.match.category),
            )
            for s in funnel.stages
        ]
        return cls(funnel.name, funnel.kind, stages)


class StageFiguresOut(msgspec.Struct):
    name: str
    reached: int
    conversion_from_previous: float | None
    conversion_from_start: float | None
    dropped_here: int
    median_seconds_in_stage: float | None


class FunnelGroupOut(msgspec.Struct):
    group: str | None  # the dimension's value (null: sessions without it)
    sessions: int
    stages: list[StageFiguresOut]
    exit_statuses: dict[str, int]


class FunnelReportOut(msgspec.Struct):
    sessions: int
    stages: list[StageFiguresOut]
    exit_statuses: dict[str, int]
    groups: list[FunnelGroupOut]  # with group_by; empty without

    @classmethod
    def of(cls, figures: FunnelFigures) -> "FunnelReportOut":
        groups = [FunnelGroupOut(g.group, *_parts(g.figures)) for g in figures.groups]
        return cls(*_parts(figures), groups)


def _parts(figures: FunnelFigures) -> tuple[int, list[StageFiguresOut], dict[str, int]]:
    stages = [StageFiguresOut(**vars(s)) for s in figures.stages]
    return figures.sessions, stages, figures.exit_statuses
