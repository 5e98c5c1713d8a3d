"""Erasure: what a session and what hangs off it keep once the person behind it is forgotten.

A session keeps what the books and the reports need (times, kind, resource, status, usage,
charge) and loses what names or traces a person: its subject and client key (replaced by
pseudonyms), the attributes that are always personal (address, user agent, referrer) and those a
tenant names in `personal_attributes`. Its events lose their `data` and `label`; its errors their
`context` and their breadcrumbs' labels and data; its sales their personal attributes (amounts,
status and settlement stay, so the money still adds up).
"""

import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass, field, replace

from domain.error_reports import ErrorReport
from domain.session import AttributeValue, Session

PSEUDONYM_PREFIX = "erased:"
PSEUDONYM_DIGITS = 32  # random hex digits after the prefix
DRAWN_PSEUDONYM = re.compile(re.escape(PSEUDONYM_PREFIX) + f"[0-9a-f]{{{PSEUDONYM_DIGITS}}}")
# What erasing a session may change: its people, its attributes, and what its exit said in the
# client's own words (a summary and a reason are free-form, so they may name anyone).
ERASED_FIELDS = ("subject_id", "client_key", "attributes", "summary", "exit_reason")
# Filled in by the transport when a client does not say otherwise: always someone's.
ALWAYS_PERSONAL = frozenset({"ip", "user_agent", "referrer"})


def is_pseudonym(identifier: str | None) -> bool:
    return identifier is not None and identifier.startswith(PSEUDONYM_PREFIX)


@dataclass
class Pseudonyms:
    """The pseudonyms of one erasure: `erased:` and 32 random hex digits, drawn once per
    identifier in it, so all its records of one person share one, and no request can resolve
    one back (random, not a hash a guess could be checked against)."""

    given: dict[str, str] = field(default_factory=dict)

    def of(self, identifier: str) -> str:
        drawn = PSEUDONYM_PREFIX + secrets.token_hex(PSEUDONYM_DIGITS // 2)
        return self.given.setdefault(identifier, drawn)


@dataclass(frozen=True)
class Forgetting:
    """How one erasure treats what it reaches. With `subject_id`, only the sessions still of
    that subject are erased (one racing erasure of the same subject erased the others). With
    `keeps_subjects` (a deleted resource's billed sessions, whose people asked for nothing),
    subjects stay: their accounts' ledgers name those sessions, and a later correction of a
    charge must land on the same account."""

    pseudonyms: Pseudonyms
    personal_attributes: Collection[str] = frozenset()
    subject_id: str | None = None
    keeps_subjects: bool = False

    @property
    def personal(self) -> frozenset[str]:
        return ALWAYS_PERSONAL | frozenset(self.personal_attributes)

    def erase(self, session: Session) -> bool:
        """Take what is personal out of the session; whether there was anything to take."""
        if self.subject_id is not None and session.subject_id != self.subject_id:
            return False
        subject = session.subject_id if self.keeps_subjects else self._pseudonym(session.subject_id)
        erased = {  # ERASED_FIELDS
            "subject_id": subject,
            "client_key": self._pseudonym(session.client_key),
            "attributes": self.attributes(session.attributes),
            "summary": None,
            "exit_reason": None,
        }
        if all(getattr(session, name) == value for name, value in erased.items()):
            return False
        for name, value in erased.items():
            setattr(session, name, value)
        return True

    def attributes(self, attributes: dict[str, AttributeValue]) -> dict[str, AttributeValue]:
        """The attributes without the personal ones (a session's or a sale's)."""
        personal = self.personal
        return {name: value for name, value in attributes.items() if name not in personal}

    def _pseudonym(self, identifier: str | None) -> str | None:
        """A pseudonym stays what it is (erasing again changes nothing), unless it is the very
        subject being erased: an id that merely looks like one still names someone."""
        if identifier is None or (is_pseudonym(identifier) and identifier != self.subject_id):
            return identifier
        return self.pseudonyms.of(identifier)


def erased_error(error: ErrorReport) -> ErrorReport:
    """The error without its free-form context and what its breadcrumbs said (their times and
    types stay: what the app did, not to whom); its fault and impact stay for the reports."""
    return replace(
        error,
        context=None,
        breadcrumbs=tuple(replace(b, label=None, data=None) for b in error.breadcrumbs),
    )
