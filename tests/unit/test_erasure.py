"""What erasure takes out of a session, an error and a sale, and the pseudonyms it gives."""

from datetime import UTC, datetime

from domain.erasure import Forgetting, Pseudonyms, erased_error, is_pseudonym
from domain.error_reports import Breadcrumb, ErrorReport, Severity
from domain.session import AttributeValue, Session, SessionRequest

AT = datetime(2026, 11, 24, 12, tzinfo=UTC)


def a_session(subject_id: str | None = "ana", client_key: str | None = "browser-1") -> Session:
    attributes: dict[str, AttributeValue] = {
        "ip": "203.0.113.7",
        "user_agent": "UA",
        "referrer": "r",
        "email": "e",
        "a": 1,
    }
    request = SessionRequest("webinar", "w-1", subject_id, client_key, attributes=attributes)
    return Session.start("t", "s-1", request, AT)


def test_one_erasure_gives_each_identifier_one_random_pseudonym() -> None:
    pseudonyms, others = Pseudonyms(), Pseudonyms()

    ana = pseudonyms.of("ana")

    assert is_pseudonym(ana) and len(ana) == len("erased:") + 32
    assert pseudonyms.of("ana") == ana and pseudonyms.of("bo") != ana
    assert others.of("ana") != ana  # not a hash: a guess cannot be checked against it


def test_a_pseudonym_stays_unless_it_is_the_subject_being_erased() -> None:
    forgetting = Forgetting(Pseudonyms(), subject_id="erased:ana")
    erased_before = a_session(subject_id="erased:ana", client_key="erased:" + "0" * 32)

    assert forgetting.erase(erased_before)

    assert erased_before.client_key == "erased:" + "0" * 32  # erased before: stays as it is
    assert is_pseudonym(erased_before.subject_id) and erased_before.subject_id != "erased:ana"


def test_a_session_loses_its_subject_client_key_and_personal_attributes_once() -> None:
    forgetting = Forgetting(Pseudonyms(), ("email",), subject_id="ana")
    session = a_session()

    assert forgetting.erase(session)

    assert session.subject_id == forgetting.pseudonyms.of("ana")
    assert is_pseudonym(session.client_key) and session.client_key != session.subject_id
    assert session.attributes == {"a": 1}
    assert not forgetting.erase(session)  # no longer the subject's
    assert not forgetting.erase(a_session(subject_id="bo"))


def test_without_a_subject_any_session_with_something_personal_is_erased() -> None:
    forgetting = Forgetting(Pseudonyms())
    anonymous = a_session(subject_id=None)

    assert forgetting.erase(anonymous)

    assert anonymous.subject_id is None and is_pseudonym(anonymous.client_key)
    assert anonymous.attributes == {"email": "e", "a": 1}  # the tenant named none
    assert not forgetting.erase(anonymous)


def test_an_error_keeps_its_fault_and_loses_what_was_said() -> None:
    error = ErrorReport(
        "e-1", AT, "kiosk-1", "1.0", Severity.ERROR, "Jam", "paper jam",
        breadcrumbs=(Breadcrumb(AT, "tap", "pay", {"card": "4111"}),),
        context={"email": "e"},
    )  # fmt: skip

    erased = erased_error(error)

    assert erased.context is None and erased.breadcrumbs == (Breadcrumb(AT, "tap"),)
    assert (erased.fingerprint, erased.message) == (error.fingerprint, error.message)
