"""domain.charging.settle_batch: a batch of settlements is what as many single settlements, one
after the other in session id order, would record."""

from datetime import UTC, datetime, timedelta

import pytest

from domain.charging import Priced, settle, settle_batch, subjects_of
from domain.credits import EntryKind
from domain.session import Charge, ChargeState, Exit, Session, SessionRequest

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def ended(session_id: str, subject: str | None = "ann", minutes: float = 3) -> Session:
    client_key = None if subject else "browser-1"
    request = SessionRequest("counseling", "room", subject, client_key)
    session = Session.start("t", session_id, request, NOW)
    session.close(Exit(at=NOW + timedelta(minutes=minutes)), frozenset({"counseling"}))
    return session


def test_each_subject_s_balance_carries_the_sessions_settled_before_it_in_id_order() -> None:
    priced = [
        Priced(ended("s3", "ann"), 4),
        Priced(ended("s1", "ann"), 6),
        Priced(ended("s2", "bob"), 5),
        Priced(ended("s4", "ann"), 2),
    ]

    settled = settle_batch(priced, {"ann": 9, "bob": 20})

    assert [(s.session.id, s.charge) for s in settled] == [
        ("s1", Charge(6, 3, None)),
        ("s2", Charge(5, 15, None)),
        ("s3", Charge(4, -1, "negative_balance")),
        ("s4", Charge(2, -3, "negative_balance")),
    ]
    # Exactly what settling them one at a time, each on the balance the last one left, says.
    balances = {"ann": 9, "bob": 20}
    for one in settled:
        subject = one.session.subject_id
        assert subject is not None
        alone = settle(one.session, one.settlement.charge.credits, balances[subject])
        assert alone == one.settlement
        balances[subject] = alone.charge.balance_after
    assert [s.alert_record(NOW) is not None for s in settled] == [False, False, True, True]


def test_a_session_given_twice_is_settled_once_and_a_subject_without_a_balance_has_none() -> None:
    session = ended("s1", "cyd")

    settled = settle_batch([Priced(session, 6), Priced(session, 6)], {})

    assert [(s.session.id, s.charge) for s in settled] == [
        ("s1", Charge(6, -6, "negative_balance"))
    ]
    entry = settled[0].ledger_entry(NOW)
    assert entry is not None
    assert (entry.kind, entry.amount, entry.session_revision) == (EntryKind.CHARGE, -6, 0)


def test_a_correction_is_settled_as_an_adjustment_of_the_difference() -> None:
    session = ended("s1")
    session.settle(Charge(6, 4, None))
    session.usage_added()  # its price may have changed: pending again, at revision 1

    (settled,) = settle_batch([Priced(session, 8)], {"ann": 4})

    assert (settled.settlement.kind, settled.settlement.amount) == (EntryKind.ADJUSTMENT, -2)
    assert settled.charge == Charge(8, 2, None)
    assert settled.alert_record(NOW) is None
    assert settled.settled_session().charge_state is ChargeState.CHARGED
    assert session.charge_state is ChargeState.PENDING  # the session as read stays as read


@pytest.mark.parametrize(
    ("state", "revision", "subject", "claimable"),
    [
        (ChargeState.PENDING, 0, "ann", True),
        (ChargeState.CHARGED, 0, "ann", False),  # settled by another caller
        (ChargeState.PENDING, 1, "ann", False),  # corrected since it was read
        (ChargeState.PENDING, 0, "erased:0f", False),  # its subject erased since
    ],
)
def test_a_session_is_claimable_only_still_pending_at_the_revision_and_of_the_subject_read(
    state: ChargeState, revision: int, subject: str, claimable: bool
) -> None:
    assert Priced(ended("s1", "ann"), 6).claimable(state, revision, subject) is claimable


def test_subjects_are_those_of_the_sessions_settled() -> None:
    priced = [Priced(ended("s1", "ann"), 1), Priced(ended("s2", "bob"), 1)]
    assert subjects_of(priced) == {"ann", "bob"}
