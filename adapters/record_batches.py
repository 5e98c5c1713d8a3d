"""A batch of records (errors, metrics, sales) as the stores' logs take it (RecordLog.add): the
records whose session is there, judged by the store; the first copy of each id left is the one
stored; then what became of each record, in the batch's order."""

from collections.abc import Collection, Mapping, Sequence
from typing import Generic

from application.telemetry.ports import SESSION_GONE, Added, Record
from domain.errors import InvalidInput


class RecordBatch(Generic[Record]):
    def __init__(self, records: Sequence[Record], gone: set[str]) -> None:
        self._records = records
        self._gone = gone  # the sessions named that are not there
        self._there = [n for n, r in enumerate(records) if r.session_id not in gone]
        self._refused: dict[int, InvalidInput] = {}
        self._firsts: dict[str, int] = {}  # the place of each id's copy that may be stored

    @property
    def there(self) -> list[Record]:
        """The records whose session is there, in order: those the store judges."""
        return [self._records[n] for n in self._there]

    def judged(self, refusals: Sequence[InvalidInput | None]) -> list[Record]:
        """Given why each of `there` may not be stored (None: it may), the records to store:
        the first copy of each id that may be, in the batch's order."""
        self._refused = {n: why for n, why in zip(self._there, refusals, strict=True) if why}
        for n in self._there:
            if n not in self._refused:
                self._firsts.setdefault(self._records[n].id, n)
        return [self._records[n] for n in self._firsts.values()]

    def outcome(self, stored: Collection[str], before: Mapping[str, Record]) -> list[Added[Record]]:
        """Each record's, given the ids this call stored and the records held before under the
        others: SESSION_GONE, its refusal, None for the copy stored (a later copy: that one), or
        what was held before (None: deleted since)."""
        outcome: list[Added[Record]] = []
        for n, record in enumerate(self._records):
            if record.session_id in self._gone:
                outcome.append(SESSION_GONE)
            elif n in self._refused:
                outcome.append(self._refused[n])
            elif record.id in stored:
                first = self._firsts[record.id]
                outcome.append(None if n == first else self._records[first])
            else:
                outcome.append(before.get(record.id))
        return outcome
