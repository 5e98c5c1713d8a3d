"""Steps of features/live_sessions.feature. Steps are synchronous: pytest-bdd cannot await.

The story's time is the app's fake clock. The BDD app runs no background jobs, so the reaper runs
when the story says: once ("the reaper runs"), or on a schedule ("the reaper runs every 3
minutes") that the steps moving time honour, as the server's scheduler would.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from application.sessions.reap_stale_sessions import ReapStaleSessionsCommand
from tests.app_client import Api
from tests.fakes import FakeClock
from tests.livekit_server import API_KEY, LiveKitServer

scenarios("live_sessions.feature")

Webhook = tuple[str, dict[str, str]]
UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def seconds_of(amount: str, unit: str) -> int:
    return int(amount) * UNITS[unit.rstrip("s")]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass
class Story:
    """What the story has done so far, as the API answered it."""

    start: datetime | None = None  # when the session of the story started
    session: dict[str, Any] = field(default_factory=dict)
    end: datetime | None = None  # when the story's session ended, as the story had it end
    last_word: datetime | None = None  # the latest sign of life the client sent
    sequence_no: int = 0
    buffer: list[dict[str, Any]] = field(default_factory=list)  # events the kiosk kept
    exit_body: dict[str, Any] | None = None  # the exit the kiosk kept
    sent: tuple[str, ...] = ()  # what the kiosk sent when its network came back, in order
    outcomes: list[dict[str, Any]] = field(default_factory=list)  # answers to event batches
    exits: list[Any] = field(default_factory=list)  # answers to exits
    observed: list[tuple[str, datetime, datetime | None]] = field(default_factory=list)

    def at(self, minutes: float) -> datetime:
        assert self.start is not None
        return self.start + timedelta(minutes=minutes)


@pytest.fixture
def story() -> Story:
    return Story()


@dataclass
class Reaper:
    """The reaper, run by hand or on a schedule while the story moves the clock."""

    api: Api
    clock: FakeClock
    every: timedelta | None = None
    last_run: datetime | None = None
    # Called after each scheduled run: what the story wants to see of the sessions then.
    observers: list[Callable[[], None]] = field(default_factory=list)

    def run(self) -> None:
        self.api.run(self.api.container.jobs.reap_stale_sessions(), ReapStaleSessionsCommand())
        self.last_run = self.clock.now()

    def pass_time(
        self, seconds: float, tick: float = 60, each: Callable[[], None] | None = None
    ) -> None:
        """Move the clock `seconds` on in ticks; after each tick the client does `each`, and the
        reaper runs when its schedule says so."""
        until = self.clock.now() + timedelta(seconds=seconds)
        while self.clock.now() < until:
            self.clock.advance(min(tick, (until - self.clock.now()).total_seconds()))
            if each is not None:
                each()
            if self.every is None or self.last_run is None:
                continue
            if self.clock.now() - self.last_run >= self.every:
                self.run()
                for observe in self.observers:
                    observe()

    def pass_until(self, at: datetime, tick: float = 60) -> None:
        self.pass_time((at - self.clock.now()).total_seconds(), tick)


@pytest.fixture
def reaper(api: Api, clock: FakeClock) -> Reaper:
    return Reaper(api, clock)


# --- talking to the app ------------------------------------------------------------------------


def session_of(api: Api, session_id: str) -> dict[str, Any]:
    response = api.client.get(f"/v1/sessions/{session_id}", headers=api.app)
    assert response.status_code == 200, response.text
    return dict(response.json())


def current(api: Api, story: Story) -> dict[str, Any]:
    story.session = session_of(api, story.session["id"])
    return story.session


def event(story: Story, at: datetime, type: str = "tap", **fields: Any) -> dict[str, Any]:
    story.sequence_no += 1
    return {
        "session_id": story.session["id"],
        "sequence_no": story.sequence_no,
        "type": type,
        "at": at.isoformat(),
        **fields,
    }


def send(api: Api, story: Story, events: list[dict[str, Any]]) -> dict[str, Any]:
    response = api.client.post("/v1/events/batch", json={"events": events}, headers=api.app)
    assert response.status_code == 200, response.text
    outcome = dict(response.json())
    story.outcomes.append(outcome)
    return outcome


def heartbeat(api: Api, story: Story) -> None:
    path = f"/v1/sessions/{story.session['id']}/heartbeat"
    response = api.client.post(path, json={}, headers=api.app)
    assert response.status_code == 200, response.text


def exit_session(api: Api, story: Story, body: dict[str, Any]) -> Any:
    path = f"/v1/sessions/{story.session['id']}/exit"
    response = api.client.post(path, json=body, headers=api.app)
    story.exits.append(response)
    return response


def put_settings(api: Api, **changes: Any) -> dict[str, Any]:
    response = api.client.put("/v1/settings", json=changes, headers=api.admin)
    assert response.status_code == 200, response.text
    return dict(response.json())


def put_rate(api: Api, kind: str, **rate: Any) -> None:
    response = api.client.put(f"/v1/rates/{kind}", json=rate, headers=api.admin)
    assert response.status_code == 200, response.text


def ledger_of_session(api: Api, subject: str, session_id: str) -> list[dict[str, Any]]:
    response = api.client.get(
        f"/v1/accounts/{subject}/credits/ledger", params={"limit": 500}, headers=api.admin
    )
    assert response.status_code == 200, response.text
    return [e for e in response.json()["items"] if e["session_id"] == session_id]


def deliver(api: Api, webhook: Webhook) -> None:
    raw, headers = webhook
    response = api.client.post("/v1/webhooks/livekit", content=raw, headers=headers)
    assert response.status_code == 200, response.text


def stay_of(api: Api, who: str, room: str) -> dict[str, Any]:
    found = api.client.get(
        "/v1/sessions", params={"resource_id": room, "subject_id": who}, headers=api.admin
    )
    assert found.status_code == 200, found.text
    (stay,) = found.json()["items"]
    return dict(stay)


# --- the reaper's schedule ---------------------------------------------------------------------


@given(parsers.parse("the reaper runs every {minutes:d} minutes"))
def reaper_schedule(reaper: Reaper, clock: FakeClock, minutes: int) -> None:
    reaper.every = timedelta(minutes=minutes)
    reaper.last_run = clock.now()


@when("the reaper runs")
def reaper_runs(reaper: Reaper) -> None:
    reaper.run()


def observe_each_reap(api: Api, reaper: Reaper, story: Story) -> None:
    """After each scheduled run, note the story's session status and last sign of life, next to
    the latest sign of life its client had sent by then."""

    def observe() -> None:
        seen = current(api, story)
        story.observed.append((seen["status"], instant(seen["last_seen_at"]), story.last_word))

    reaper.observers.append(observe)


def never_closed_by_reaper(reaper: Reaper, story: Story) -> None:
    assert reaper.every is not None and story.start is not None and reaper.last_run is not None
    runs = (reaper.last_run - story.start) // reaper.every
    assert runs >= 2 and len(story.observed) >= runs, (runs, story.observed)
    for status, last_seen, last_word in story.observed:
        assert (status, last_seen) == ("active", last_word)


# --- LiveKit -----------------------------------------------------------------------------------


def happened(server: LiveKitServer, who: str, joined: datetime, at: datetime, what: str) -> Any:
    camera, screen = f"TR_cam_{who}", f"TR_screen_{who}"
    webhooks: dict[str, list[Webhook]] = {
        "joined": [server.joined(who, at)],
        "joined with her camera on": [
            server.joined(who, at),
            server.track("track_published", who, joined, camera, "CAMERA", at),
        ],
        "started sharing her screen": [
            server.track("track_published", who, joined, screen, "SCREEN_SHARE", at)
        ],
        "stopped sharing her screen": [
            server.track("track_unpublished", who, joined, screen, "SCREEN_SHARE", at)
        ],
        "left": [server.left(who, joined, at)],
    }
    return webhooks[what]


@when(
    parsers.parse(
        'the bootcamp\'s LiveKit server reports what participant "{who}" did in room "{room}":'
    )
)
def livekit_reports(
    api: Api,
    clock: FakeClock,
    reaper: Reaper,
    story: Story,
    who: str,
    room: str,
    datatable: list[list[str]],
) -> None:
    server = LiveKitServer(room=room)
    story.start = joined = clock.now()
    header, *rows = datatable
    assert header == ["minute", "what happened"]
    for minute, what in rows:
        reaper.pass_until(story.at(int(minute)))
        for webhook in happened(server, who, joined, clock.now(), what):
            deliver(api, webhook)
        story.last_word = clock.now()
        if not story.session:
            story.session = stay_of(api, who, room)
            observe_each_reap(api, reaper, story)


@then(
    parsers.parse(
        'each time the reaper ran, the stay of "{who}" was open, last seen at LiveKit\'s '
        "latest word about her"
    )
)
def stay_never_reaped(reaper: Reaper, story: Story, who: str) -> None:
    assert story.session["subject_id"] == who
    never_closed_by_reaper(reaper, story)


@then(
    parsers.parse(
        '"{who}" stayed in room "{room}" for {minutes:d} minutes, and her stay is completed'
    )
)
def stayed(api: Api, story: Story, who: str, room: str, minutes: int) -> None:
    stay = stay_of(api, who, room)
    assert stay["id"] == story.session["id"]
    assert (stay["status"], stay["duration_seconds"]) == ("completed", minutes * 60)


@then(
    parsers.parse(
        "her stay records {video:d} minutes of video and {screen:d} minutes of screen share"
    )
)
def stay_usage(api: Api, story: Story, video: int, screen: int) -> None:
    usage = current(api, story)["usage"]
    assert int(usage["video.seconds"]) == video * 60
    assert int(usage["screen_share.seconds"]) == screen * 60


@given(parsers.parse("the bootcamp's LiveKit account has no server URL"))
def no_url(api: Api) -> None:
    response = api.client.put(
        f"/v1/livekit/accounts/{API_KEY}", json={"url": None}, headers=api.admin
    )
    assert response.status_code == 200, response.text
    assert response.json()["url"] is None


@given(parsers.parse("the bootcamp's LiveKit account has the server URL {url}"))
def with_url(api: Api, url: str) -> None:
    response = api.client.put(
        f"/v1/livekit/accounts/{API_KEY}", json={"url": url}, headers=api.admin
    )
    assert response.status_code == 200, response.text
    assert response.json()["url"] == url


@given(parsers.parse('participant "{who}" joined room "{room}"'))
def participant_joined(api: Api, clock: FakeClock, story: Story, who: str, room: str) -> None:
    story.start = clock.now()
    deliver(api, LiveKitServer(room=room).joined(who, story.start))
    story.session = stay_of(api, who, room)


@when(
    parsers.parse(
        'LiveKit says nothing about "{who}" for {hours:d} hours, and then the reaper runs'
    )
)
def livekit_silent(reaper: Reaper, who: str, hours: int) -> None:
    reaper.pass_time(hours * 3600, tick=600)
    reaper.run()


@then(parsers.parse('the stay of "{who}" is still open'))
def stay_open(api: Api, story: Story, who: str) -> None:
    stay = current(api, story)
    assert (stay["subject_id"], stay["status"], stay["ended_at"]) == (who, "active", None)


@then(parsers.parse('the stay of "{who}" is timed out where it was last seen, when she joined'))
def stay_timed_out(api: Api, story: Story, who: str) -> None:
    stay = current(api, story)
    assert (stay["subject_id"], stay["status"]) == (who, "timed_out")
    assert instant(stay["ended_at"]) == instant(stay["last_seen_at"]) == story.start


# --- counseling: signs of life, charges and running cost ----------------------------------------


@given(
    parsers.parse(
        "the counseling app charges {credits:d} credits a minute for a recording, rounded up"
    )
)
def counseling_rate(api: Api, credits: int) -> None:
    put_rate(api, "counseling", credits_per_minute=credits, rounding="ceil")


@given(
    parsers.parse(
        "the counseling app warns when a recording would leave fewer than {credits:d} credits"
    )
)
def low_balance(api: Api, credits: int) -> None:
    assert put_settings(api, low_balance_credits=credits)["low_balance_credits"] == credits


@when(
    parsers.parse(
        '"{name}" records for {minutes:d} minutes, the app posting an analysis every '
        "{seconds:d} seconds and no heartbeat"
    )
)
def records_with_analyses(
    api: Api, clock: FakeClock, reaper: Reaper, story: Story, name: str, minutes: int, seconds: int
) -> None:
    story.session = api.start(kind="counseling", resource_id="recording", subject_id=name)
    story.start = clock.now()
    observe_each_reap(api, reaper, story)

    def analyse() -> None:
        outcome = send(api, story, [event(story, clock.now(), "analysis", label="green")])
        assert outcome["inserted"] == 1, outcome
        story.last_word = clock.now()

    reaper.pass_time(minutes * 60, tick=seconds, each=analyse)


@then("each time the reaper ran, the recording was open, last seen at its latest analysis")
def recording_never_reaped(reaper: Reaper, story: Story) -> None:
    never_closed_by_reaper(reaper, story)


@when("the app ends the recording")
def ends_recording(api: Api, clock: FakeClock, story: Story) -> None:
    response = exit_session(api, story, {})
    assert response.status_code == 200, response.text
    story.end = clock.now()


@then(
    parsers.parse(
        "the recording is completed after {minutes:d} minutes and holds all {count:d} analyses"
    )
)
def recording_completed(api: Api, story: Story, minutes: int, count: int) -> None:
    recording = current(api, story)
    assert (recording["status"], recording["duration_seconds"]) == ("completed", minutes * 60)
    assert story.sequence_no == count
    assert (recording["event_count"], recording["event_gaps"]) == (count, [])


@then(parsers.parse('"{name}" is charged {credits:d} credits for it'))
def recording_charged(api: Api, story: Story, name: str, credits: int) -> None:
    recording = current(api, story)
    assert recording["subject_id"] == name
    assert (recording["charge_state"], recording["charge"]["credits"]) == ("charged", credits)
    entries = ledger_of_session(api, name, recording["id"])
    assert [(e["kind"], e["amount"]) for e in entries] == [("charge", -credits)]


@then(
    parsers.parse("the recording would cost {credits:d} credits if it ended now, leaving {left:d}")
)
def running_cost(api: Api, story: Story, credits: int, left: int) -> None:
    estimate = current(api, story)["charge_estimate"]
    assert estimate is not None
    assert (estimate["credits"], estimate["balance_after"]) == (credits, left)


WARNINGS = {
    "not warned": None,
    "warned that credits are low": "credits_low",
    "warned that credits are exhausted": "credits_exhausted",
}


@then(parsers.re(r"the counselor is (?P<warned>(not warned|warned that credits are \w+))"))
def counselor_warned(api: Api, story: Story, warned: str) -> None:
    assert current(api, story)["charge_estimate"]["warning"] == WARNINGS[warned]


@then("the recording is still running")
def still_running(api: Api, story: Story) -> None:
    recording = current(api, story)
    assert (recording["status"], recording["ended_at"], recording["charge"]) == (
        "active",
        None,
        None,
    )
    assert instant(recording["last_seen_at"]) == story.last_word


# --- idle timeouts -----------------------------------------------------------------------------


@given("the team's idle timeouts are:")
def idle_timeouts(api: Api, datatable: list[list[str]]) -> None:
    header, *rows = datatable
    assert header == ["kind", "idle timeout"]
    changes: dict[str, Any] = {"idle_timeouts": {}}
    for kind, timeout in rows:
        seconds = None if timeout == "never" else seconds_of(*timeout.split())
        if kind == "any other kind":
            changes["idle_timeout_seconds"] = seconds
        else:
            changes["idle_timeouts"][kind] = seconds
    settings = put_settings(api, **changes)
    assert settings["idle_timeouts"] == changes["idle_timeouts"]


@given(
    parsers.re(
        r"a (?P<kind>[a-z_]+) session that gave its last sign of life "
        r"(?P<minutes>\d+) minutes? after it started"
    )
)
def silent_session(api: Api, clock: FakeClock, story: Story, kind: str, minutes: str) -> None:
    story.session = api.start(kind=kind, resource_id=f"{kind}-1", subject_id="user-1")
    story.start = clock.now()
    clock.advance(int(minutes) * 60)
    heartbeat(api, story)


@when(parsers.parse("it stays silent for {minutes:d} minutes and then the reaper runs"))
def stays_silent(reaper: Reaper, minutes: int) -> None:
    reaper.pass_time(minutes * 60)
    reaper.run()


@given(parsers.parse("the team closes any session still running {hours:d} hour after it started"))
def session_cap(api: Api, hours: int) -> None:
    cap = hours * 3600
    assert put_settings(api, max_session_seconds=cap)["max_session_seconds"] == cap


@given(
    parsers.parse(
        "a webinar session that gives a sign of life every {every:d} minutes for {total:d} minutes"
    )
)
def lively_session(
    api: Api, clock: FakeClock, reaper: Reaper, story: Story, every: int, total: int
) -> None:
    story.session = api.start(kind="webinar", resource_id="webinar-1", subject_id="user-1")
    story.start = clock.now()
    reaper.pass_time(total * 60, tick=every * 60, each=lambda: heartbeat(api, story))


@then("the session is still active")
def session_active(api: Api, story: Story) -> None:
    session = current(api, story)
    assert (session["status"], session["ended_at"]) == ("active", None)


@then(parsers.re(r"the session is timed out where it was last seen, (?P<minutes>\d+) minutes? in"))
def session_timed_out(api: Api, story: Story, minutes: str) -> None:
    session = current(api, story)
    assert session["status"] == "timed_out"
    assert (
        instant(session["ended_at"]) == instant(session["last_seen_at"]) == story.at(int(minutes))
    )
    assert session["duration_seconds"] == int(minutes) * 60


# --- kiosks: provisional ends, late events, charges that follow them ----------------------------


@given(
    parsers.parse(
        "the photo-booth kiosks charge their store {credits:d} credit a minute, rounded up"
    )
)
def kiosk_per_minute(api: Api, credits: int) -> None:
    put_rate(api, "kiosk", credits_per_minute=credits, rounding="ceil")


@given(
    parsers.parse("the photo-booth kiosks charge their store {credits:d} credit per photo printed")
)
def kiosk_per_photo(api: Api, credits: int) -> None:
    put_rate(
        api, "kiosk", credits_per_minute=0, meter_rates={"photos": {"per": 1, "credits": credits}}
    )


def start_kiosk(api: Api, clock: FakeClock, story: Story, booth: str, payer: str) -> None:
    story.session = api.start(kind="kiosk", resource_id=booth, subject_id=payer)
    story.start = clock.now()


@given(
    parsers.parse(
        'a guest session on kiosk "{booth}", paid by store "{store}", reports an event every '
        "{seconds:d} seconds for {minutes:d} minutes"
    )
)
def kiosk_reports(
    api: Api,
    clock: FakeClock,
    reaper: Reaper,
    story: Story,
    booth: str,
    store: str,
    seconds: int,
    minutes: int,
) -> None:
    start_kiosk(api, clock, story, booth, store)

    def report() -> None:
        assert send(api, story, [event(story, clock.now())])["inserted"] == 1
        story.last_word = clock.now()

    reaper.pass_time(minutes * 60, tick=seconds, each=report)


@when(
    parsers.parse(
        "the kiosk loses its network and buffers an event every {seconds:d} seconds until the "
        "guest leaves, {minutes:d} minutes in"
    )
)
def network_lost(
    clock: FakeClock, reaper: Reaper, story: Story, seconds: int, minutes: int
) -> None:
    def buffer() -> None:
        story.buffer.append(event(story, clock.now(), "screen_enter"))

    reaper.pass_time((story.at(minutes) - clock.now()).total_seconds(), tick=seconds, each=buffer)
    story.exit_body = {"at": clock.now().isoformat(), "status": "completed"}
    story.end = clock.now()


@when(parsers.parse("the network comes back {minutes:d} minutes in"))
def network_back(reaper: Reaper, story: Story, minutes: int) -> None:
    reaper.pass_until(story.at(minutes))


@then(
    parsers.parse(
        "the reaper closed the session where the kiosk was last seen, {minutes:d} minutes in, "
        "and charged {credits:d} credits"
    )
)
def reaped_kiosk(api: Api, story: Story, minutes: int, credits: int) -> None:
    session = current(api, story)
    assert session["status"] == "timed_out"
    assert instant(session["ended_at"]) == story.last_word == story.at(minutes)
    assert session["charge"]["credits"] == credits
    entries = ledger_of_session(api, session["subject_id"], session["id"])
    assert [(e["kind"], e["amount"]) for e in entries] == [("charge", -credits)]


def kiosk_sends(api: Api, story: Story, what: str) -> None:
    if what == "its buffered events":
        send(api, story, story.buffer)
    else:
        assert what == "the guest's exit" and story.exit_body is not None
        exit_session(api, story, story.exit_body)


@when(parsers.parse("the kiosk sends {first}, then {second}"))
def sends_back(api: Api, clock: FakeClock, story: Story, first: str, second: str) -> None:
    story.outcomes.clear()
    story.exits.clear()
    for what in (first, second):
        kiosk_sends(api, story, what)
        clock.advance(1)
    story.sent = (first, second)


@when("it sends them all again, as it never heard back")
def sends_again(api: Api, clock: FakeClock, story: Story) -> None:
    for what in story.sent:
        kiosk_sends(api, story, what)
        clock.advance(1)


@then("nothing the kiosk sent was refused")
def nothing_refused(story: Story) -> None:
    assert len(story.outcomes) == 2 and len(story.exits) == 2
    assert all(o["failed"] == 0 and o["errors"] == [] for o in story.outcomes), story.outcomes
    assert [e.status_code for e in story.exits] == [200, 200]
    first, again = story.outcomes
    assert (first["inserted"], again["inserted"]) == (len(story.buffer), 0)
    assert again["duplicates"] == len(story.buffer)
    assert story.exits[1].json()["ended_at"] == story.exits[0].json()["ended_at"]


@then(
    parsers.parse(
        "the session is completed and ends {minutes:d} minutes in, where the guest's exit says"
    )
)
def ends_at_exit(api: Api, story: Story, minutes: int) -> None:
    session = current(api, story)
    assert session["status"] == "completed"
    assert instant(session["ended_at"]) == story.end == story.at(minutes)
    assert session["duration_seconds"] == minutes * 60


@then(parsers.parse("the session counts {count:d} events, each once, with no gaps"))
def counts_events(api: Api, story: Story, count: int) -> None:
    session = current(api, story)
    assert (session["event_count"], session["event_gaps"]) == (count, [])
    page = api.client.get(
        f"/v1/sessions/{session['id']}/events", params={"limit": 500}, headers=api.app
    ).json()
    assert [e["sequence_no"] for e in page["items"]] == list(range(1, count + 1))


@then(
    parsers.parse(
        'store "{store}" was charged {credits:d} credits for the session: its first charge and '
        "exactly one adjustment"
    )
)
def charged_once_adjusted_once(api: Api, story: Story, store: str, credits: int) -> None:
    session = current(api, story)
    assert session["subject_id"] == store
    assert (session["charge_state"], session["charge"]["credits"]) == ("charged", credits)
    entries = ledger_of_session(api, store, session["id"])
    assert sorted(e["kind"] for e in entries) == ["adjustment", "charge"], entries
    assert sum(e["amount"] for e in entries) == -credits
    assert all(e["amount"] < 0 for e in entries), entries


@given(
    parsers.parse(
        'a guest session on kiosk "{booth}", paid by store "{store}", reports events {first:d} '
        "to {last:d} as they happen, each printing a photo"
    )
)
def kiosk_prints(
    api: Api, clock: FakeClock, story: Story, booth: str, store: str, first: int, last: int
) -> None:
    start_kiosk(api, clock, story, booth, store)
    for _ in range(first, last + 1):
        clock.advance(30)
        photo = event(story, clock.now(), "print", meters={"photos": 1})
        story.buffer.append(photo)
        assert send(api, story, [photo])["inserted"] == 1


@given(parsers.parse("the guest leaves {minutes:d} minutes in"))
def guest_leaves(api: Api, clock: FakeClock, story: Story, minutes: int) -> None:
    clock.advance((story.at(minutes) - clock.now()).total_seconds())
    response = exit_session(api, story, {})
    assert response.status_code == 200, response.text
    story.end = clock.now()


@when(
    parsers.parse(
        "the kiosk flushes its buffer: events {first:d} to {last:d}, each printing a photo, all "
        "dated before the guest left"
    )
)
def flushes(api: Api, clock: FakeClock, story: Story, first: int, last: int) -> None:
    assert story.end is not None and story.sequence_no == first - 1
    clock.advance(10)
    flushed = [
        event(
            story, story.end - timedelta(seconds=10 * (last + 1 - n)), "print", meters={"photos": 1}
        )
        for n in range(first, last + 1)
    ]
    story.buffer.extend(flushed)
    outcome = send(api, story, flushed)
    assert (outcome["inserted"], outcome["errors"]) == (len(flushed), []), outcome


@when(
    parsers.parse("the kiosk restarts and replays its whole buffer: events {first:d} to {last:d}")
)
def replays(api: Api, clock: FakeClock, story: Story, first: int, last: int) -> None:
    clock.advance(120)
    assert [e["sequence_no"] for e in story.buffer] == list(range(first, last + 1))
    send(api, story, story.buffer)


@then(parsers.parse("the replay was recognised as {count:d} duplicates"))
def replay_duplicates(story: Story, count: int) -> None:
    replay = story.outcomes[-1]
    assert (replay["inserted"], replay["duplicates"], replay["failed"]) == (0, count, 0)


@then(parsers.parse("the session printed {photos:d} photos"))
def printed(api: Api, story: Story, photos: int) -> None:
    assert current(api, story)["usage"] == {"photos": photos}


@given(
    parsers.re(
        r"a kiosk session that (?P<who>the guest ended|the reaper closed) (?P<minutes>\d+) "
        r"minutes in"
    )
)
def ended_kiosk(
    api: Api, clock: FakeClock, reaper: Reaper, story: Story, who: str, minutes: str
) -> None:
    start_kiosk(api, clock, story, "booth-5", "guest")
    clock.advance(int(minutes) * 60)
    story.end = clock.now()
    if who == "the guest ended":
        response = exit_session(api, story, {})
        assert response.status_code == 200, response.text
        return
    heartbeat(api, story)
    settings = api.client.get("/v1/settings", headers=api.admin).json()
    idle = settings["idle_timeouts"].get("kiosk", settings["idle_timeout_seconds"])
    clock.advance(idle + 60)
    reaper.run()
    session = current(api, story)
    assert (session["status"], instant(session["ended_at"])) == ("timed_out", story.end)


@when(
    parsers.re(
        r"an event dated (?P<dated>at the end|(?P<n>\d+) minutes? (?P<side>before|after) the end) "
        r"arrives (?P<amount>\d+) (?P<unit>minutes|hours|days) after the end"
    )
)
def event_after_end(
    api: Api,
    clock: FakeClock,
    story: Story,
    dated: str,
    n: str | None,
    side: str | None,
    amount: str,
    unit: str,
) -> None:
    assert story.end is not None
    offset = 0 if n is None else int(n) * 60 * (-1 if side == "before" else 1)
    arrival = story.end + timedelta(seconds=seconds_of(amount, unit))
    clock.advance((arrival - clock.now()).total_seconds())
    send(api, story, [event(story, story.end + timedelta(seconds=offset))])


@then("the event is stored")
def event_stored(api: Api, story: Story) -> None:
    outcome = story.outcomes[-1]
    assert (outcome["inserted"], outcome["errors"]) == (1, []), outcome
    session = current(api, story)
    assert session["event_count"] == 1


@then(parsers.re(r"the event is refused (?P<why>because the session has ended|as late)"))
def event_refused(api: Api, story: Story, why: str) -> None:
    error = {"because the session has ended": "session_ended", "as late": "late"}[why]
    outcome = story.outcomes[-1]
    assert (outcome["inserted"], outcome["errors"]) == (0, [{"index": 0, "error": error}])
    assert current(api, story)["event_count"] == 0


@then(
    parsers.re(
        r"the session is (?P<status>completed|abandoned|timed out) "
        r"and ends (?P<minutes>\d+) minutes in"
    )
)
def session_end(api: Api, story: Story, status: str, minutes: str) -> None:
    session = current(api, story)
    assert session["status"] == status.replace(" ", "_")
    assert instant(session["ended_at"]) == story.at(int(minutes))
    assert session["duration_seconds"] == int(minutes) * 60


@when(
    parsers.re(
        r"the kiosk's exit arrives (?P<after>\d+) minutes after the end, saying "
        r'"(?P<status>\w+)" (?:(?P<minutes>\d+) minutes in|with no time)'
    )
)
def kiosk_exit(
    api: Api, clock: FakeClock, story: Story, after: str, status: str, minutes: str | None
) -> None:
    assert story.end is not None
    arrival = story.end + timedelta(minutes=int(after))
    clock.advance((arrival - clock.now()).total_seconds())
    body: dict[str, Any] = {"status": status}
    if minutes is not None:
        body["at"] = story.at(int(minutes)).isoformat()
    exit_session(api, story, body)


@when(
    parsers.re(
        r'another exit arrives a minute later, saying "(?P<status>\w+)" (?P<minutes>\d+) minutes in'
    )
)
def another_exit(api: Api, clock: FakeClock, story: Story, status: str, minutes: str) -> None:
    clock.advance(60)
    exit_session(api, story, {"status": status, "at": story.at(int(minutes)).isoformat()})


@then("the second exit is a replay of the first")
def exit_replayed(story: Story) -> None:
    first, second = story.exits
    assert (first.status_code, second.status_code) == (200, 200), second.text
    keys = ("status", "ended_at", "duration_seconds", "charge")
    assert {k: second.json()[k] for k in keys} == {k: first.json()[k] for k in keys}


@given(
    parsers.re(
        r"the team takes late data for (?P<amount>\d+) (?P<unit>days?|hours?)"
        r"(?P<default> \(the default\))?"
    )
)
def late_window(api: Api, amount: str, unit: str, default: str | None) -> None:
    window = seconds_of(amount, unit)
    if default:
        settings = api.client.get("/v1/settings", headers=api.admin).json()
    else:
        settings = put_settings(api, late_data_window_seconds=window)
    assert settings["late_data_window_seconds"] == window
