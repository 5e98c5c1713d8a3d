"""Money as clients send it: exact decimal amounts in a currency, never mixed across currencies.

Amounts are `Decimal`s of at most 9 decimal places (the finest unit any payment system we meet
reports), not negative, and below 10^15 (so every store keeps them, and sums of them, exactly).
"""

from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Context, Decimal, Inexact, InvalidOperation

from domain.errors import InvalidInput

MAX_PLACES = 9
MAX_AMOUNT = Decimal(10) ** 15
# Sums of amounts are exact: the default context's 28 digits would round a total of 10^19.
EXACT = Context(prec=60, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, Inexact])

# ISO 4217 active codes (2024), with the funds and metals codes payment systems do not use left out.
_CODES = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
    GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR
    KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK
    MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR
    SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS
    UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
"""
CURRENCIES = frozenset(_CODES.split())


def check_currency(field: str, code: str) -> str:
    if code not in CURRENCIES:
        raise InvalidInput(field, "is not an ISO 4217 currency code (three capital letters)")
    return code


def check_amount(field: str, amount: Decimal) -> Decimal:
    """An exact amount: finite, not negative, at most 9 decimal places, below 10^15."""
    try:
        finite = amount.is_finite()
        exponent = amount.as_tuple().exponent
    except (AttributeError, InvalidOperation):
        raise InvalidInput(field, "must be a decimal amount") from None
    if not finite or not isinstance(exponent, int):
        raise InvalidInput(field, "must be a finite decimal amount")
    if amount < 0:
        raise InvalidInput(field, "must not be negative")
    if amount >= MAX_AMOUNT:  # first: below it, quantizing to 9 places cannot overflow
        raise InvalidInput(field, "must be below 10^15")
    if exponent < -MAX_PLACES and amount != amount.quantize(Decimal(1).scaleb(-MAX_PLACES)):
        raise InvalidInput(field, f"has more than {MAX_PLACES} decimal places")
    return canonical(amount)


def canonical(amount: Decimal) -> Decimal:
    """One spelling of a value, so that "5.10", "5.1" and 5.1e0 are the same amount everywhere
    (an idempotent replay compares them; stores give them back in their own spelling)."""
    normal = amount.normalize(EXACT)
    if normal.is_zero():
        return Decimal(0)  # not -0
    return (
        normal.quantize(Decimal(1), context=EXACT)
        if normal == normal.to_integral_value()
        else normal
    )


def amount_text(amount: Decimal) -> str:
    """How an amount leaves the service: a plain decimal string, never an exponent."""
    return format(canonical(amount), "f")


def sum_by_currency(pairs: Iterable[tuple[str, Decimal]]) -> dict[str, Decimal]:
    """Totals per currency: amounts of different currencies are never added together."""
    totals: dict[str, Decimal] = {}
    for currency, amount in pairs:
        totals[currency] = EXACT.add(totals.get(currency, Decimal(0)), amount)
    return {currency: canonical(total) for currency, total in totals.items()}
