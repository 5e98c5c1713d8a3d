"""What a client of a real server does through a database outage, and what it must find once
the database is back: shared by the outage tests."""

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.e2e.serving import _children_of
from tests.servers import PostgresServer

BACK_WITHIN_SECONDS = 60
# The server's background jobs on, as in production but often: each runs during an outage.
JOBS = {
    "reaper_interval_seconds": "1",
    "rollup_interval_seconds": "1",
    "retention_interval_seconds": "1",
}


def start(app: httpx.Client, session_id: str, subject: str = "ana") -> httpx.Response:
    body = {"id": session_id, "kind": "webinar", "resource_id": "hall", "subject_id": subject}
    return app.post("/v1/sessions", json=body)


def event(session_id: str, sequence_no: int) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "sequence_no": sequence_no,
        "type": "poll_answer",
        "at": datetime.now(UTC).isoformat(),
    }


def sent_again(send: Callable[[], httpx.Response]) -> httpx.Response:
    """What a client does with a 503: wait Retry-After seconds and send the same again."""
    deadline = time.monotonic() + BACK_WITHIN_SECONDS
    while (answer := send()).status_code == 503:
        assert time.monotonic() < deadline, answer.text
        time.sleep(int(answer.headers["Retry-After"]))
    return answer


def served_once_when_sent_again(
    app: httpx.Client, first: str, second: str, events: dict[str, Any], the_exit: dict[str, Any]
) -> None:
    """The writes refused during the outage (the start of `second`, a batch of three events of
    `first` and its exit), each sent again until served, are stored; sent once more (the
    client never saw the answers), each is answered as stored and counts once."""
    started = sent_again(lambda: start(app, second))
    batch = sent_again(lambda: app.post("/v1/events/batch", json=events))
    ended = sent_again(lambda: app.post(f"/v1/sessions/{first}/exit", json=the_exit))
    assert started.status_code == 201, started.text
    assert batch.json()["inserted"] == 3, batch.text
    assert ended.status_code == 200, ended.text

    assert start(app, second).status_code == 200
    assert app.post("/v1/events/batch", json=events).json()["duplicates"] == 3
    assert app.post(f"/v1/sessions/{first}/exit", json=the_exit).json() == ended.json()
    session = app.get(f"/v1/sessions/{first}").json()
    assert (session["status"], session["event_count"]) == ("completed", 3), session
    listed = app.get("/v1/sessions", params={"limit": 10}).json()["items"]
    assert sorted(s["id"] for s in listed) == sorted([first, second])


@contextmanager
def frozen(postgres: PostgresServer) -> Iterator[None]:
    """Every process of the test's own PostgreSQL stopped (SIGSTOP): a server that hangs, or a
    network that drops its packets; its connections stay open and get no answer."""
    assert postgres._dir is not None
    postmaster = int((postgres._dir / "data" / "postmaster.pid").read_text().split()[0])
    pids = [postmaster, *_children_of(postmaster)]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
