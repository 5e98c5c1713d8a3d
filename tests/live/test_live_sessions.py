"""Live traffic on a real server whose background jobs run (the reaper every second, the tenant's
idle timeout 10 s): clients in real time with present-time data, judged by the API's answers.

Every scenario runs at once against one server per store (tests/live/conftest.py); each test
judges one scenario's record of what it sent and what came back.
"""

from datetime import date, time, timedelta
from math import ceil
from zoneinfo import ZoneInfo

import pytest

from tests.live.conftest import LiveRun
from tests.live.scenarios import (
    CAPTURES,
    CHUNK_BYTES,
    COUNSELING_IDLE_SECONDS,
    COUNSELING_SECONDS,
    ERASED_LEAVING_SESSIONS,
    FLUSHED_EVENTS,
    GAPPED_BATCH_EVENTS,
    GAPPED_BATCHES,
    GRANTS,
    IDLE_TIMEOUT_SECONDS,
    LATE_EVENTS,
    LOST_BATCH,
    MIDWAY_SECONDS,
    RATES,
    RESENT_BATCH,
    STORE_VISITS,
    STUDIO_GRANT,
    TAPS_PER_BATCH,
    WALK_SNAPSHOTS,
    AllHands,
    AppExit,
    Archived,
    Clinic,
    Counseling,
    DeletedRecording,
    ErasedLeaving,
    Flush,
    Forgotten,
    Gapped,
    Json,
    KioskDay,
    LateCamera,
    LateJoin,
    LateTelemetry,
    Moved,
    Reconciled,
    Retained,
    Return,
    ReturningBooth,
    Stay,
    StoreDays,
    TrialWeek,
    Uploads,
    Walked,
    instant,
    per_store,
    price,
    started_in,
    telemetry_of,
)

pytestmark = pytest.mark.slow

LIVEKIT_SLACK_SECONDS = 2  # LiveKit stamps whole seconds: each end is up to 1 s early


def test_a_livekit_stay_longer_than_the_idle_timeout_lasts_as_long_as_its_webhooks_say(
    live: LiveRun,
) -> None:
    stay: Stay = live.outcome("livekit_stay")
    real_seconds = (stay.left_at - stay.joined_at).total_seconds()

    # Past the idle timeout and several reaper runs with no sign of life, still open.
    assert stay.quiet_seconds >= MIDWAY_SECONDS > IDLE_TIMEOUT_SECONDS + 1
    assert (stay.midway["status"], stay.midway["ended_at"]) == ("active", None), stay.midway
    assert stay.final["status"] == "completed", stay.final
    assert abs(stay.final["duration_seconds"] - real_seconds) <= LIVEKIT_SLACK_SECONDS, stay.final
    video = float(stay.final["usage"].get("video.seconds", 0))
    camera_seconds = (stay.left_at - stay.published_at).total_seconds()
    assert abs(video - camera_seconds) <= LIVEKIT_SLACK_SECONDS, stay.final


def test_a_camera_published_as_its_participant_leaves_ends_with_the_stay(live: LiveRun) -> None:
    """Both webhooks are handled at once, so the `left` may look for open tracks before the
    camera is recorded: its seconds still count, and no track stays open."""
    meeting: AllHands = live.outcome("all_hands")

    assert sorted(meeting.stays) == sorted(meeting.camera_seconds)
    for who, stay in meeting.stays.items():
        assert stay["status"] == "completed", stay
        assert float(stay["usage"].get("video.seconds", 0)) == meeting.camera_seconds[who], stay


def test_a_room_closed_with_its_participants_in_it_counts_each_camera_to_its_own_end(
    live: LiveRun,
) -> None:
    """Lefts, cameras' ends and the room's end are handled at once: a camera ends when LiveKit
    said it did, else when its participant left."""
    room: AllHands = live.outcome("closing_room")

    assert sorted(room.stays) == sorted(room.camera_seconds)
    for who, stay in room.stays.items():
        assert stay["status"] == "completed", stay
        assert float(stay["usage"].get("video.seconds", 0)) == room.camera_seconds[who], stay


def test_a_join_delivered_after_its_room_finished_ends_with_the_room(live: LiveRun) -> None:
    """Its `left` never comes and LiveKit stays are never idle: without the room's end the stay
    would stay open until the session cap."""
    late: LateJoin = live.outcome("late_join")

    stay = late.stays["latecomer"]
    assert (stay["status"], stay["exit_reason"]) == ("completed", "room_finished"), stay
    assert instant(stay["ended_at"]) == late.finished_at.replace(microsecond=0), stay


def test_a_left_delivered_after_its_room_finished_ends_the_stay_when_she_left(
    live: LiveRun,
) -> None:
    """The room's end is a guess that her own `left`, arriving later, replaces."""
    late: LateJoin = live.outcome("late_join")

    stay = late.stays["early-leaver"]
    assert (stay["status"], stay["exit_reason"]) == ("completed", None), stay
    assert instant(stay["ended_at"]) == late.left_at.replace(microsecond=0), stay


def test_a_stay_whose_left_never_came_is_ended_by_reconciliation_when_last_seen(
    live: LiveRun,
) -> None:
    """While the participant is in the room, reconciliation keeps the stay open; once LiveKit's
    server says she is gone, it ends at its last sign of life as stored: the camera's end,
    which came after she left the room."""
    reconciled: Reconciled = live.outcome("reconciled_stay")

    assert reconciled.present["status"] == "active", reconciled.present
    final = reconciled.final
    assert (final["status"], final["exit_reason"]) == ("completed", "reconciled"), final
    ended_at = instant(final["ended_at"])
    assert ended_at == instant(final["last_seen_at"]), final
    assert ended_at >= reconciled.unpublished_at.replace(microsecond=0), final
    assert float(final["usage"]["video.seconds"]) > 0, final


def test_a_cameras_end_delivered_after_its_left_charges_the_stay_again_for_the_shorter_camera(
    live: LiveRun,
) -> None:
    """Charged first with the camera on until she left, then, once its own earlier end came,
    again for the seconds it was really on (a credit a second): one correction, from her grant,
    the books balanced."""
    run: LateCamera = live.outcome("late_camera")

    before, after = run.at_left, run.final
    seconds = after["usage"]["video.seconds"]
    assert before["usage"]["video.seconds"] > seconds >= 0, (before, after)
    assert (after["charge_state"], after["charge"]["credits"]) == ("charged", seconds), after
    assert after["charge"]["balance_after"] == STUDIO_GRANT - seconds, after
    entries = run.ledger["items"]
    assert sum(e["amount"] for e in entries) == STUDIO_GRANT - seconds, entries
    assert [e["kind"] for e in entries if e["kind"] != "grant"] == ["charge", "adjustment"], entries


def test_a_stay_the_product_ends_ends_its_camera_with_it(live: LiveRun) -> None:
    """The back end's exit, not a `left`, ends the stay: the camera, still on, ends there too,
    and the stay is charged for its seconds (a credit a second), once, from the host's grant."""
    run: AppExit = live.outcome("app_exit")

    stay = run.final
    on = (instant(stay["ended_at"]) - instant(stay["started_at"])).total_seconds()
    assert (stay["status"], stay["ended_at"]) == ("completed", run.exited["ended_at"]), stay
    assert on >= 3 and stay["usage"].get("video.seconds") == on, stay
    assert (stay["charge_state"], stay["charge"]["credits"]) == ("charged", on), stay
    assert run.exited["usage"] == stay["usage"], run.exited  # the exit answers with the camera
    entries = run.ledger["items"]
    assert sum(e["amount"] for e in entries) == STUDIO_GRANT - on, entries


def test_a_subjects_exits_at_once_are_each_charged_from_the_balance_the_others_left(
    live: LiveRun,
) -> None:
    """Taken in the order of their balances, each charge leaves the one before less itself:
    no two decided from one balance. On the SQL stores each exit answers with its own charge:
    none is left to the reaper because the others took the subject's turn. (MongoDB's
    settlements wait for the subject's turn a few seconds, then leave it to the reaper.)"""
    clinic: Clinic = live.outcome("clinic_hour")

    assert_charged_one_after_another(clinic.granted, clinic.sessions)
    if live.store != "mongodb":
        assert_charged_one_after_another(clinic.granted, clinic.answers)


def assert_charged_one_after_another(granted: int, sessions: list[Json]) -> None:
    """Taken in the order of their balances, each charge leaves the one before less itself."""
    charges = sorted((s["charge"] for s in sessions), key=lambda c: -c["balance_after"])
    assert all(s["charge_state"] == "charged" for s in sessions), sessions
    balance = granted
    for charge in charges:
        balance -= charge["credits"]
        assert charge["balance_after"] == balance, charges


def test_a_session_sending_events_and_no_heartbeat_is_alive_and_charged_for_its_whole_time(
    live: LiveRun,
) -> None:
    run: Counseling = live.outcome("counseling")
    rate, granted = RATES["counseling"], GRANTS[run.subject_id]
    started_at = instant(run.started["started_at"])

    assert [batch["inserted"] for batch in run.batches] == [1] * len(run.batches), run.batches
    # Read past its idle timeout after its start: the events kept it alive.
    last = run.readings[-1]
    assert (last.sent_at - started_at).total_seconds() > COUNSELING_IDLE_SECONDS + 1
    for reading in run.readings:
        session, estimate = reading.session, reading.session["charge_estimate"]
        assert session["status"] == "active" and session["ended_at"] is None, session
        assert estimate is not None, session
        # As if it ended now: between the prices at the read's sending and answering (±1 for
        # instants kept to the millisecond).
        low = ceil((reading.sent_at - started_at).total_seconds() * rate / 60) - 1
        high = ceil((reading.answered_at - started_at).total_seconds() * rate / 60) + 1
        assert low <= estimate["credits"] <= high, (reading.sent_at, reading.answered_at, session)
        assert estimate["balance_after"] == granted - estimate["credits"], session

    final = run.final
    assert run.exit == final
    assert final["status"] == "completed" and final["event_count"] == len(run.batches), final
    assert final["started_at"] == run.started["started_at"], final
    # Its whole time: from its start to its exit (sent COUNSELING_SECONDS after the start).
    assert instant(final["ended_at"]) <= run.exit_answered_at, final
    assert final["duration_seconds"] >= COUNSELING_SECONDS, final
    assert final["charge"]["credits"] == price(final, rate) > 0, final
    assert final["charge"]["balance_after"] == granted - final["charge"]["credits"], final
    entries = [e for e in run.entries if e["session_id"] == final["id"]]
    assert [(e["kind"], e["amount"]) for e in entries] == [
        ("charge", -final["charge"]["credits"])
    ], run.entries


def test_events_a_kiosk_flushes_after_its_exit_are_all_kept(live: LiveRun) -> None:
    run: Flush = live.outcome("kiosk_flush")

    assert instant(run.exit["ended_at"]) == run.exited_at > max(run.stamps), run.exit
    assert run.flush == {"inserted": FLUSHED_EVENTS, "duplicates": 0, "failed": 0, "errors": []}
    final = run.final
    assert (final["status"], final["ended_at"]) == ("completed", run.exit["ended_at"]), final
    assert final["event_count"] == FLUSHED_EVENTS and final["event_gaps"] == [], final
    assert final["usage"].get("taps") == FLUSHED_EVENTS, final
    assert [e["sequence_no"] for e in run.stored] == list(range(1, FLUSHED_EVENTS + 1))
    assert [instant(e["at"]) for e in run.stored] == run.stamps


def test_a_kiosk_that_lost_a_batch_counts_every_later_one_and_its_exit_names_the_gap(
    live: LiveRun,
) -> None:
    """And a batch sent again with the next one's events counts only those."""
    run: Gapped = live.outcome("lost_batch")
    arrived = GAPPED_BATCHES - 1
    lost_from = LOST_BATCH * GAPPED_BATCH_EVENTS + 1

    assert [(b["inserted"], b["duplicates"]) for b in run.batches] == [
        (GAPPED_BATCH_EVENTS, GAPPED_BATCH_EVENTS if n == RESENT_BATCH + 1 else 0)
        for n in range(GAPPED_BATCHES)
        if n != LOST_BATCH
    ], run.batches
    exit = run.exit
    # Alive past the idle timeout on its events alone, and closed by its exit.
    assert exit["status"] == "completed", exit
    assert exit["duration_seconds"] > IDLE_TIMEOUT_SECONDS, exit
    assert exit["event_count"] == arrived * GAPPED_BATCH_EVENTS == exit["usage"]["taps"], exit
    assert exit["event_gaps"] == [[lost_from, lost_from + GAPPED_BATCH_EVENTS - 1]], exit


def test_chunks_sent_again_in_overlapping_batches_at_once_are_kept_as_answered_up_to_the_cap(
    live: LiveRun,
) -> None:
    """An uploader near its recording's meter cap sends its chunks in overlapping batches, all
    at once. API.md: a duplicate is an event already stored; DESIGN.md: a success answer means
    the write is durable. So every chunk an answer calls inserted or a duplicate is kept, each
    kept chunk was inserted by one answer, the cap takes six of the ten, and the usage is the
    sum of the chunks kept."""
    run: Uploads = live.outcome("overlapping_uploads")
    failed = {(n, e["index"]) for n, answer in enumerate(run.answers) for e in answer["errors"]}
    answered_stored = {
        chunk["sequence_no"]
        for n, batch in enumerate(run.batches)
        for i, chunk in enumerate(batch["events"])
        if (n, i) not in failed
    }
    kept = [e["sequence_no"] for e in run.stored]
    seen = (run.answers, kept, run.final)

    assert answered_stored <= set(kept), seen
    assert len(kept) == 6 == sum(answer["inserted"] for answer in run.answers), seen
    assert run.final["usage"] == {"bytes": CHUNK_BYTES * len(kept)}, seen
    assert run.final["event_count"] == len(kept), seen


def test_a_reaped_kiosk_that_comes_back_ends_at_its_exit_and_is_charged_once_more(
    live: LiveRun,
) -> None:
    run: Return = live.outcome("silent_kiosk")
    rate = RATES["kiosk"]

    # Reaped where it was last seen, not before its idle timeout, and charged for that.
    reaped = run.reaped
    assert reaped["status"] == "timed_out", reaped
    assert instant(reaped["ended_at"]) == instant(reaped["last_seen_at"]) == run.last_sign_of_life
    assert (run.reaped_seen_at - run.last_sign_of_life).total_seconds() >= IDLE_TIMEOUT_SECONDS
    assert reaped["charge_state"] == "charged", reaped
    assert reaped["charge"]["credits"] == price(reaped, rate), reaped

    # Its events dated now move the reaper's end; its exit then replaces it.
    assert run.late_batch["inserted"] == LATE_EVENTS, run.late_batch
    after_events = run.after_events
    assert after_events["status"] == "timed_out", after_events
    assert instant(after_events["ended_at"]) == max(run.late_stamps), after_events
    final = run.final
    assert run.exit == final
    assert (final["status"], instant(final["ended_at"])) == ("completed", run.exit_at), final
    assert final["event_count"] == run.signs_of_life + LATE_EVENTS, final

    # The scenario's timing puts the reaper's end and the moved end in different prices, the
    # moved end and the exit in the same one: one correction changes the price.
    assert price(reaped, rate) != price(after_events, rate) == price(final, rate), (
        reaped,
        after_events,
        final,
    )
    entries = [e for e in run.entries if e["session_id"] == final["id"]]
    assert sorted(e["kind"] for e in entries) == ["adjustment", "charge"], run.entries
    [charge] = [e for e in entries if e["kind"] == "charge"]
    assert charge["amount"] == -reaped["charge"]["credits"], run.entries
    assert final["charge"]["credits"] == -sum(e["amount"] for e in entries), (final, run.entries)
    assert final["charge"]["credits"] == price(final, rate), final
    assert run.balance["balance"] == sum(e["amount"] for e in run.entries), run.balance
    assert final["charge"]["balance_after"] == run.balance["balance"], (final, run.balance)


def test_a_kiosks_telemetry_is_kept_reported_and_pruned_by_retention_as_it_runs(
    live: LiveRun,
) -> None:
    day: KioskDay = live.outcome("kiosk_day")

    assert day.flush["errors"]["inserted"] == 2 and day.flush["metrics"]["inserted"] == 2, day.flush
    assert day.flush["again"] == {"inserted": 0, "duplicates": 1, "failed": 0, "errors": []}
    # Retention deleted what is older than the tenant keeps, and only that.
    faults = {g["type"]: g for g in day.errors["items"]}
    assert sum(g["count"] for g in faults.values()) == 3, day.errors
    jam = faults["PrinterError"]
    assert (jam["count"], jam["devices"], jam["sessions"]) == (2, 2, 2), jam
    assert jam["app_versions"] == {"2.0.0": 1, "1.9.0": 1} and jam["sales_lost"] == 1, jam
    assert jam["estimated_loss"] == {"KRW": "15000"}, jam
    # Per day of Seoul: the same faults, each day's own, oldest day first.
    by_day = day.errors_by_day["items"]
    assert sum(g["count"] for g in by_day) == 3, day.errors_by_day
    labels = [g["day"] for g in by_day]
    assert labels == sorted(labels), labels
    seoul = ZoneInfo("Asia/Seoul")
    for fault in by_day:
        seen = {instant(fault[k]).astimezone(seoul).date() for k in ("first_seen", "last_seen")}
        assert seen == {date.fromisoformat(fault["day"])}, fault
    assert {g["fingerprint"] for g in by_day} == {g["fingerprint"] for g in faults.values()}
    rows = {(r["type"], r["group"]): r for r in day.performance["items"]}
    assert set(rows) == {("capture", "2.0.0"), ("print", "2.0.0")}, rows
    capture = rows[("capture", "2.0.0")]
    assert (capture["count"], capture["p50_ms"], capture["max_ms"]) == (CAPTURES, 1000.0, 1300.0)
    assert rows[("print", "2.0.0")]["max_ms"] == 4000.0
    (booth,) = [t for t in day.sales["items"] if t["group"] == "booth-7"]
    assert (booth["count"], booth["net"], booth["refunded"]) == (1, "15000", "15000"), booth
    left = "is more than the 0 KRW left to refund of sale sale-1"
    assert day.sent["over_refund"]["fields"] == [{"field": "amounts.net", "message": left}]
    assert booth["by_state"] == {"settled": "15000"}, booth
    assert day.settled["settlement"]["batch_id"] == "card-batch-1"
    assert day.final_session["id"] == day.session["id"]  # a sold session stays
    out_of_scope = "forbidden: this key is scoped to other resources than booth-7"
    assert day.sent["foreign_event"]["errors"] == [{"index": 0, "error": out_of_scope}]
    assert day.final_session["event_count"] == 0, day.final_session


def test_retention_deletes_an_old_unbilled_session_and_keeps_a_charged_one(live: LiveRun) -> None:
    kept: Retained = live.outcome("session_retention")

    assert kept.unbilled["charge_state"] == "not_charged", kept.unbilled
    assert kept.charged["charge_state"] == "charged", kept.charged
    assert kept.unbilled_gone_after is not None, (
        "retention never deleted the unbilled session; its runs:",
        kept.retention_runs,
    )
    assert kept.charged_after["charge"] == kept.charged["charge"], kept.charged_after


def test_retention_keeps_a_free_subjects_counted_session_so_its_trial_stays_used(
    live: LiveRun,
) -> None:
    """Retention has deleted the unbilled lecture of the same age meanwhile."""
    kept: Retained = live.outcome("session_retention")

    assert kept.unbilled_gone_after is not None, kept.retention_runs
    assert kept.practised_status == 200, kept
    status, answer = kept.second_practice
    assert (status, answer["error"]) == (402, "trial_exhausted"), answer


def test_a_sale_sent_as_retention_deletes_its_session_keeps_it_or_is_refused(
    live: LiveRun,
) -> None:
    """Sales are kept for good, and so are their sessions: a kiosk's sale of an old session,
    sent as retention starts deleting such sessions, is stored and keeps the session, or is
    refused on session_id and the session is gone; never a sale without its session."""
    kept: Retained = live.outcome("session_retention")

    status, answer = kept.sale
    stored = [sale["id"] for sale in kept.sold_sales["items"]]
    if status == 201:
        assert (kept.sold_status, stored) == (200, ["archive-sale-1"]), kept
    else:
        assert (status, answer["error"]) == (422, "validation_error"), answer
        assert [f["field"] for f in answer["fields"]] == ["session_id"], answer
        assert (kept.sold_status, stored) == (404, []), kept


def test_a_client_forgotten_while_the_jobs_run_keeps_her_charge_and_nothing_else(
    live: LiveRun,
) -> None:
    mina: Forgotten = live.outcome("forgotten_client")

    (intake, assessment) = mina.funnel["stages"]
    assert intake["reached"] >= 1 and assessment["reached"] >= 1, mina.funnel
    assert (mina.erased["sessions"], mina.erased["events"]) == (1, 2), mina.erased
    assert mina.session["subject_id"].startswith("erased:"), mina.session
    assert "email" not in mina.session["attributes"] and mina.session["summary"] is None
    assert mina.session["charge_state"] == "charged", mina.session
    assert [(e["label"], e["data"]) for e in mina.events["items"]] == [(None, None)] * 2
    entries = mina.ledger["items"]
    assert [e["amount"] for e in entries] == [-mina.session["charge"]["credits"]], entries
    assert mina.balance["balance"] == sum(e["amount"] for e in entries)


def test_exits_racing_their_subjects_erasure_are_charged_from_her_whole_balance_under_the_pseudonym(
    live: LiveRun,
) -> None:
    run: ErasedLeaving = live.outcome("erased_while_leaving")

    assert run.erased["sessions"] == ERASED_LEAVING_SESSIONS, run.erased
    pseudonyms = {s["subject_id"] for s in run.sessions}
    assert len(pseudonyms) == 1 and next(iter(pseudonyms)).startswith("erased:"), pseudonyms
    # None decided from a half-moved ledger: each from the balance the others left of the grant.
    assert_charged_one_after_another(run.granted, run.sessions)
    entries = run.ledger["items"]
    charges = sorted(-e["amount"] for e in entries if e["kind"] == "charge")
    assert charges == sorted(s["charge"]["credits"] for s in run.sessions), entries
    assert run.left_behind["items"] == [], run.left_behind


def test_stores_are_counted_apart_in_seoul_days_by_the_running_rollup_job(live: LiveRun) -> None:
    run: StoreDays = live.outcome("store_days")
    seoul = ZoneInfo("Asia/Seoul")

    assert per_store(run.days, "sessions_started") == {"live-S1": 2, "live-S2": 1}, run.days
    assert per_store(run.days, "sessions_ended") == {"live-S1": 2, "live-S2": 1}, run.days
    local_days = {instant(s["started_at"]).astimezone(seoul).date() for s in run.started}
    days = [b for b in run.days["items"] if b["group"] in STORE_VISITS]
    for day in days:
        start, end = instant(day["start"]), instant(day["end"])
        assert start.astimezone(seoul).time() == time(0), day  # Seoul's midnight: 15:00 UTC
        assert (end - start, day["label"]) == (
            timedelta(days=1),
            f"{start.astimezone(seoul):%Y-%m-%d}",
        )
    assert {date.fromisoformat(d["label"]) for d in days} == local_days, run.days
    weeks = {b["label"] for b in run.weeks["items"] if b["group"] in STORE_VISITS}
    assert weeks == {f"{d:%G-W%V}" for d in local_days}, run.weeks
    completed: dict[str, int] = {}
    for summary in run.summaries:  # one per local day (two when the walk-ins span midnight)
        for g in summary["items"]:
            if g["group"] in STORE_VISITS:
                completed[g["group"]] = completed.get(g["group"], 0) + g["completed"]
    assert completed == {"live-S1": 2, "live-S2": 1}, run.summaries
    s2 = [s["id"] for s in run.started if s["attributes"].get("store_id") == "live-S2"]
    assert [s["id"] for s in run.s2_sessions["items"]] == s2, run.s2_sessions
    booths = [(r["resource_id"], r["total_sessions"]) for r in run.s2_resources["items"]]
    assert booths == [("booth-1", 1)], run.s2_resources
    stores = {r["group"]: r for r in run.store_resources["items"] if r["group"] in STORE_VISITS}
    assert {g: r["total_sessions"] for g, r in stores.items()} == {"live-S1": 2, "live-S2": 1}
    assert {r["resource_id"] for r in stores.values()} == {None}, run.store_resources


def test_the_rollup_job_rolls_funnels_up_as_it_runs_and_the_funnel_still_counts_today(
    live: LiveRun,
) -> None:
    run: StoreDays = live.outcome("store_days")

    # Every rollup run went through, the funnels' days included.
    assert set(run.rollup_runs) == {"ok"}, run.rollup_runs
    groups = {g["group"]: g for g in run.funnel["groups"] if g["group"] in STORE_VISITS}
    reached = {store: [s["reached"] for s in g["stages"]] for store, g in groups.items()}
    assert reached == {"live-S1": [2, 1], "live-S2": [1, 1]}, run.funnel
    conversion = {
        g["group"]: g["funnel_conversion"]
        for summary in run.summaries
        for g in summary["items"]
        if g["group"] in STORE_VISITS
    }
    assert conversion == {"live-S1": 0.5, "live-S2": 1.0}, run.summaries


def test_free_trials_run_out_and_convert_and_watch_time_splits_by_store_as_it_runs(
    live: LiveRun,
) -> None:
    run: TrialWeek = live.outcome("trial_week")

    assert run.refused["error"] == "trial_exhausted", run.refused
    trials = run.trials
    assert (trials["trial_subjects"], trials["sessions_used"]) == (2, 3), trials
    assert (trials["conversions"], trials["conversion_rate"]) == (1, 0.5), trials
    assert trials["refused_starts"]["trial_exhausted"] == 1, trials
    assert trials["subjects_exhausted"] == 1, trials
    stores = {r["group"]: r for r in run.watch_time["items"]}
    assert {g: r["visit_count"] for g, r in stores.items()} == {"quiz-S1": 2, "quiz-S2": 1}
    assert {r["subject_id"] for r in stores.values()} == {None}, run.watch_time
    # Sora's two visits overlapped: watched once, though they add up to more.
    s1 = stores["quiz-S1"]
    assert 0 < s1["unique_seconds"] < s1["total_seconds"], s1


def test_the_credits_charged_metric_counts_every_first_charge_once(live: LiveRun) -> None:
    """Every scenario's charges, whoever wrote them while they ran (clients' exits, corrections,
    event batches, LiveKit webhooks, the reaper, reconciliation): the server's
    `sessionmeter_credits_charged_total` is the sum of the first charges its ledgers hold, none
    missed and none counted twice (adjustments are not first charges)."""
    counted, written = live.charges

    assert written > 0
    assert counted == written, live.charges


def test_a_recording_deleted_while_the_rollup_job_runs_stays_out_of_its_rollups(
    live: LiveRun,
) -> None:
    recording: DeletedRecording = live.outcome("deleted_recording")

    assert started_in(recording.rolled_up) == 2, recording.rolled_up
    # Not its count of rollup rows: a run of the job between the deletion of the sessions and
    # that of the rows rolls the hour up again without them, leaving the deletion none to
    # remove (seen on SQLite). The count itself is tested in tests/contract/test_erasure.py.
    assert recording.deleted["sessions"] == 2, recording
    assert recording.runs_after >= 2, recording
    assert started_in(recording.after) == 0, recording.after


def test_a_booth_back_online_counts_in_the_day_its_session_began(live: LiveRun) -> None:
    """Its session began before midnight and ended after it; the day was rolled up for good
    before the booth came back (and before the tenant was created). Its start, and its capture
    sent after its exit, rewind the rollup job to the session's start; so does the start of a
    session without events."""
    run: ReturningBooth = live.outcome("returning_booth")

    assert run.rolled_up.startswith("rolled up") and "skipped" not in run.rolled_up, run.rolled_up
    assert run.before["sessions"] == 0, run.before
    counted = run.counted
    assert counted["sessions"] == 1, counted
    assert [stage["reached"] for stage in counted["stages"]] == [1, 0], counted
    assert {k: n for k, n in counted["exit_statuses"].items() if n} == {"completed": 1}, counted
    assert [day["sessions_started"] for day in run.usage["items"]] == [1], run.usage
    assert [stage["reached"] for stage in run.with_capture["stages"]] == [1, 1], run.with_capture
    # A session without events rewinds the job by its start alone.
    walk_away = run.with_walk_away
    assert walk_away["sessions"] == 2, walk_away
    assert [stage["reached"] for stage in walk_away["stages"]] == [1, 1], walk_away
    statuses = {k: n for k, n in walk_away["exit_statuses"].items() if n}
    assert statuses == {"completed": 1, "abandoned": 1}, walk_away


def test_errors_and_sales_a_kiosk_flushes_into_an_hour_rolled_up_count_in_their_day(
    live: LiveRun,
) -> None:
    """Its session of three hours ago was counted in its hour, and a whole rollup run went by,
    before the booth flushed that session's errors and sales: each rewinds the rollup job to its
    hour (older than every run recomputes), so the day counts them, the fatal ones and each
    currency's completed sales apart, net of the refund."""
    run: LateTelemetry = live.outcome("late_telemetry")

    assert [instant(b["start"]) for b in run.hour_rolled_up["items"]] == [run.hour]
    assert started_in(run.hour_rolled_up) == 1, run.hour_rolled_up
    nothing = {"errors": {"count": 0, "fatal": 0}, "sales": {}}
    assert telemetry_of(run.before) == nothing, run.before
    errors, *sales = run.flushed
    assert errors == {"inserted": 3, "duplicates": 0, "failed": 0, "errors": []}, errors
    assert [s["settlement"]["state"] for s in sales] == ["pending"] * 4, sales
    assert telemetry_of(run.after) == {
        "errors": {"count": 3, "fatal": 1},
        "sales": {"KRW": {"count": 2, "net": "15000"}, "USD": {"count": 1, "net": "4.5"}},
    }, (f"{run.runs_after} rollup runs ended after the flush", run.after)


def test_a_tenant_exported_while_it_serves_moves_whole_and_keeps_every_write(
    live: LiveRun,
) -> None:
    run: Moved = live.outcome("moved_while_serving")
    tapped = {"inserted": TAPS_PER_BATCH, "duplicates": 0, "failed": 0, "errors": []}

    # The tap wall sent before, while and after the export ran; none of it was held up to failing.
    assert len(run.answers) >= 3 and all(a == tapped for a in run.answers), run.answers
    header, *records, end = run.exported
    assert (header["record"], header["tenant"]) == ("sessionmeter-export", "live"), header
    assert end == {"record": "end", "records": len(records)}, end
    [session] = [r for r in records if r["record"] == "session" and r["id"] == run.session_id]
    taps = [r for r in records if r["record"] == "event" and r["session_id"] == run.session_id]
    assert taps, "the export ran after the tap wall's first batch"
    assert session["usage"] == {"taps": len(taps)}, (session, len(taps))
    # The new store took every record: the server's rollups, the stays' tracks, the webhook
    # ids handled and the rooms finished (the scenario's own at least) among them.
    counts: dict[str, int] = {}
    for record in records:
        counts[record["record"]] = counts.get(record["record"], 0) + 1
    assert {"rollup", "track", "webhook", "finished_room"} <= counts.keys(), counts
    new, present = (
        run.imported.removeprefix("imported: ").removesuffix(" already present)").split(" (")
    )
    imported = {kind: int(n) for n, kind in (item.split(" ") for item in new.split(", "))}
    assert (imported, present) == (counts, "0"), run.imported
    # A catch-up export over that copy, once the wall had left (its session ended, with more
    # taps), is refused whole; the first file imported again finds every record there.
    status, refused = run.catch_up
    assert status == 1 and "is here as it was before this export" in refused, refused
    assert run.again == f"imported: nothing ({len(records)} already present)", run.again


def test_retention_deletes_a_lossy_sessions_old_events_and_its_gaps_stay_those_lost(
    live: LiveRun,
) -> None:
    run: Archived = live.outcome("archived_gaps")

    assert (run.before["event_count"], run.before["event_gaps"]) == (3, [[3, 3]]), run.before
    assert run.events_left["items"] == [], run.events_left
    assert (run.after["event_count"], run.after["event_gaps"]) == (3, [[3, 3]]), run.after


def test_an_operator_walking_every_list_while_it_serves_sees_each_item_once(
    live: LiveRun,
) -> None:
    """Sessions, errors, alerts, keys and plans, read two at a time while the other scenarios
    write and the jobs run: no item twice, and each walk ends. A source's snapshots read two at
    a time measure each one's traffic from the one before it, on the page before or not."""
    run: Walked = live.outcome("walked_while_serving")

    for path, names in run.names.items():
        assert len(names) == len(set(names)), (path, names)
    assert run.names["/v1/sessions"] and run.names["/v1/keys"], run.names
    assert len(run.snapshots) == WALK_SNAPSHOTS, run.snapshots
    assert run.snapshots == run.whole
    assert [s["traffic_bytes"] for s in run.snapshots] == [
        1000 * (m * m - (m - 1) * (m - 1)) if m else 0 for m in range(WALK_SNAPSHOTS)
    ]
