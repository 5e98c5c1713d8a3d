"""The domain rules of kiosk telemetry: fingerprints, nearest ranks, money and settlement."""

import itertools
import math
from decimal import Decimal

import pytest

from domain.error_reports import fingerprint_of, normalized
from domain.errors import InvalidInput
from domain.money import amount_text, check_amount, check_currency
from domain.performance import Metric, rank
from domain.sales import ALLOWED_MOVES, Settlement, SettlementMoveRefused, SettlementState
from tests.contract.builders import at
from tests.contract.telemetry_builders import a_metric, amounts

JAVA = "at com.kiosk.Printer.feed(Printer.java:{line})\nat com.kiosk.Job.run(Job.java:{other})"


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (JAVA.format(line=120, other=8), JAVA.format(line=131, other=9)),
        (
            "job 3f2b8c1e-9d4a-4e6b-8f1a-2c3d4e5f6a7b failed",
            "job 0a1b2c3d-0000-4e6b-8f1a-ffffffffffff failed",
        ),
        ("segfault at 0x7ffd5e8a1c20", "segfault at 0x55d0c3a0"),
        ("object 7f3a9c01d2e4 leaked", "object a9b8c7d6e5f40 leaked"),
        ("tray 2 empty after 15 prints", "tray 3 empty after 200 prints"),
        ('File "/opt/kiosk/1.4.2/app.py", line 7', 'File "/opt/kiosk/1.5.0/app.py", line 70'),
        # builds named by their short git hashes (7 characters)
        ('File "/opt/kiosk/3f2a9c1/app.py", line 7', 'File "/opt/kiosk/b7e4d08/app.py", line 7'),
    ],
)
def test_what_varies_between_occurrences_of_one_fault_does_not_split_it(
    one: str, other: str
) -> None:
    assert normalized(one) == normalized(other)
    assert fingerprint_of("E", None, one, "m") == fingerprint_of("E", None, other, "n")
    assert fingerprint_of("E", None, None, one) == fingerprint_of("E", None, None, other)


def test_a_different_type_code_or_frame_is_a_different_fault() -> None:
    trace = JAVA.format(line=1, other=2)
    base = fingerprint_of("PrinterError", "JAM", trace, "m")

    assert fingerprint_of("CameraError", "JAM", trace, "m") != base
    assert fingerprint_of("PrinterError", "EMPTY", trace, "m") != base
    assert fingerprint_of("PrinterError", "JAM", trace.replace("feed", "cut"), "m") != base
    assert fingerprint_of("PrinterError", "JAM", trace, "other message") == base  # frames decide


@pytest.mark.parametrize("count", [1, 2, 3, 7, 20, 99, 100, 101, 1000])
@pytest.mark.parametrize("percentile", [1, 50, 95, 99, 100])
def test_the_nearest_rank_is_the_smallest_with_that_share_at_or_below_it(
    count: int, percentile: int
) -> None:
    r = rank(count, percentile)
    assert r / count >= percentile / 100
    assert r == 1 or (r - 1) / count < percentile / 100
    assert r == max(1, math.ceil(percentile * count / 100))


def test_a_metric_sent_with_its_end_takes_its_duration_from_it() -> None:
    metric = Metric.ended(
        at(0), at(0.5), id="m", device_id="d", app_version="1", type="print", success=True
    )
    assert metric.duration_ms == 30_000.0
    with pytest.raises(InvalidInput) as refused:
        Metric.ended(
            at(1), at(0), id="m", device_id="d", app_version="1", type="print", success=True
        )
    assert refused.value.field == "ended_at"
    with pytest.raises(InvalidInput) as negative:
        a_metric("m", -1.0)
    assert negative.value.field == "duration_ms"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("1.0000000001", "decimal places"),
        ("-0.01", "negative"),
        ("1e15", "below"),
        ("NaN", "finite"),
    ],
)
def test_amounts_are_exact_bounded_and_not_negative(text: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        check_amount("amount", Decimal(text))


def test_one_amount_has_one_spelling() -> None:
    assert check_amount("a", Decimal("5.10")) == check_amount("a", Decimal("5.1")) == Decimal("5.1")
    assert amount_text(Decimal("1E-9")) == "0.000000001"
    assert amount_text(Decimal("1E+3")) == "1000"
    assert amount_text(check_amount("a", Decimal("1.000000000"))) == "1"
    with pytest.raises(InvalidInput):
        check_currency("currency", "usd")


def test_net_may_include_tax_but_not_exceed_gross_plus_tax() -> None:
    assert amounts("100", "10", "5", "95").net == Decimal(95)
    with pytest.raises(InvalidInput, match="gross \\+ tax"):
        amounts("100", "0", "5", "105.01")


STATES = list(SettlementState)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(STATES, STATES)))
def test_settlement_moves_only_as_the_state_machine_allows(
    current: SettlementState, target: SettlementState
) -> None:
    settlement = Settlement(current)
    if current is target:
        assert settlement.move_to(Settlement(target)) is settlement  # a retry, no move
    elif (current, target) in ALLOWED_MOVES:
        assert settlement.move_to(Settlement(target, batch_id="b")).state is target
    else:
        with pytest.raises(SettlementMoveRefused) as refused:
            settlement.move_to(Settlement(target))
        assert refused.value.current is current


def test_asking_again_for_a_state_with_other_particulars_is_a_move() -> None:
    settled = Settlement(SettlementState.SETTLED, batch_id="b1")
    with pytest.raises(SettlementMoveRefused):
        settled.move_to(Settlement(SettlementState.SETTLED, batch_id="b2"))
    assert settled.move_to(Settlement(SettlementState.SETTLED)) is settled
