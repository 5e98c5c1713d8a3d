from collections import Counter
from datetime import date

from adapters.memory.store import MemoryStore
from application.trials.ports import RefusedStarts
from domain.refusals import Refusal, RefusedStart
from domain.trial_report import RefusalTally


class MemoryRefusedStarts(RefusedStarts):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def record(self, tenant_id: str, refused: RefusedStart) -> None:
        counts = self._store.refused_starts
        counts[(tenant_id, refused)] = counts.get((tenant_id, refused), 0) + 1

    async def tally(self, tenant_id: str, first_day: date, last_day: date) -> RefusalTally:
        starts: Counter[Refusal] = Counter()
        exhausted = set()
        for (tenant, refused), count in self._store.refused_starts.items():
            if tenant != tenant_id or not first_day <= refused.day <= last_day:
                continue
            starts[refused.reason] += count
            if refused.reason is Refusal.TRIAL_EXHAUSTED:
                exhausted.add(refused.subject_id)
        return RefusalTally(dict(starts), len(exhausted))
