from datetime import datetime

from adapters.memory.store import MemoryStore
from application.trials.ports import TrialSessions
from domain.trial_report import FreeTrial, TrialUse, in_force_at


class MemoryTrialSessions(TrialSessions):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def use(
        self, tenant_id: str, start: datetime, end: datetime, trial: FreeTrial
    ) -> TrialUse:
        history = self._store.subscription_history
        counts: dict[str, int] = {}  # trial sessions per subject
        firsts: dict[str, datetime] = {}  # each subject's first trial session
        for (tenant, _), s in self._store.sessions.items():
            if tenant != tenant_id or s.subject_id is None or not start <= s.started_at < end:
                continue
            in_force = in_force_at(history.get((tenant, s.subject_id), []), s.started_at)
            if trial.counts(s.kind, s.started_at, in_force):
                counts[s.subject_id] = counts.get(s.subject_id, 0) + 1
                firsts[s.subject_id] = min(firsts.get(s.subject_id, s.started_at), s.started_at)
        conversions = sum(
            any(trial.converts(entry, first) for entry in history.get((tenant_id, subject), []))
            for subject, first in firsts.items()
        )
        return TrialUse(len(counts), sum(counts.values()), conversions)
