"""Forget a person: erase a subject's personal data from everything of it the books keep."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from application.data_rights.ports import Erased, Erasure, SessionsOf
from application.data_rights.sweeps import BATCH, SESSIONS, erase, in_batches
from application.ports import Clock
from application.rollups.rollup_rewinds import RollupRewinds
from application.tenants.as_stored import as_stored
from application.tenants.ports import TenantRepository
from domain.erasure import Forgetting, Pseudonyms
from domain.errors import Contended
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
    erasure is ABANDONED_AFTER old (`resume`, which begins nothing new). Once it holds the
    ledgers, an erasure checks that its pseudonym is still the one kept: if another erasure of
    the subject finished while it waited, it starts again (a newer one's, or a new one).

    The subject's ledger and its pseudonym's are held from before the first session gets the
    pseudonym until the ledger has moved (`Erasure.with_ledgers_held`): a charge settled in
    between would decide from the pseudonym's balance, still empty, or land under the subject
    after its ledger moved. Such a charge waits for the erasure, or is settled again after it."""

    def __init__(
        self,
        erasure: Erasure,
        tenants: TenantRepository,
        rewinds: RollupRewinds,
        clock: Clock,
    ) -> None:
        self._erasure = erasure
        self._tenants = tenants
        self._rewinds = rewinds
        self._clock = clock

    async def __call__(self, command: EraseSubjectCommand) -> Erased:
        erased = await self._erase(command.tenant, command.subject_id, begin=True)
        assert erased is not None, "an erasure that may begin always ends with its counts"
        return erased

    async def resume(self, tenant: Tenant, subject_id: str) -> Erased | None:
        """Finish the subject's unfinished erasure under its kept pseudonym; None when there is
        none (it finished meanwhile): nothing new is begun."""
        return await self._erase(tenant, subject_id, begin=False)

    async def _erase(self, tenant: Tenant, subject_id: str, begin: bool) -> Erased | None:
        # Each turn that ends in None is another erasure of the subject that finished first:
        # progress, so this one goes on until its own turn (or the ledgers' wait, Contended).
        while True:
            if begin:
                drawn = Pseudonyms().of(subject_id)
                now = self._clock.now()
                moved_to = await self._erasure.pseudonym_for(tenant.id, subject_id, drawn, now)
            elif (kept := await self._erasure.kept(tenant.id, subject_id)) is None:
                return None
            else:
                moved_to = kept

            held = partial(self._erase_held, tenant, subject_id, moved_to)
            erased = await self._erasure.with_ledgers_held(tenant.id, (subject_id, moved_to), held)
            if erased is not None:
                return erased

    async def _erase_held(self, tenant: Tenant, subject_id: str, moved_to: str) -> Erased | None:
        """The erasure's work, holding the ledgers of the subject and of `moved_to`; None,
        doing nothing, if `moved_to` is no longer the subject's kept pseudonym: another erasure
        finished while this one waited for the ledgers (and maybe a newer one began)."""
        if await self._erasure.kept(tenant.id, subject_id) != moved_to:
            return None
        pseudonyms = Pseudonyms({subject_id: moved_to})
        # As stored: an attribute named personal just before must go too (erasing the subject
        # again would not reach it: the sessions name the pseudonym from here on).
        settings = (await as_stored(self._tenants, tenant)).settings
        forgetting = Forgetting(pseudonyms, settings.personal_attributes, subject_id)
        erased = Erased()
        # Erased sessions no longer match the subject, so each page starts from the first. A
        # page may erase none of its sessions (retention deleted them meanwhile): the next one
        # lists those left. Only a page listed again after erasing none would mean this sweep
        # cannot go on; it stops unfinished, and retention finishes the erasure later.
        of_subject = SessionsOf(subject_id=subject_id)
        first: datetime | None = None
        stuck: list[str] = []  # the last page, if it erased none of its sessions
        while found := await self._erasure.sessions(tenant.id, of_subject, SESSIONS):
            first = first or found[0].started_at  # in start order
            ids = [s.id for s in found]
            if ids == stuck:
                raise Contended(f"the erasure of {subject_id} could not go on; retry")
            page = await erase(self._erasure, tenant.id, ids, forgetting)
            erased += page
            stuck = [] if page.sessions else ids
        if first is not None and forgetting.personal & set(settings.dimensions):
            # The rollups keep the sessions under their values of the dimensions: no longer.
            await self._rewinds.changed_since(tenant.id, first)
        # After the sessions, so that a charge settled before them is moved too.
        await in_batches(lambda: self._erasure.move_subject(tenant.id, subject_id, moved_to, BATCH))
        await self._erasure.finished(tenant.id, subject_id, moved_to)
        return erased
