"""A hostile review of the operator CLI (a helper's, 2026-12-06): what an operator gets wrong, the
storage gets wrong, or a file gets wrong must answer one clear line on standard error, a non-zero
exit status, never a traceback, never a hang, and leave nothing half-done (running.run: "domain
and storage errors become a one-line message and exit code 1, never a traceback").

Passing tests pin what holds; each `xfail(strict=True)` is a defect found, with what came out."""

import csv
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from entrypoints.cli import serve
from entrypoints.cli.main import cli
from tests.cli.watched_launch import viewers_of_launch
from tests.conftest import PostgresDatabases
from tests.servers import free_port

SESSIONMETER = str(Path(sys.executable).parent / "sessionmeter")
SNAPSHOT_HEADER = (
    "source,at,cpu_percent,memory_percent,memory_mb,traffic_bytes_total,concurrent_users,"
    "active_rooms\n"
)


def sessionmeter(url: str, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--storage-url", url, *args], input=stdin)


def refused_in_one_line(result: Result, exit_code: int = 1) -> str:
    """The result of a mistake: its exit status, no exception escaped to a traceback, and one
    line on standard error, "Error: …"; nothing on standard output. Answers that line."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def usage_error(result: Result) -> None:
    """A command line click cannot parse: exit status 2, an "Error: …" line, no traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    assert any(line.startswith("Error: ") for line in result.stderr.splitlines()), result.stderr


def in_a_real_process(
    url: str, *args: str, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SESSIONMETER, "--storage-url", url, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def with_stdout_closed(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The command writing into a pipe nobody reads any more (`| head -1` after its line)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [SESSIONMETER, "--storage-url", url, *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
        )
    finally:
        os.close(write_end)


def sqlite_threads_ended() -> None:
    """aiosqlite's worker threads of the commands run, ended while the test still catches what
    escapes them."""
    for thread in threading.enumerate():
        if thread.name.endswith("(_connection_worker_thread)"):
            thread.join(5)


# --- command lines click refuses -------------------------------------------------------------

MISTYPED = {
    "a missing argument": ("tenants", "create"),
    "an extra argument": ("tenants", "create", "acme", "beta"),
    "an unknown option": ("tenants", "create", "acme", "--colour", "red"),
    "a name with a leading dash": ("tenants", "create", "-acme"),
    "an unknown command": ("tenant", "create", "acme"),
    "an unknown report": ("report", "views", "--tenant", "acme"),
    "a role not offered": ("keys", "create", "--tenant", "acme", "--role", "root"),
    "a role in capitals": ("keys", "create", "--tenant", "acme", "--role", "ADMIN"),
    "a missing tenant": ("keys", "create", "--role", "admin"),
    "a missing key id": ("keys", "revoke", "--tenant", "acme"),
    "a negative amount": ("credits", "grant", "ana", "-5", "--tenant", "acme"),
    "a fractional amount": ("credits", "grant", "ana", "1.5", "--tenant", "acme"),
    "an amount in words": ("credits", "grant", "ana", "lots", "--tenant", "acme"),
    "an amount in exponent form": ("credits", "grant", "ana", "1e3", "--tenant", "acme"),
    "a missing amount": ("credits", "grant", "ana", "--tenant", "acme"),
    "an expiry without an offset": (
        *("keys", "create", "--tenant", "acme", "--role", "app"),
        *("--expires-at", "2030-01-01T00:00:00"),
    ),
    "an expiry that is a date": (
        *("keys", "create", "--tenant", "acme", "--role", "app", "--expires-at", "2030-01-01"),
    ),
    "an expiry in words": (
        *("keys", "create", "--tenant", "acme", "--role", "app", "--expires-at", "tomorrow"),
    ),
    "an empty expiry": ("keys", "create", "--tenant", "acme", "--role", "app", "--expires-at", ""),
    "a month 13": ("report", "errors", "--tenant", "acme", "--from", "2026-13-01T00:00:00Z"),
    "an offset of 25 hours": ("rollup", "--since", "2026-01-01T00:00:00+25:00"),
    "a window without offsets": (
        *("report", "trials", "--tenant", "acme"),
        *("--from", "2026-01-01T00:00:00", "--to", "2026-02-01T00:00:00"),
    ),
    "a format not offered": ("keys", "list", "--tenant", "acme", "--format", "xml"),
    "an empty format": (
        *("report", "watch-time", "--tenant", "acme", "--resource", "r", "--format", ""),
    ),
    "a grouping not offered": ("report", "performance", "--tenant", "acme", "--group-by", "x"),
    "a missing resource": ("report", "watch-time", "--tenant", "acme"),
    "a missing snapshot file": ("snapshots", "import", "--tenant", "acme"),
    "a snapshot file that does not exist": (
        *("snapshots", "import", "/nonexistent/snapshots.csv", "--tenant", "acme"),
    ),
    "an export file that does not exist": ("import", "/nonexistent/acme.jsonl"),
}


@pytest.mark.parametrize("args", MISTYPED.values(), ids=MISTYPED.keys())
def test_a_command_line_that_cannot_be_parsed_is_a_usage_error(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """Missing, extra, unknown, malformed: exit status 2 and click's "Error: …" line, before
    anything runs (the store is not even opened)."""
    usage_error(sessionmeter(f"sqlite:///{tmp_path}/never.db", *args))
    assert not (tmp_path / "never.db").exists()


def test_an_import_from_a_directory_is_a_usage_error(store: str, tmp_path: Path) -> None:
    usage_error(sessionmeter(store, "import", str(tmp_path)))
    usage_error(sessionmeter(store, "snapshots", "import", str(tmp_path), "--tenant", "acme"))


# --- values the service refuses ----------------------------------------------------------------

LONG = "x" * 10_000
REFUSED = {
    "an empty tenant name": (("tenants", "create", ""), "Error: name: 1-64 characters"),
    "a 10 KB tenant name": (("tenants", "create", LONG), "Error: name: 1-64 characters"),
    "a tenant name with NUL": (("tenants", "create", "ac\x00me"), "Error: name: "),
    "a tenant name with a newline": (("tenants", "create", "ac\nme"), "Error: name: "),
    "a unicode tenant name": (("tenants", "create", "ácmé"), "Error: name: "),
    "a tenant name after --": (("tenants", "create", "--", "-acme"), "Error: name: "),
    "a key name of 10 KB": (
        ("keys", "create", "--tenant", "acme", "--role", "app", "--name", LONG),
        "Error: name: must be 1-200 characters",
    ),
    "a key name with NUL": (
        ("keys", "create", "--tenant", "acme", "--role", "app", "--name", "k\x00"),
        "Error: name: must not contain NUL characters",
    ),
    "an empty key resource": (
        ("keys", "create", "--tenant", "acme", "--role", "ingest", "--resource", ""),
        "Error: resources[0]: ",
    ),
    "101 key resources": (
        (
            *("keys", "create", "--tenant", "acme", "--role", "ingest"),
            *[arg for n in range(101) for arg in ("--resource", f"kiosk-{n}")],
        ),
        "Error: resources: must list 1-100",
    ),
    "a scope on an admin key": (
        ("keys", "create", "--tenant", "acme", "--role", "admin", "--resource", "kiosk-1"),
        "Error: resources: only ingest keys are scoped",
    ),
    "an expiry in the year 9999": (
        (
            *("keys", "create", "--tenant", "acme", "--role", "app"),
            *("--expires-at", "9999-12-31T23:59:59-14:00"),
        ),
        "Error: expires_at: must lie between",
    ),
    "a key id that does not exist": (
        ("keys", "revoke", "no-such-key", "--tenant", "acme"),
        "Error: no API key no-such-key",
    ),
    "a zero amount": (("credits", "grant", "ana", "0", "--tenant", "acme"), "Error: amount: "),
    "a negative amount after --": (
        ("credits", "grant", "--tenant", "acme", "ana", "--", "-5"),
        "Error: amount: ",
    ),
    "an amount past 64 bits": (
        ("credits", "grant", "ana", str(2**64), "--tenant", "acme"),
        "Error: amount: ",
    ),
    "an amount of 10^100": (
        ("credits", "grant", "ana", str(10**100), "--tenant", "acme"),
        "Error: amount: ",
    ),
    "an empty subject": (("credits", "grant", "", "5", "--tenant", "acme"), "Error: subject_id: "),
    "a 10 KB subject": (("credits", "grant", LONG, "5", "--tenant", "acme"), "Error: subject_id: "),
    "a subject with NUL": (
        ("credits", "grant", "a\x00", "5", "--tenant", "acme"),
        "Error: subject_id: must not contain NUL",
    ),
    "an empty reason": (
        ("credits", "grant", "ana", "5", "--tenant", "acme", "--reason", ""),
        "Error: reason: ",
    ),
    "a 10 KB idempotency key": (
        ("credits", "grant", "ana", "5", "--tenant", "acme", "--idempotency-key", LONG),
        "Error: idempotency_key: ",
    ),
    "an empty resource": (
        ("report", "watch-time", "--tenant", "acme", "--resource", ""),
        "Error: resource_id: ",
    ),
    "a resource with NUL": (
        ("report", "watch-time", "--tenant", "acme", "--resource", "r\x00"),
        "Error: resource_id: must not contain NUL",
    ),
    "a 10 KB resource": (
        ("report", "watch-time", "--tenant", "acme", "--resource", LONG),
        "Error: resource_id: ",
    ),
    "a window before 2000": (
        ("report", "errors", "--tenant", "acme", "--from", "1999-12-31T23:59:59Z"),
        "Error: from: must lie between",
    ),
    "a window ending before it begins": (
        (
            *("report", "performance", "--tenant", "acme"),
            *("--from", "2026-02-01T00:00:00Z", "--to", "2026-01-01T00:00:00Z"),
        ),
        "Error: from: must be before to",
    ),
    "a window of no time": (
        (
            *("report", "trials", "--tenant", "acme"),
            *("--from", "2026-01-01T00:00:00Z", "--to", "2026-01-01T00:00:00Z"),
        ),
        "Error: from: must be before to",
    ),
    "the 30th of February": (
        ("report", "daily", "--tenant", "acme", "--date", "2026-02-30"),
        "Error: date: ",
    ),
    "a day in words": (
        ("report", "daily", "--tenant", "acme", "--date", "yesterday"),
        "Error: date: ",
    ),
    "a day of the year 9999": (
        ("report", "daily", "--tenant", "acme", "--date", "9999-12-31"),
        "Error: date: ",
    ),
    "a grouping by nothing": (
        ("report", "daily", "--tenant", "acme", "--group-by", "attributes."),
        "Error: group_by: ",
    ),
    "a sales grouping not offered": (
        ("report", "sales", "--tenant", "acme", "--group-by", "colour"),
        "Error: group_by: ",
    ),
    "a currency of four letters": (
        ("report", "sales", "--tenant", "acme", "--currency", "EURO"),
        "Error: currency: ",
    ),
    "a funnel that does not exist": (
        ("report", "funnel", "checkout", "--tenant", "acme"),
        "Error: no funnel checkout",
    ),
    "a rollup from year 1": (("rollup", "--since", "0001-01-01T00:00:00+14:00"), "Error: since: "),
    "an empty LiveKit key": (
        ("livekit", "add", "--tenant", "acme", "--api-key", "", "--api-secret", "s"),
        "Error: api_key: ",
    ),
    "an empty LiveKit secret": (
        ("livekit", "add", "--tenant", "acme", "--api-key", "k", "--api-secret", ""),
        "Error: api_secret: ",
    ),
    "a LiveKit URL of another scheme": (
        (
            *("livekit", "add", "--tenant", "acme", "--api-key", "k", "--api-secret", "s"),
            *("--url", "ftp://lk.example.com"),
        ),
        "Error: url: ",
    ),
}


@pytest.mark.parametrize(
    ("args", "message"), REFUSED.values(), ids=[name.replace(" ", "-") for name in REFUSED]
)
def test_a_value_the_service_refuses_is_one_line_and_exit_status_1(
    store: str, args: tuple[str, ...], message: str
) -> None:
    """The domain's refusal, named by its field, as the API words it; nothing else."""
    assert refused_in_one_line(sessionmeter(store, *args)).startswith(message)


TENANT_COMMANDS = {
    "keys list": ("keys", "list", "--tenant", "nobody"),
    "keys revoke": ("keys", "revoke", "k", "--tenant", "nobody"),
    "credits grant": ("credits", "grant", "ana", "5", "--tenant", "nobody"),
    "report watch-time": ("report", "watch-time", "--tenant", "nobody", "--resource", "r"),
    "report errors": ("report", "errors", "--tenant", "nobody"),
    "report performance": ("report", "performance", "--tenant", "nobody"),
    "report funnel": ("report", "funnel", "f", "--tenant", "nobody"),
    "report daily": ("report", "daily", "--tenant", "nobody"),
    "report sales": ("report", "sales", "--tenant", "nobody"),
    "report trials": ("report", "trials", "--tenant", "nobody"),
    "livekit add": ("livekit", "add", "--tenant", "nobody", "--api-key", "k", "--api-secret", "s"),
    "livekit reconcile": ("livekit", "reconcile", "--tenant", "nobody"),
    "retention apply": ("retention", "apply", "--tenant", "nobody"),
    "an empty tenant": ("sessions", "reap", "--tenant", ""),
}


@pytest.mark.parametrize("args", TENANT_COMMANDS.values(), ids=TENANT_COMMANDS.keys())
def test_a_tenant_that_does_not_exist_is_named_in_one_line(
    store: str, args: tuple[str, ...]
) -> None:
    tenant = args[args.index("--tenant") + 1]
    assert refused_in_one_line(sessionmeter(store, *args)) == f"Error: no tenant named {tenant}"


def test_a_tenant_created_by_two_processes_at_once_is_created_once(store: str) -> None:
    """Two operators (or a retried deploy script) at the same moment: one creates it, the other
    is told it exists; neither fails otherwise."""
    both = [
        subprocess.Popen(
            [SESSIONMETER, "--storage-url", store, "tenants", "create", "beta"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    answers = sorted((p.wait(30), *p.communicate()) for p in both)

    assert [(code, err) for code, _, err in answers] == [
        (0, ""),
        (1, "Error: a tenant named beta exists\n"),
    ]
    assert answers[0][1].startswith("tenant beta created (id ")


def test_revoking_a_key_twice_answers_the_first_revocation(store: str) -> None:
    """As `DELETE /v1/keys/{id}` again does: the same answer, not an error, not a new time."""
    created = sessionmeter(store, "keys", "create", "--tenant", "acme", "--role", "app")
    key_id = created.stdout.split()[2]

    first = sessionmeter(store, "keys", "revoke", key_id, "--tenant", "acme")
    time.sleep(1.1)  # shown to the second: a second revocation's own time would show
    again = sessionmeter(store, "keys", "revoke", key_id, "--tenant", "acme")

    assert first.exit_code == 0 and first.stdout.startswith(f"key {key_id} revoked at ")
    assert (again.exit_code, again.stdout, again.stderr) == (0, first.stdout, "")


def test_a_key_of_another_tenant_cannot_be_revoked_through_this_one(store: str) -> None:
    sessionmeter(store, "tenants", "create", "beta")
    key_id = sessionmeter(store, "keys", "create", "--tenant", "acme", "--role", "app").stdout
    key_id = key_id.split()[2]

    refused = sessionmeter(store, "keys", "revoke", key_id, "--tenant", "beta")

    assert refused_in_one_line(refused) == f"Error: no API key {key_id} in this tenant"
    listed = json.loads(
        sessionmeter(store, "keys", "list", "--tenant", "acme", "--format", "json").stdout
    )
    assert [k["revoked_at"] for k in listed] == [None]


# --- storage problems ----------------------------------------------------------------------------

NOT_UPGRADED = {
    "tenants create": ("tenants", "create", "beta"),
    "keys create": ("keys", "create", "--tenant", "acme", "--role", "admin"),
    "keys list": ("keys", "list", "--tenant", "acme"),
    "keys revoke": ("keys", "revoke", "k", "--tenant", "acme"),
    "sessions reap": ("sessions", "reap"),
    "credits grant": ("credits", "grant", "ana", "5", "--tenant", "acme"),
    "credits balance": ("credits", "balance", "ana", "--tenant", "acme"),
    "report watch-time": ("report", "watch-time", "--tenant", "acme", "--resource", "r"),
    "report errors": ("report", "errors", "--tenant", "acme"),
    "report performance": ("report", "performance", "--tenant", "acme"),
    "report funnel": ("report", "funnel", "f", "--tenant", "acme"),
    "report daily": ("report", "daily", "--tenant", "acme"),
    "report sales": ("report", "sales", "--tenant", "acme"),
    "report trials": ("report", "trials", "--tenant", "acme"),
    "export": ("export", "--tenant", "acme"),
    "livekit add": ("livekit", "add", "--tenant", "acme", "--api-key", "k", "--api-secret", "s"),
    "livekit reconcile": ("livekit", "reconcile"),
    "rollup": ("rollup",),
    "retention apply": ("retention", "apply"),
}


@pytest.mark.parametrize("args", NOT_UPGRADED.values(), ids=NOT_UPGRADED.keys())
def test_every_command_on_a_store_never_upgraded_says_so_in_one_line(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """`db upgrade` not run: the storage's complaint and the hint, for every command, not only
    `tenants create` (test_cli)."""
    (tmp_path / "new.db").touch()
    line = refused_in_one_line(sessionmeter(f"sqlite:///{tmp_path}/new.db", *args))
    assert line.startswith("Error: storage error: (sqlite3.OperationalError) no such table")
    assert line.endswith("a new database needs `sessionmeter db upgrade`)")


def test_an_import_into_a_store_never_upgraded_says_so_and_stores_nothing(
    store: str, tmp_path: Path
) -> None:
    exported = tmp_path / "acme.jsonl"
    exported.write_text(sessionmeter(store, "export", "--tenant", "acme").stdout)
    (tmp_path / "new.db").touch()
    new = f"sqlite:///{tmp_path}/new.db"

    line = refused_in_one_line(sessionmeter(new, "import", str(exported)))

    assert line.startswith("Error: storage error: ") and "db upgrade" in line
    assert sessionmeter(new, "db", "upgrade").exit_code == 0
    refused_in_one_line(sessionmeter(new, "export", "--tenant", "acme"))  # no tenant there


@pytest.mark.parametrize(
    ("target", "cause"),
    [
        ("missing/directory/store.db", "no directory"),
        ("random.bin", "file is not a database"),
    ],
)
def test_a_store_that_cannot_be_opened_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, cause: str
) -> None:
    # The thread's traceback that may follow is the defect of the xfail below, not this test's.
    monkeypatch.setattr(threading, "excepthook", lambda hook: None)
    (tmp_path / "random.bin").write_bytes(bytes(range(256)) * 20)
    for args in (("db", "upgrade"), ("tenants", "create", "acme"), ("export", "--tenant", "acme")):
        line = refused_in_one_line(sessionmeter(f"sqlite:///{tmp_path}/{target}", *args))
        assert line.startswith("Error: storage error: ") and cause in line
    sqlite_threads_ended()


def test_a_store_url_naming_a_directory_is_one_line_and_no_thread_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A race, so tried until a thread's exception escapes (at most 300 times, 4 s)."""
    escaped: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda hook: escaped.append(hook.exc_value))

    for _ in range(300):
        refused_in_one_line(sessionmeter(f"sqlite:///{tmp_path}", "tenants", "create", "acme"))
        if escaped:
            break
    sqlite_threads_ended()

    assert escaped == []


@pytest.mark.parametrize("url", ["postgresql://u@db:notaport/x", "mongodb://"])
def test_a_malformed_storage_url_is_one_line(url: str) -> None:
    line = refused_in_one_line(sessionmeter(url, "tenants", "create", "acme"))
    assert line.startswith(("Error: configuration: ", "Error: storage error: "))


# Found: a command waited pymongo's 30 s (server selection) or asyncpg's 60 s (connect) before
# it said that no database answered, and MongoDB's line dumped the topology (some 700
# characters). Commands now wait running.COMMAND_WAIT_SECONDS (5); the process's bound below
# leaves the interpreter's start-up room on a slow machine, far under the drivers' waits.
WITHIN_SECONDS = 15


def test_a_mongodb_port_where_nothing_listens_is_an_error_within_seconds() -> None:
    done = in_a_real_process(
        f"mongodb://127.0.0.1:{free_port()}/x", "tenants", "create", "acme", timeout=WITHIN_SECONDS
    )
    assert done.returncode == 1 and done.stderr.startswith(
        "Error: storage error: no MongoDB server to use within 5.0s: 127.0.0.1:"
    )
    assert len(done.stderr) < 300 and "Topology" not in done.stderr, done.stderr


def test_a_postgresql_server_that_never_answers_is_an_error_within_seconds() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        done = in_a_real_process(
            f"postgresql://u@127.0.0.1:{port}/x",
            "tenants",
            "create",
            "acme",
            timeout=WITHIN_SECONDS,
        )
    assert done.returncode == 1 and done.stderr.startswith(
        "Error: storage error: the database did not answer in time"
    )


def test_a_mistyped_sqlite_path_leaves_no_file_behind(tmp_path: Path) -> None:
    refused_in_one_line(
        sessionmeter(f"sqlite:///{tmp_path}/sesionmeter.db", "keys", "list", "--tenant", "acme")
    )
    assert not (tmp_path / "sesionmeter.db").exists()


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "list", "--tenant", "ac\x00me"),
        ("credits", "balance", "an\x00a", "--tenant", "acme"),
        # Found: 'Error: storage error: … invalid byte sequence for encoding "UTF8": 0x00'.
        ("report", "errors", "--tenant", "acme", "--device", "kiosk\x00"),
    ],
    ids=["tenant", "subject", "device"],
)
def test_a_nul_in_a_name_on_postgresql_is_not_a_storage_error(
    postgresql_databases: PostgresDatabases, args: tuple[str, ...]
) -> None:
    with postgresql_databases.fresh() as url:
        assert sessionmeter(url, "tenants", "create", "acme").exit_code == 0
        line = refused_in_one_line(sessionmeter(url, *args))
    assert not line.startswith("Error: storage error: ")


# --- export and import ---------------------------------------------------------------------------


def test_an_import_cut_in_the_middle_is_refused_and_stores_nothing(
    store: str, tmp_path: Path, sqlite_template: Path
) -> None:
    """A copy interrupted halfway: refused at the line cut, and the target keeps nothing of it."""
    sessionmeter(store, "credits", "grant", "ana", "5", "--tenant", "acme")
    sessionmeter(store, "keys", "create", "--tenant", "acme", "--role", "admin")
    whole = sessionmeter(store, "export", "--tenant", "acme").stdout
    cut = tmp_path / "cut.jsonl"
    cut.write_text(whole[: len(whole) * 2 // 3], encoding="utf-8")
    shutil.copyfile(sqlite_template, tmp_path / "target.db")
    target = f"sqlite:///{tmp_path}/target.db"

    line = refused_in_one_line(sessionmeter(target, "import", str(cut)))

    assert line.startswith("Error: line ")
    assert refused_in_one_line(sessionmeter(target, "export", "--tenant", "acme")) == (
        "Error: no tenant named acme"
    )


@pytest.mark.parametrize("content", ["", "\n\n"], ids=["empty", "blank lines"])
def test_an_empty_import_is_refused_in_one_line(store: str, tmp_path: Path, content: str) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text(content)
    from_file = refused_in_one_line(sessionmeter(store, "import", str(empty)))
    from_stdin = refused_in_one_line(sessionmeter(store, "import", stdin=content))
    assert from_file == from_stdin
    assert from_file.startswith("Error: line ") and from_file.endswith("cut short")


def test_an_import_of_a_binary_file_is_one_line(store: str, tmp_path: Path) -> None:
    binary = tmp_path / "acme.jsonl.gz"
    binary.write_bytes(b"\x1f\x8b\x08\x00\xff\xfe" + bytes(range(256)) * 8)
    refused_in_one_line(sessionmeter(store, "import", str(binary)))


def test_an_export_into_a_closed_pipe_does_not_blame_the_storage(store: str) -> None:
    done = with_stdout_closed(store, "export", "--tenant", "acme")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "storage error" not in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("report", "watch-time", "--tenant", "acme", "--resource", "r", "--format", "json"),
        ("report", "trials", "--tenant", "acme", "--format", "csv"),
        ("keys", "list", "--tenant", "acme"),
    ],
    ids=["watch-time json", "trials csv", "keys table"],
)
def test_a_report_into_a_closed_pipe_stops_quietly_with_a_failure_status(
    store: str, args: tuple[str, ...]
) -> None:
    """`sessionmeter report … | head -1`: the reader gone, the command stops, exit status not 0,
    no traceback and no word about the storage."""
    done = with_stdout_closed(store, *args)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "storage error" not in done.stderr


# --- snapshots import ----------------------------------------------------------------------------


def test_a_binary_snapshot_file_is_one_line(store: str, tmp_path: Path) -> None:
    binary = tmp_path / "snapshots.xlsx"
    binary.write_bytes(b"PK\x03\x04\xff\xfe" + bytes(range(256)) * 8)
    refused_in_one_line(sessionmeter(store, "snapshots", "import", str(binary), "--tenant", "acme"))


def test_a_json_lines_snapshot_file_cut_mid_line_names_the_line(store: str, tmp_path: Path) -> None:
    whole = json.dumps(
        {
            "source": "lk-1",
            "at": "2026-11-24T10:00:00+00:00",
            **dict.fromkeys(("cpu_percent", "memory_percent", "memory_mb"), 1),
            **dict.fromkeys(("traffic_bytes_total", "concurrent_users", "active_rooms"), 1),
        }
    )
    cut = tmp_path / "snapshots.jsonl"
    cut.write_text(whole + "\n" + whole[:30])
    line = refused_in_one_line(
        sessionmeter(store, "snapshots", "import", str(cut), "--tenant", "acme")
    )
    assert line.startswith("Error: line 2: ")


def test_a_csv_snapshot_file_cut_mid_line_names_the_line_and_stores_nothing(
    store: str, tmp_path: Path
) -> None:
    cut = tmp_path / "snapshots.csv"
    whole = SNAPSHOT_HEADER + "lk-1,2026-11-24T10:00:00+00:00,30,40,2048,1000,10,1\n"
    cut.write_text(whole + "lk-1,2026-11-24T10:05:00+00:00,30,4")

    line = refused_in_one_line(
        sessionmeter(store, "snapshots", "import", str(cut), "--tenant", "acme")
    )

    assert line.startswith("Error: line 3: not a snapshot")
    (tmp_path / "whole.csv").write_text(whole)
    loaded = sessionmeter(
        store, "snapshots", "import", str(tmp_path / "whole.csv"), "--tenant", "acme"
    )
    assert loaded.stdout == "1 snapshot(s) read, 1 new, 0 already stored\n"


def test_a_snapshot_file_refused_at_a_line_stores_none_of_it(store: str, tmp_path: Path) -> None:
    start = datetime(2026, 11, 20, tzinfo=UTC)
    rows = "".join(
        f"lk-9,{(start + timedelta(minutes=n)).isoformat()},1,1,1,{n},1,1\n" for n in range(1001)
    )
    (tmp_path / "cut.csv").write_text(SNAPSHOT_HEADER + rows + "lk-9,2026-11-24T10:05:00+00:00,3")
    (tmp_path / "good.csv").write_text(SNAPSHOT_HEADER + rows)

    refused_in_one_line(
        sessionmeter(store, "snapshots", "import", str(tmp_path / "cut.csv"), "--tenant", "acme")
    )
    loaded = sessionmeter(
        store, "snapshots", "import", str(tmp_path / "good.csv"), "--tenant", "acme"
    )

    assert loaded.stdout == "1001 snapshot(s) read, 1001 new, 0 already stored\n"


# --- output formats ------------------------------------------------------------------------------

AWKWARD = ["a,b", 'say "hi"', "two\nlines", "ünïcødé ✓ 日本", "tab\there", "  padded  ", "'quote"]


def test_report_csv_and_json_keep_commas_quotes_newlines_and_unicode(store: str) -> None:
    """Subject ids come from clients: whatever they hold, Python's csv module and json.loads
    read back exactly the ids stored."""
    viewers_of_launch(store, {subject: n for n, subject in enumerate(AWKWARD, 1)})
    args = ("report", "watch-time", "--tenant", "acme", "--resource", "launch")

    as_csv = sessionmeter(store, *args, "--format", "csv")
    as_json = sessionmeter(store, *args, "--format", "json")

    assert as_csv.exit_code == 0 and as_json.exit_code == 0
    header, *rows = csv.reader(io.StringIO(as_csv.stdout, newline=""))
    assert header[0] == "subject_id"
    assert sorted(row[0] for row in rows) == sorted(AWKWARD)
    assert sorted(o["subject_id"] for o in json.loads(as_json.stdout)) == sorted(AWKWARD)


def test_key_names_in_csv_and_json_read_back_exactly(store: str) -> None:
    for name in AWKWARD:
        sessionmeter(store, "keys", "create", "--tenant", "acme", "--role", "app", "--name", name)

    as_csv = sessionmeter(store, "keys", "list", "--tenant", "acme", "--format", "csv").stdout
    as_json = sessionmeter(store, "keys", "list", "--tenant", "acme", "--format", "json").stdout

    assert sorted(r["name"] for r in csv.DictReader(io.StringIO(as_csv, newline=""))) == sorted(
        AWKWARD
    )
    assert sorted(k["name"] for k in json.loads(as_json)) == sorted(AWKWARD)


def test_report_csv_quotes_a_carriage_return(store: str) -> None:
    viewers_of_launch(store, {"kiosk\r7": 1, "ana": 2})
    args = ("report", "watch-time", "--tenant", "acme", "--resource", "launch", "--format", "csv")
    out = sessionmeter(store, *args).stdout
    assert sorted(row[0] for row in list(csv.reader(io.StringIO(out, newline="")))[1:]) == [
        "ana",
        "kiosk\r7",
    ]


def test_keys_scoped_differently_show_different_resources_in_csv(store: str) -> None:
    for scope in (("east wing", "kiosk"), ("east", "wing kiosk")):
        resources = [arg for resource in scope for arg in ("--resource", resource)]
        created = sessionmeter(
            store, "keys", "create", "--tenant", "acme", "--role", "ingest", *resources
        )
        assert created.exit_code == 0, created.output
    out = sessionmeter(store, "keys", "list", "--tenant", "acme", "--format", "csv").stdout
    first, second = csv.DictReader(io.StringIO(out, newline=""))
    assert first["resources"] != second["resources"]


# --- what passes for success -------------------------------------------------------------------


@pytest.mark.parametrize("subject", ["", LONG], ids=["empty", "10 KB"])
def test_the_balance_of_a_subject_id_that_cannot_exist_is_refused(store: str, subject: str) -> None:
    line = refused_in_one_line(
        sessionmeter(store, "credits", "balance", subject, "--tenant", "acme")
    )
    assert line.startswith("Error: subject_id: ")


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "revoke", "k\nEverything is fine", "--tenant", "acme"),
        ("keys", "list", "--tenant", "a\nb"),
    ],
    ids=["key id", "tenant"],
)
def test_an_error_naming_a_value_with_a_newline_is_still_one_line(
    store: str, args: tuple[str, ...]
) -> None:
    refused_in_one_line(sessionmeter(store, *args))


@pytest.fixture
def uvicorn_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """What the server would have been run with (test_serve's way: uvicorn never starts)."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setenv("SESSIONMETER_STORAGE_URL", "memory://")
    monkeypatch.setattr(serve, "run_server", lambda **options: calls.append(options))
    yield calls


def test_serve_refuses_an_empty_host(uvicorn_runs: list[dict[str, Any]]) -> None:
    refused = CliRunner().invoke(cli, ["--storage-url", "memory://", "serve", "--host", ""])
    assert refused.exit_code == 2 and uvicorn_runs == []
