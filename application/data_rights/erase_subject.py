"""Forget a person: erase a subject's personal data from everything of it the books keep."""

from dataclasses import dataclass
from datetime import timedelta

from application.data_rights.ports import Erased, Erasure, SessionsOf
from application.data_rights.sweeps import BATCH, SESSIONS, erase, in_batches
from application.ports import Clock
from domain.erasure import Forgetting, Pseudonyms
from domain.tenants import Tenant

# An erasure still unfinished this long after it began is taken as abandoned (it failed, or its
# process died), and retention finishes it (ApplyRetention). One still at work by then (a
# subject with very many records) only makes the finisher take turns with it.
ABANDONED_AFTER = timedelta(minutes=10)


@dataclass(frozen=True)
class EraseSubjectCommand:
    tenant: Tenant  # as the caller's key resolved it
    subject_id: str


class EraseSubject:
    """A subject's sessions keep their times, kinds, resources, status, usage and charges, and
    lose the subject: it is replaced by a pseudonym, `erased:` and 32 random hex digits drawn
    once per erasure (so every record of the subject gets the same one, and no request can
    resolve it back: it is not a hash a guessed id could be checked against). They lose their
    client key (a pseudonym too), the attributes `ip`, `user_agent`, `referrer` and those named in
    the setting `personal_attributes`; their events lose `data` and `label`; their errors lose
    their context and what their breadcrumbs said; their sales lose their personal attributes
    (amounts, status and settlement stay). The subject's ledger entries, alerts, subscription
    and resource registrations move to the pseudonym, so its balance is still the sum of its
    ledger and the books balance. Counts: sessions erased, events that held data or a label,
    errors and sales of those sessions. Idempotent: erasing again, or a subject never seen,
    answers zero counts.

    Work goes in bounded steps (100 sessions, 1000 events at a time). Everything stored before
    the call is erased. An event that arrives for a session while it is erased is stored either
    before the session's erasure step (and cleared by it) or after it, under the pseudonym,
    as its client sent it. Two erasures of one subject at once take turns: the second erases
    what the first left, under the same pseudonym; their counts add up to the whole. An erasure
    that fails midway (sessions under the pseudonym, the ledger not moved yet) leaves its
    pseudonym kept (`Erasure.pseudonym_for`): erasing again finishes the job under it, so the
    sessions and their ledger end under one pseudonym; retention does it on its own once the
    erasure is ABANDONED_AFTER old.

    The subject's ledger and its pseudonym's are held from before the first session gets the
    pseudonym until the ledger has moved (`Erasure.with_ledgers_held`): a charge settled in
    between would decide from the pseudonym's balance, still empty, or land under the subject
    after its ledger moved. Such a charge waits for the erasure, or is settled again after it."""

    def __init__(self, erasure: Erasure, clock: Clock) -> None:
        self._erasure = erasure
        self._clock = clock

    async def __call__(self, command: EraseSubjectCommand) -> Erased:
        tenant, subject_id = command.tenant, command.subject_id
        drawn = Pseudonyms().of(subject_id)
        now = self._clock.now()
        moved_to = await self._erasure.pseudonym_for(tenant.id, subject_id, drawn, now)
        pseudonyms = Pseudonyms({subject_id: moved_to})
        forgetting = Forgetting(pseudonyms, tenant.settings.personal_attributes, subject_id)

        async def erase_and_move() -> Erased:
            erased = Erased()
            # Erased sessions no longer match the subject, so each page starts from the first;
            # a page of which nothing could be erased (a racing erasure took it) ends the sweep.
            of_subject = SessionsOf(subject_id=subject_id)
            while found := await self._erasure.sessions(tenant.id, of_subject, SESSIONS):
                page = await erase(self._erasure, tenant.id, [s.id for s in found], forgetting)
                erased += page
                if not page.sessions:
                    break
            # After the sessions, so that a charge settled before them is moved too.
            await in_batches(
                lambda: self._erasure.move_subject(tenant.id, subject_id, moved_to, BATCH)
            )
            await self._erasure.finished(tenant.id, subject_id)
            return erased

        return await self._erasure.with_ledgers_held(
            tenant.id, (subject_id, moved_to), erase_and_move
        )
