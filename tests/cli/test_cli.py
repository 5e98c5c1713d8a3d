"""Operator commands on an embedded SQLite file, through click's runner."""

import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from application.sessions.start_session import StartSessionCommand
from domain.session import SessionRequest
from entrypoints.cli.main import cli
from entrypoints.container import build_container
from entrypoints.settings import Settings
from tests.cli.watched_launch import viewers_of_launch
from tests.conftest import run_async
from tests.poisons import overflowing_rollups
from tests.servers import free_port


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/operator.db"


def sessionmeter(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--storage-url", url, *args])


def test_upgrade_creates_the_schema_and_can_run_again(url: str, tmp_path: Path) -> None:
    assert sessionmeter(url, "db", "upgrade").exit_code == 0
    again = sessionmeter(url, "db", "upgrade")
    assert again.exit_code == 0 and "up to date" in again.output
    assert (tmp_path / "operator.db").exists()


def test_a_tenant_name_is_taken_once(url: str) -> None:
    sessionmeter(url, "db", "upgrade")
    assert sessionmeter(url, "tenants", "create", "acme").exit_code == 0

    duplicate = sessionmeter(url, "tenants", "create", "acme")

    assert duplicate.exit_code == 1
    assert duplicate.stderr.splitlines() == ["Error: a tenant named acme exists"]


def test_a_new_key_is_the_last_line_and_authenticates(url: str) -> None:
    sessionmeter(url, "db", "upgrade")
    sessionmeter(url, "tenants", "create", "acme")

    created = sessionmeter(url, "keys", "create", "--tenant", "acme", "--role", "admin")

    assert created.exit_code == 0 and created.stderr == ""
    key = created.stdout.splitlines()[-1]
    container = build_container(Settings(storage_url=url))
    principal = run_async(lambda: container.use_cases.authenticate()(key))
    assert principal.tenant.name == "acme" and principal.role == "admin"


def test_keys_for_an_unknown_tenant_are_refused(url: str) -> None:
    sessionmeter(url, "db", "upgrade")
    refused = sessionmeter(url, "keys", "create", "--tenant", "nobody", "--role", "ingest")
    assert refused.exit_code == 1 and refused.stdout == ""
    assert refused.stderr == "Error: no tenant named nobody\n"


@pytest.mark.parametrize("command", [("db", "upgrade"), ("serve",), ("sessions", "reap")])
def test_an_unknown_storage_scheme_is_one_line(command: tuple[str, ...]) -> None:
    refused = sessionmeter("mysql://db/x", *command)
    assert refused.exit_code == 1
    assert refused.stderr.startswith("Error: configuration: SESSIONMETER_STORAGE_URL: unsupported")
    assert len(refused.stderr.splitlines()) == 1


def test_help_does_not_need_a_valid_configuration() -> None:
    shown = sessionmeter("mysql://db/x", "keys", "create", "--help")
    assert shown.exit_code == 0 and "--role [ingest|app|admin]" in shown.stdout


def test_a_malformed_number_in_the_environment_is_one_line(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSIONMETER_REAPER_INTERVAL_SECONDS", "often")
    refused = sessionmeter(url, "db", "upgrade")
    assert refused.exit_code == 1 and refused.stderr.startswith("Error: configuration: ")
    assert len(refused.stderr.splitlines()) == 1


BOUNDED = [
    *[
        ("SESSIONMETER_POSTGRES_CONNECTIONS", n, "a whole number of at least 3")
        for n in ("many", "2", "-4", "2.5")
    ],
    *[
        ("SESSIONMETER_STORAGE_WAIT_SECONDS", n, "a number of seconds above 0, at most 3600")
        for n in ("soon", "0", "-1", "3601")
    ],
]


@pytest.mark.parametrize(("variable", "given", "bounds"), BOUNDED)
def test_a_setting_outside_its_bounds_is_refused_in_one_line(
    url: str, monkeypatch: pytest.MonkeyPatch, variable: str, given: str, bounds: str
) -> None:
    monkeypatch.setenv(variable, given)
    refused = sessionmeter(url, "db", "upgrade")
    assert refused.exit_code == 1
    assert refused.stderr == f"Error: configuration: {variable}: {given!r} is not {bounds}\n"


def test_a_database_not_migrated_yet_is_a_storage_error_with_a_hint(url: str) -> None:
    sqlite3.connect(url.removeprefix("sqlite:///")).close()  # a database, with no tables
    refused = sessionmeter(url, "tenants", "create", "acme")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("Error: storage error: (sqlite3.OperationalError) no such")
    assert "sessionmeter db upgrade" in refused.stderr and len(refused.stderr.splitlines()) == 1


def test_a_sqlite_database_that_is_not_there_is_a_storage_error_and_stays_not_there(
    url: str,
) -> None:
    """Only `db upgrade` (and `serve`) make a new database: a mistyped path is no new one."""
    refused = sessionmeter(url, "tenants", "create", "acme")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("Error: storage error: no SQLite database at ")
    assert "sessionmeter db upgrade" in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert not Path(url.removeprefix("sqlite:///")).exists()


def test_an_unreachable_database_is_a_storage_error() -> None:
    refused = sessionmeter(f"postgresql://nobody@127.0.0.1:{free_port()}/x", "db", "upgrade")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("Error: storage error: ") and "Connect call failed" in (
        refused.stderr
    )
    assert len(refused.stderr.splitlines()) == 1


def test_the_version_is_the_package_version() -> None:
    shown = CliRunner().invoke(cli, ["--version"])
    assert (
        shown.exit_code == 0
        and shown.stdout == f"sessionmeter, version {version('sessionmeter')}\n"
    )


def test_reap_closes_stale_sessions_of_a_tenant(url: str) -> None:
    sessionmeter(url, "db", "upgrade")
    sessionmeter(url, "tenants", "create", "acme")
    container = build_container(Settings(storage_url=url))
    long_ago = datetime.now(UTC) - timedelta(hours=2)

    async def start_one() -> None:
        tenant = await container.storage.tenants().get_by_name("acme")
        request = SessionRequest("kiosk", "booth-3", "device-9", started_at=long_ago)
        await container.use_cases.start_session()(StartSessionCommand(tenant.id, request))
        await container.storage.backend().close()

    run_async(start_one)

    reaped = sessionmeter(url, "sessions", "reap", "--tenant", "acme")

    assert reaped.exit_code == 0 and reaped.stdout == "1 stale session(s) closed\n"
    assert sessionmeter(url, "sessions", "reap").stdout == "0 stale session(s) closed\n"
    unknown = sessionmeter(url, "sessions", "reap", "--tenant", "nobody")
    assert unknown.exit_code == 1 and unknown.stderr == "Error: no tenant named nobody\n"


def test_credits_are_granted_once_per_key_and_their_balance_shown(url: str) -> None:
    sessionmeter(url, "db", "upgrade")
    sessionmeter(url, "tenants", "create", "acme")

    first = sessionmeter(
        url,
        "credits",
        "grant",
        "dr-kim",
        "50",
        "--tenant",
        "acme",
        "--idempotency-key",
        "onboarding",
    )
    again = sessionmeter(
        url,
        "credits",
        "grant",
        "dr-kim",
        "50",
        "--tenant",
        "acme",
        "--idempotency-key",
        "onboarding",
    )
    more = sessionmeter(url, "credits", "grant", "dr-kim", "25", "--tenant", "acme")
    shown = sessionmeter(url, "credits", "balance", "dr-kim", "--tenant", "acme")

    assert first.exit_code == 0 and "granted 50" in first.output
    assert "already granted" in again.output
    assert more.exit_code == 0
    assert "balance 75 (granted 75, consumed 0)" in shown.output
    refused = sessionmeter(url, "credits", "grant", "dr-kim", "0", "--tenant", "acme")
    assert refused.exit_code == 1 and refused.stderr.startswith("Error: amount")
    unknown = sessionmeter(url, "credits", "balance", "dr-kim", "--tenant", "nobody")
    assert unknown.exit_code == 1 and unknown.stderr == "Error: no tenant named nobody\n"


def test_the_watch_time_report_prints_as_a_table_json_or_csv(url: str) -> None:
    sessionmeter(url, "db", "upgrade")
    sessionmeter(url, "tenants", "create", "acme")
    viewers_of_launch(url, {"ana": 10, "ben": 4})
    args = ("report", "watch-time", "--tenant", "acme", "--resource", "launch")

    table = sessionmeter(url, *args)
    as_json = sessionmeter(url, *args, "--format", "json")
    as_csv = sessionmeter(url, *args, "--format", "csv")

    assert table.exit_code == 0 and table.output.splitlines()[0].split() == [
        "subject_id",
        "visit_count",
        "total_seconds",
        "avg_seconds",
        "unique_seconds",
    ]
    assert json.loads(as_json.output)[0] == {
        "subject_id": "ana",
        "visit_count": 1,
        "total_seconds": 600.0,
        "avg_seconds": 600.0,
        "unique_seconds": 600.0,
    }
    assert as_csv.output.splitlines()[2] == "ben,1,240.0,240.0,240.0"


def test_snapshots_load_from_csv_or_json_lines_once(url: str, tmp_path: Path) -> None:
    sessionmeter(url, "db", "upgrade")
    sessionmeter(url, "tenants", "create", "bootcamp")
    header = "source,at,cpu_percent,memory_percent,memory_mb,traffic_bytes_total,"
    header += "concurrent_users,active_rooms\n"
    csv_file = tmp_path / "snapshots.csv"
    csv_file.write_text(
        header
        + "lk-1,2026-11-24T10:00:00+00:00,30,40,2048,1000,10,1\n"
        + "lk-1,2026-11-24T10:05:00+00:00,35,41,2050,4000,12,1\n"
    )
    lines = tmp_path / "snapshots.jsonl"
    lines.write_text(
        json.dumps(
            {
                "source": "lk-1",
                "at": "2026-11-24T10:10:00+00:00",
                "cpu_percent": 20,
                "memory_percent": 40,
                "memory_mb": 2000,
                "traffic_bytes_total": 500,
                "concurrent_users": 3,
                "active_rooms": 1,
            }
        )
        + "\n"
    )

    first = sessionmeter(url, "snapshots", "import", str(csv_file), "--tenant", "bootcamp")
    again = sessionmeter(url, "snapshots", "import", str(csv_file), "--tenant", "bootcamp")
    more = sessionmeter(url, "snapshots", "import", str(lines), "--tenant", "bootcamp")

    assert first.output.strip() == "2 snapshot(s) read, 2 new, 0 already stored"
    assert again.output.strip() == "2 snapshot(s) read, 0 new, 2 already stored"
    assert more.exit_code == 0 and "1 new" in more.output


ZERO_LOAD = {
    "cpu_percent": 0,
    "memory_percent": 0,
    "memory_mb": 0,
    "traffic_bytes_total": 0,
    "concurrent_users": 0,
    "active_rooms": 0,
}


def test_a_snapshot_file_with_a_bad_line_names_the_line(url: str, tmp_path: Path) -> None:
    sessionmeter(url, "db", "upgrade")
    sessionmeter(url, "tenants", "create", "bootcamp")
    bad = tmp_path / "bad.csv"
    bad.write_text("source,at,cpu_percent\nlk-1,yesterday,30\n")

    failed = sessionmeter(url, "snapshots", "import", str(bad), "--tenant", "bootcamp")

    assert failed.exit_code == 1
    assert failed.stderr.startswith("Error: line 2: not a snapshot")


def test_retention_deletes_what_tenants_no_longer_keep(url: str, tmp_path: Path) -> None:
    sessionmeter(url, "db", "upgrade")
    sessionmeter(url, "tenants", "create", "bootcamp")
    now = datetime.now(UTC)
    header = "source,at,cpu_percent,memory_percent,memory_mb,traffic_bytes_total,"
    rows = [f"lk-1,{(now - timedelta(days=d)).isoformat()},1,1,1,{d},1,1" for d in (1, 8, 9)]
    old_and_new = tmp_path / "snapshots.csv"
    old_and_new.write_text(header + "concurrent_users,active_rooms\n" + "\n".join(rows) + "\n")
    sessionmeter(url, "snapshots", "import", str(old_and_new), "--tenant", "bootcamp")

    applied = sessionmeter(url, "retention", "apply")
    again = sessionmeter(url, "retention", "apply", "--tenant", "bootcamp")

    assert (
        applied.output.strip()
        == "deleted 2 snapshot(s), 0 event(s), 0 hourly and 0 daily rollup(s), 0 webhook id(s), 0 error(s), 0 performance metric(s), 0 session(s); finished 0 erasure(s)"
    )
    assert (
        again.output.strip()
        == "deleted 0 snapshot(s), 0 event(s), 0 hourly and 0 daily rollup(s), 0 webhook id(s), 0 error(s), 0 performance metric(s), 0 session(s); finished 0 erasure(s)"
    )


def test_retention_serves_every_tenant_it_can_and_names_those_it_could_not(
    url: str, tmp_path: Path
) -> None:
    sessionmeter(url, "db", "upgrade")
    old = datetime.now(UTC) - timedelta(days=30)
    snapshots = tmp_path / "snapshots.jsonl"
    snapshots.write_text(json.dumps({"source": "lk-1", "at": old.isoformat(), **ZERO_LOAD}))
    for tenant in ("acme", "bootcamp"):
        sessionmeter(url, "tenants", "create", tenant)
        sessionmeter(url, "snapshots", "import", str(snapshots), "--tenant", tenant)
    with sqlite3.connect(tmp_path / "operator.db") as db:
        # acme's snapshots are under a hold the store enforces: they cannot be deleted.
        db.execute(
            "CREATE TRIGGER hold BEFORE DELETE ON snapshots WHEN OLD.tenant_id = "
            "(SELECT id FROM tenants WHERE name = 'acme') BEGIN SELECT RAISE(ABORT, 'on hold'); END"
        )

    applied = sessionmeter(url, "retention", "apply")

    assert applied.exit_code == 1
    assert applied.stdout.startswith("deleted 1 snapshot(s), ")
    assert re.fullmatch(r"Error: tenant acme: \S+Error: .*on hold.*\n", applied.stderr)


def test_rollup_serves_every_tenant_it_can_and_names_those_it_could_not(url: str) -> None:
    sessionmeter(url, "db", "upgrade")
    for tenant in ("acme", "bootcamp"):
        sessionmeter(url, "tenants", "create", tenant)
    overflowing_rollups(url, "acme")

    rolled = sessionmeter(url, "rollup")
    again = sessionmeter(url, "rollup", "--tenant", "bootcamp")

    assert rolled.exit_code == 1
    assert re.fullmatch(
        r"rolled up \d+ hour\(s\) and \d+ day\(s\) of 1 tenant\(s\)\n", rolled.stdout
    )
    assert rolled.stderr.startswith("Error: tenant acme: ")
    assert len(rolled.stderr.splitlines()) == 1
    assert again.exit_code == 0, again.output


def test_rollup_runs_from_where_it_stopped_or_from_since(url: str) -> None:
    sessionmeter(url, "db", "upgrade")
    sessionmeter(url, "tenants", "create", "bootcamp")
    since = (datetime.now(UTC) - timedelta(hours=5)).replace(minute=30)

    first = sessionmeter(url, "rollup")
    backfill = sessionmeter(url, "rollup", "--tenant", "bootcamp", "--since", since.isoformat())
    naive = sessionmeter(url, "rollup", "--since", "2026-11-24T00:00:00")
    ancient = sessionmeter(url, "rollup", "--since", "0001-01-01T00:00:00Z")
    unknown = sessionmeter(url, "rollup", "--tenant", "nobody")

    assert first.exit_code == 0, first.output
    # The tenant's first hour (two, if the clock struck the hour in between).
    assert re.fullmatch(
        r"rolled up [12] hour\(s\) and [12] day\(s\) of 1 tenant\(s\)\n", first.output
    )
    assert backfill.output.startswith("rolled up 6 hour(s) and ")
    assert naive.exit_code == 2 and "needs a UTC offset" in naive.output
    assert ancient.exit_code == 1 and "since: must lie between 2000-01-01" in ancient.stderr
    assert unknown.exit_code == 1 and "no tenant named nobody" in unknown.output


def test_keys_are_listed_and_revoked_from_the_command_line(url: str) -> None:
    sessionmeter(url, "db", "upgrade")
    sessionmeter(url, "tenants", "create", "acme")
    created = sessionmeter(
        url,
        *("keys", "create", "--tenant", "acme", "--role", "ingest", "--name", "kiosk-17"),
        *("--resource", "kiosk-17", "--resource", "booth-a"),
    )
    key_id = created.output.split()[2]

    listed = sessionmeter(url, "keys", "list", "--tenant", "acme", "--format", "json")
    revoked = sessionmeter(url, "keys", "revoke", key_id, "--tenant", "acme")
    unknown = sessionmeter(url, "keys", "revoke", "nope", "--tenant", "acme")
    past = sessionmeter(
        url,
        "keys",
        "create",
        "--tenant",
        "acme",
        "--role",
        "app",
        "--expires-at",
        "2020-01-01T00:00:00Z",
    )

    (shown,) = json.loads(listed.output)
    assert (shown["id"], shown["name"], shown["role"], shown["revoked_at"]) == (
        key_id,
        "kiosk-17",
        "ingest",
        None,
    )
    assert shown["resources"] == ["booth-a", "kiosk-17"]
    assert created.output.splitlines()[-1] not in listed.output  # never the secret
    assert revoked.exit_code == 0 and revoked.output.startswith(f"key {key_id} revoked at ")
    assert unknown.exit_code == 1 and "no API key nope" in unknown.stderr
    assert past.exit_code == 1 and "expires_at" in past.stderr
