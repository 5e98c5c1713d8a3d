"""Steps of features/kiosk.feature. Steps are synchronous: pytest-bdd cannot await.

A `Kiosk` is one kiosk's app as the story drives it: it sends what happens as it happens or,
while its network is down, keeps it and sends it all when the network comes back. The operator
reads lists and reports with the admin key; the feature's tables are compared with them column
by column, each cell read as what it stands for (a count, an amount, a text).
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from pytest_bdd import given, parsers, scenarios, then, when

from tests.app_client import Api
from tests.fakes import FakeClock

scenarios("kiosk.feature")

Body = dict[str, Any]
Table = list[list[str]]
KINDS = ("events", "errors", "metrics", "sales")
BATCH_PATHS = {
    "events": "/v1/events/batch",
    "errors": "/v1/errors/batch",
    "metrics": "/v1/performance/batch",
}


@dataclass(frozen=True)
class Outcome:
    """What the API made of records sent together."""

    inserted: int
    duplicates: int
    failed: int
    why: list[Any] = field(default_factory=list, compare=False)  # the refusals, to read


@dataclass
class Kiosk:
    """One kiosk of the fleet and its current customer's session."""

    api: Api
    clock: FakeClock
    device: str
    app_version: str
    session: Body = field(default_factory=dict)  # as the API last answered it
    started: datetime | None = None
    sequence_no: int = 0
    records: int = 0  # ids given so far
    online: bool = True
    kept: dict[str, list[Body]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    kept_exit: Body | None = None

    def start(self) -> None:
        """With the kiosk's own key (ingest, public-grade): kiosk sessions are not billed here."""
        body = {
            "kind": "kiosk",
            "resource_id": self.device,
            "client_key": f"{self.device}-guest",
            "attributes": {"app_version": self.app_version},
        }
        started = self.api.client.post("/v1/sessions", json=body, headers=self.api.ingest)
        assert started.status_code == 201, started.text
        self.session = started.json()
        self.started = self.clock.now()
        self.sequence_no = 0

    def at_minute(self, minute: int) -> None:
        """Moves the story's clock to `minute` into the current visit."""
        assert self.started is not None
        ahead = self.started + timedelta(minutes=minute) - self.clock.now()
        assert ahead >= timedelta(0), "the story's minutes go forward"
        self.clock.advance(ahead.total_seconds())

    def now(self) -> str:
        return self.clock.now().isoformat()

    def new_id(self, what: str) -> str:
        self.records += 1
        return f"{self.device}-{what}-{self.records}"

    def event(self, type: str, label: str | None = None) -> Body:
        self.sequence_no += 1
        return {
            "session_id": self.session["id"],
            "sequence_no": self.sequence_no,
            "type": type,
            "at": self.now(),
            "label": label,
        }

    def metric(self, type: str, ms: float) -> Body:
        return {
            "id": self.new_id(type),
            "device_id": self.device,
            "session_id": self.session.get("id"),
            "app_version": self.app_version,
            "type": type,
            "started_at": self.now(),
            "duration_ms": ms,
            "success": True,
        }

    def error(self, **fields: Any) -> Body:
        return {
            "id": self.new_id("error"),
            "at": self.now(),
            "device_id": self.device,
            "session_id": self.session.get("id"),
            "app_version": self.app_version,
            **fields,
        }

    def sale(self, paid: str, method: str, id: str | None = None, **fields: Any) -> Body:
        amount, currency = paid.split()
        return {
            "id": id or self.new_id("sale"),
            "session_id": self.session.get("id"),
            "device_id": self.device,
            "occurred_at": self.now(),
            "currency": currency,
            "amounts": {"gross": amount, "net": amount},
            "payment_method": method,
            **fields,
        }

    def pay(self, paid: str, method: str, id: str | None = None) -> None:
        self.send("events", self.event("paid", method))
        self.send("sales", self.sale(paid, method, id))

    def leave(self, status: str = "completed") -> None:
        exit = {"at": self.now(), "status": status}
        if self.online:
            self.post_exit(exit)
        else:
            self.kept_exit = exit

    def send(self, kind: str, *records: Body) -> None:
        """Records sent as they happen, or kept while the network is down."""
        if self.online:
            outcome = self.post(kind, list(records))
            assert outcome == Outcome(len(records), 0, 0), outcome
        else:
            self.kept[kind].extend(records)

    def send_kept(self) -> dict[str, Outcome]:
        """Everything kept, as the kiosk's outbox sends it: the exit first, then each kind of
        record in one batch."""
        assert self.kept_exit is not None
        self.post_exit(self.kept_exit)
        return {kind: self.post(kind, records) for kind, records in self.kept.items() if records}

    def post(self, kind: str, records: list[Body]) -> Outcome:
        client, headers = self.api.client, self.api.ingest
        if kind == "sales":  # sales have no batch endpoint: one request a sale
            answers = [client.post("/v1/sales", json=sale, headers=headers) for sale in records]
            codes = [a.status_code for a in answers]
            why = [a.text for a in answers if a.status_code not in (200, 201)]
            return Outcome(codes.count(201), codes.count(200), len(why), why)
        response = client.post(BATCH_PATHS[kind], json={kind: records}, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        return Outcome(body["inserted"], body["duplicates"], body["failed"], body["errors"])

    def post_exit(self, exit: Body) -> None:
        path = f"/v1/sessions/{self.session['id']}/exit"
        response = self.api.client.post(path, json=exit, headers=self.api.ingest)
        assert response.status_code == 200, response.text
        self.session = response.json()


Fleet = dict[str, Kiosk]


def read(api: Api, path: str, **params: str) -> list[Body]:
    """The items of a list or a report, read by the operator."""
    response = api.client.get(path, params=params, headers=api.admin)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def session_of(api: Api, kiosk: Kiosk) -> Body:
    response = api.client.get(f"/v1/sessions/{kiosk.session['id']}", headers=api.app)
    assert response.status_code == 200, response.text
    return dict(response.json())


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- reading the feature's tables -------------------------------------------------------------

# How a column reads an item of the API, and how it reads the table's cell, as the same kind.
Column = tuple[Callable[[Body], object], Callable[[str], object]]


def or_blank(value: str | None) -> str:
    return value or ""


def value(key: str, kind: Callable[[Any], object] = str) -> Column:
    return (lambda item: kind(item[key]), kind)


def tally(cell: str) -> dict[str, int]:
    """`1.4.2: 1, 1.5.0: 1`"""
    pairs = (part.split(": ") for part in cell.split(", "))
    return {name: int(count) for name, count in pairs}


def per_currency(cell: str) -> dict[str, Decimal]:
    """`30000 KRW, 3.5 USD`, or blank for none."""
    amounts = (part.split() for part in cell.split(", ") if part)
    return {currency: Decimal(amount) for amount, currency in amounts}


def settlement_net(state: str) -> Column:
    return (lambda total: Decimal(total["by_state"].get(state, "0")), Decimal)


def reads(items: list[Body], datatable: Table, columns: dict[str, Column]) -> None:
    """The items, in their order, are the table's rows."""
    header, *rows = datatable
    actual = [[columns[name][0](item) for name in header] for item in items]
    expected = [
        [columns[name][1](cell) for name, cell in zip(header, row, strict=True)] for row in rows
    ]
    assert actual == expected


ERROR_GROUPS: dict[str, Column] = {
    "fault": value("type"),
    "code": value("code"),
    "times": value("count", int),
    "kiosks": value("devices", int),
    "sessions": value("sessions", int),
    "app versions": (lambda group: group["app_versions"], tally),
    "worst": value("severity"),
    "sales lost": value("sales_lost", int),
    "estimated loss": (
        lambda group: {c: Decimal(a) for c, a in group["estimated_loss"].items()},
        per_currency,
    ),
}
PERFORMANCE: dict[str, Column] = {
    "measured": value("type"),
    "app version": value("group"),
    "count": value("count", int),
    **{f"{p} ms": value(f"{p}_ms", float) for p in ("p50", "p95", "p99", "max")},
}
SALES_TOTALS: dict[str, Column] = {
    "kiosk": value("group"),
    "currency": value("currency"),
    "sales": value("count", int),
    "net": value("net", Decimal),
    "refunded": value("refunded", Decimal),
    "settled": settlement_net("settled"),
    "pending": settlement_net("pending"),
}
SALES: dict[str, Column] = {
    "sale": value("id"),
    "status": value("status"),
    "refund of": value("refund_of", or_blank),
    "net": (lambda sale: Decimal(sale["amounts"]["net"]), Decimal),
    "settlement": (lambda sale: sale["settlement"]["state"], str),
    "batch": (lambda sale: or_blank(sale["settlement"]["batch_id"]), str),
}


# --- the fleet and its customers --------------------------------------------------------------


@given("a small fleet of photo kiosks:", target_fixture="fleet")
def small_fleet(api: Api, clock: FakeClock, datatable: Table) -> Fleet:
    header, *rows = datatable
    assert header == ["kiosk", "app version"]
    return {device: Kiosk(api, clock, device, version) for device, version in rows}


CUSTOMER_STARTS = parsers.parse('a customer starts a session on "{device}"')


@given(CUSTOMER_STARTS, target_fixture="kiosk")
@when(CUSTOMER_STARTS, target_fixture="kiosk")
def customer_starts(fleet: Fleet, device: str) -> Kiosk:
    kiosk = fleet[device]
    kiosk.start()
    return kiosk


@given("the kiosk loses its network")
def loses_network(kiosk: Kiosk) -> None:
    kiosk.online = False


def minutes_in(step: str) -> parsers.re:
    """A step of the visit `N minutes in`: the story's clock moves there first."""
    return parsers.re(r"(?P<minute>\d+) minutes? in, " + step)


@when(minutes_in(r'the customer picks the frame "(?P<frame>[^"]+)"'))
def picks_frame(kiosk: Kiosk, minute: str, frame: str) -> None:
    kiosk.at_minute(int(minute))
    kiosk.send("events", kiosk.event("frame_chosen", frame))


@when(minutes_in(r"the customer takes (?P<count>\d+) photos, captured in (?P<times>.+) ms"))
def takes_photos(kiosk: Kiosk, minute: str, count: str, times: str) -> None:
    kiosk.at_minute(int(minute))
    captures = [float(ms) for ms in re.findall(r"\d+", times)]
    assert len(captures) == int(count)
    kiosk.send("events", *(kiosk.event("photo_taken", str(n + 1)) for n in range(len(captures))))
    kiosk.send("metrics", *(kiosk.metric("capture", ms) for ms in captures))


@when(minutes_in(r"the customer pays (?P<paid>\S+ [A-Z]{3}) (?:by|in) (?P<method>\w+)"))
def pays(kiosk: Kiosk, minute: str, paid: str, method: str) -> None:
    kiosk.at_minute(int(minute))
    kiosk.pay(paid, method)


@when(minutes_in(r"the photos print in (?P<seconds>\d+) seconds"))
def prints(kiosk: Kiosk, minute: str, seconds: str) -> None:
    kiosk.at_minute(int(minute))
    kiosk.send("events", kiosk.event("printed"))
    kiosk.send("metrics", kiosk.metric("print", int(seconds) * 1000))


@when(minutes_in("the customer leaves"))
def leaves(kiosk: Kiosk, minute: str) -> None:
    kiosk.at_minute(int(minute))
    kiosk.leave()


@then(
    parsers.parse(
        "the session is completed, {minutes:d} minutes long, and its events tell the visit:"
    )
)
def visit_told(api: Api, kiosk: Kiosk, minutes: int, datatable: Table) -> None:
    session = session_of(api, kiosk)
    assert (session["status"], session["duration_seconds"], session["event_gaps"]) == (
        "completed",
        minutes * 60,
        [],
    )
    start = instant(session["started_at"])
    events: dict[str, Column] = {
        "minute": (lambda event: (instant(event["at"]) - start) // timedelta(minutes=1), int),
        "event": value("type"),
        "label": value("label", or_blank),
    }
    reads(read(api, f"/v1/sessions/{session['id']}/events"), datatable, events)


@then(
    parsers.re(
        r"the session's sale is (?P<paid>\S+ [A-Z]{3}) by (?P<method>\w+), waiting for settlement"
    )
)
def sale_waiting(api: Api, kiosk: Kiosk, paid: str, method: str) -> None:
    (sale,) = read(api, "/v1/sales", session_id=kiosk.session["id"])
    amount, currency = paid.split()
    assert (Decimal(sale["amounts"]["net"]), sale["currency"], sale["payment_method"]) == (
        Decimal(amount),
        currency,
        method,
    )
    assert (sale["status"], sale["settlement"]["state"]) == ("completed", "pending")


@then(parsers.parse('the performance of "{device}" reads:'))
def performance_of_kiosk(api: Api, device: str, datatable: Table) -> None:
    rows = read(api, "/v1/reports/performance", group_by="device_id")
    reads([row for row in rows if row["group"] == device], datatable, PERFORMANCE)


# --- errors -----------------------------------------------------------------------------------


def printer_jam(line: int, job: str, lost: str) -> Body:
    """A jam as a build reports it: where it crashed and the print job differ on every kiosk."""
    amount, currency = lost.split()
    return {
        "severity": "fatal",
        "type": "PrinterError",
        "code": "JAM",
        "message": f"paper jam on job {job}",
        "stack_trace": (
            "Traceback (most recent call last):\n"
            f'  File "kiosk/printing.py", line {line}, in print_sheet\n'
            "    self.printer.feed(sheet)\n"
            f"PrinterError: paper jam on job {job}\n"
        ),
        "impact": {
            "session_interrupted": True,
            "sale_lost": True,
            "estimated_loss": {"amount": amount, "currency": currency},
        },
    }


PAPER_OUT = {
    "severity": "warning",
    "type": "PrinterError",
    "code": "PAPER_OUT",
    "message": "the printer is out of paper",
}


@when("the printer jams while a customer waits for the prints, and the customer walks away:")
def printers_jam(fleet: Fleet, datatable: Table) -> None:
    header, *rows = datatable
    assert header == ["kiosk", "crash at line", "print job", "sale lost"]
    for device, line, job, lost in rows:
        kiosk = fleet[device]
        kiosk.start()
        kiosk.at_minute(4)
        kiosk.send("errors", kiosk.error(**printer_jam(int(line), job, lost)))
        kiosk.at_minute(5)
        kiosk.leave("abandoned")


@when(minutes_in("the printer runs out of paper"))
def paper_out(kiosk: Kiosk, minute: str) -> None:
    kiosk.at_minute(int(minute))
    kiosk.send("errors", kiosk.error(**PAPER_OUT))


@then("the error report reads, most frequent first:")
def error_report(api: Api, datatable: Table) -> None:
    reads(read(api, "/v1/reports/errors"), datatable, ERROR_GROUPS)


SEOUL = ZoneInfo("Asia/Seoul")
DAYS_AGO = {"two days ago": 2, "yesterday": 1}
FAULTS = {
    "paper jam": {"type": "PrinterError", "code": "JAM", "message": "paper jam"},
    "out of paper": PAPER_OUT,
}


def seoul_day(clock: FakeClock, day: str) -> date:
    """`yesterday`, `two days ago`: a day of Seoul's calendar before the story's today there."""
    return clock.now().astimezone(SEOUL).date() - timedelta(days=DAYS_AGO[day])


@given("the operator's kiosks stand in Seoul")
def kiosks_in_seoul(api: Api) -> None:
    response = api.client.put("/v1/settings", json={"time_zone": "Asia/Seoul"}, headers=api.admin)
    assert response.status_code == 200, response.text


@given("the kiosks reported these faults, in Seoul's time:")
def faults_in_seoul(fleet: Fleet, clock: FakeClock, datatable: Table) -> None:
    header, *rows = datatable
    assert header == ["kiosk", "day", "at", "fault", "severity"]
    for device, day, at, fault, severity in rows:
        local = datetime.combine(seoul_day(clock, day), time.fromisoformat(at), SEOUL)
        fields = {**FAULTS[fault], "severity": severity, "at": local.isoformat()}
        kiosk = fleet[device]
        kiosk.send("errors", kiosk.error(**fields))


@then("the error report per day reads, oldest day first, then most frequent first:")
def error_report_per_day(api: Api, clock: FakeClock, datatable: Table) -> None:
    day: Column = (lambda group: group["day"], lambda cell: seoul_day(clock, cell).isoformat())
    reads(read(api, "/v1/reports/errors", group_by="day"), datatable, {**ERROR_GROUPS, "day": day})


# --- performance ------------------------------------------------------------------------------


@when("the kiosks capture photos in these times:")
def capture_times(fleet: Fleet, datatable: Table) -> None:
    header, *rows = datatable
    assert header == ["kiosk", "photos", "each in"]
    for device, photos, each in rows:
        kiosk = fleet[device]
        ms = float(each.removesuffix(" ms"))
        kiosk.send("metrics", *(kiosk.metric("capture", ms) for _ in range(int(photos))))


@then("the capture times per app version read:")
def capture_per_version(api: Api, datatable: Table) -> None:
    rows = read(api, "/v1/reports/performance", type="capture", group_by="app_version")
    reads(rows, datatable, PERFORMANCE)


# --- sales ------------------------------------------------------------------------------------


@given("the day's sales:", target_fixture="day")
def days_sales(api: Api, fleet: Fleet, datatable: Table) -> dict[str, Body]:
    """Each sale is a customer of its own, who pays 3 minutes in and leaves 5 minutes in."""
    header, *rows = datatable
    assert header == ["sale", "kiosk", "paid", "by"]
    for sale, device, paid, method in rows:
        kiosk = fleet[device]
        kiosk.start()
        kiosk.at_minute(3)
        kiosk.pay(paid, method, sale)
        kiosk.at_minute(5)
        kiosk.leave()
    return {sale["id"]: sale for sale in read(api, "/v1/sales")}


def move_settlement(api: Api, sale: str, **body: str) -> Any:
    return api.client.patch(f"/v1/sales/{sale}/settlement", json=body, headers=api.admin)


@when(
    parsers.parse("the card acquirer's settlement batch \"{batch}\" settles the day's card sales")
)
def settlement_batch(api: Api, clock: FakeClock, batch: str) -> None:
    for sale in read(api, "/v1/sales", state="pending"):
        if sale["payment_method"] == "card":
            processed_at = clock.now().isoformat()
            response = move_settlement(
                api, sale["id"], state="settled", batch_id=batch, processed_at=processed_at
            )
            assert response.status_code == 200, response.text


@then("the day's sales stand:")
def sales_stand(api: Api, datatable: Table) -> None:
    reads(sorted(read(api, "/v1/sales"), key=lambda sale: sale["id"]), datatable, SALES)


@then("the sales report by kiosk reads:")
def sales_report(api: Api, datatable: Table) -> None:
    reads(read(api, "/v1/reports/sales", group_by="device_id"), datatable, SALES_TOTALS)


@then(parsers.parse('sale "{sale}" cannot go back to pending: it says it is {state}'))
def cannot_go_back(api: Api, sale: str, state: str) -> None:
    response = move_settlement(api, sale, state="pending")
    assert response.status_code == 409, response.text
    assert (response.json()["error"], response.json()["current_state"]) == ("conflict", state)


@when(
    parsers.re(
        r'later that day, refund "(?P<refund>[^"]+)" gives back (?P<paid>\S+ [A-Z]{3}) of sale '
        r'"(?P<sale>[^"]+)", as .+'
    )
)
def refund(
    clock: FakeClock, fleet: Fleet, day: dict[str, Body], refund: str, paid: str, sale: str
) -> None:
    clock.advance(2 * 3600)
    kiosk, body = refund_of(fleet, day, refund, paid, sale)
    kiosk.send("sales", body)


def refund_of(
    fleet: Fleet, day: dict[str, Body], refund: str, paid: str, sale: str
) -> tuple["Kiosk", Body]:
    """The kiosk that made the sale, and its refund's body."""
    original = day[sale]
    kiosk = fleet[original["device_id"]]
    body = kiosk.sale(
        paid,
        original["payment_method"],
        refund,
        session_id=original["session_id"],
        status="refunded",
        refund_of=sale,
    )
    return kiosk, body


@when(
    parsers.parse('refund "{refund}" would give back {paid} of sale "{sale}"'),
    target_fixture="refund_answer",
)
def refund_too_large(
    fleet: Fleet, day: dict[str, Body], refund: str, paid: str, sale: str
) -> Outcome:
    kiosk, body = refund_of(fleet, day, refund, paid, sale)
    return kiosk.post("sales", [body])


@then(parsers.parse('it is refused: only {left} of sale "{sale}" is left to give back'))
def refund_refused(refund_answer: Outcome, left: str, sale: str) -> None:
    assert (refund_answer.inserted, refund_answer.failed) == (0, 1), refund_answer
    (why,) = refund_answer.why
    answer = json.loads(why)
    assert answer["error"] == "validation_error", answer
    message = f"is more than the {left} left to refund of sale {sale}"
    assert answer["fields"] == [{"field": "amounts.net", "message": message}], answer


@then(parsers.parse('the sales of the session of sale "{sale}" are, newest first:'))
def sales_of_session(api: Api, day: dict[str, Body], sale: str, datatable: Table) -> None:
    reads(read(api, "/v1/sales", session_id=day[sale]["session_id"]), datatable, SALES)


# --- a kiosk offline --------------------------------------------------------------------------


def counted(api: Api, kiosk: Kiosk) -> dict[str, int]:
    """The kiosk's records as the stores count them: its session's events, and its errors,
    metrics and sales in the reports."""

    def of_kiosk(rows: list[Body]) -> int:
        return sum(row["count"] for row in rows if row["group"] == kiosk.device)

    errors = read(api, "/v1/reports/errors", device_id=kiosk.device)
    return {
        "events": session_of(api, kiosk)["event_count"],
        "errors": sum(group["count"] for group in errors),
        "metrics": of_kiosk(read(api, "/v1/reports/performance", group_by="device_id")),
        "sales": of_kiosk(read(api, "/v1/reports/sales", group_by="device_id")),
    }


@when(
    "an hour later the network comes back, and the kiosk sends the customer's exit, then "
    "everything else it kept",
    target_fixture="sent",
)
def network_back(clock: FakeClock, kiosk: Kiosk) -> dict[str, Outcome]:
    clock.advance(3600)
    kiosk.online = True
    return kiosk.send_kept()


@then("the kiosk's records are all stored, and counted in the reports:")
def all_counted(api: Api, kiosk: Kiosk, sent: dict[str, Outcome], datatable: Table) -> None:
    header, *rows = datatable
    assert header == ["record", "count"]
    expected = {kind: int(count) for kind, count in rows}
    assert counted(api, kiosk) == expected
    assert sent == {kind: Outcome(count, 0, 0) for kind, count in expected.items()}, sent


@when("the kiosk sends everything it kept again, as it never heard back", target_fixture="sent")
def sends_again(kiosk: Kiosk) -> dict[str, Outcome]:
    return kiosk.send_kept()


@then(
    "the kiosk is told each record was already stored and its exit is a replay, and nothing is "
    "added"
)
def nothing_added(api: Api, kiosk: Kiosk, sent: dict[str, Outcome]) -> None:
    kept = {kind: len(records) for kind, records in kiosk.kept.items()}
    assert sent == {kind: Outcome(0, count, 0) for kind, count in kept.items()}, sent
    assert counted(api, kiosk) == kept
    assert kiosk.kept_exit is not None
    assert instant(kiosk.session["ended_at"]) == instant(kiosk.kept_exit["at"])
