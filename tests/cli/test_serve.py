"""`sessionmeter serve` up to the moment uvicorn takes over (the e2e test covers the rest)."""

import os
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from entrypoints.cli import main, serve


@pytest.fixture
def uvicorn_runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the server would have been run with, with the environment its workers would inherit."""
    calls: list[dict[str, Any]] = []
    # serve writes these for its workers; monkeypatch puts the originals back afterwards.
    monkeypatch.setenv("SESSIONMETER_STORAGE_URL", "memory://")
    monkeypatch.setenv("SESSIONMETER_REAPER_INTERVAL_SECONDS", "30")

    def run(**options: Any) -> None:
        calls.append({**options, "environ": dict(os.environ)})

    monkeypatch.setattr(serve, "run_server", run)
    return calls


def test_serve_migrates_an_empty_file_then_hands_its_settings_to_the_workers(
    tmp_path: Path, uvicorn_runs: list[dict[str, Any]]
) -> None:
    url = f"sqlite:///{tmp_path}/fresh.db"
    (tmp_path / "fresh.db").touch()

    options = ["--port", "8123", "--workers", "3", "--reaper-interval", "0.5"]

    served = CliRunner().invoke(
        main.cli, ["--storage-url", url, "serve", *options, "--log-level", "WARNING"]
    )

    assert served.exit_code == 0, served.output
    [call] = uvicorn_runs
    assert call["factory"] is True
    assert (call["host"], call["port"], call["workers"]) == ("127.0.0.1", 8123, 3)
    assert call["log_level"] == "warning"
    assert call["environ"]["SESSIONMETER_STORAGE_URL"] == url
    assert call["environ"]["SESSIONMETER_REAPER_INTERVAL_SECONDS"] == "0.5"
    # Migrated before any worker started: the schema is there without `db upgrade`.
    created = CliRunner().invoke(main.cli, ["--storage-url", url, "tenants", "create", "acme"])
    assert created.exit_code == 0, created.output


def test_memory_storage_is_refused_with_several_workers(
    uvicorn_runs: list[dict[str, Any]],
) -> None:
    refused = CliRunner().invoke(
        main.cli, ["--storage-url", "memory://", "serve", "--workers", "2"]
    )

    assert refused.exit_code == 1
    assert refused.stderr == "Error: memory:// keeps data per process: serve it with one worker\n"
    assert uvicorn_runs == []


@pytest.mark.parametrize(
    "option",
    [
        ("--workers", "0"),
        ("--port", "70000"),
        ("--log-level", "loud"),
        ("--forwarded-allow-ips", "10.0.0.0/33"),
        ("--forwarded-allow-ips", "10.0.0.1, lb.internal"),
    ],
)
def test_serve_refuses_impossible_options(
    option: tuple[str, str], uvicorn_runs: list[dict[str, Any]]
) -> None:
    refused = CliRunner().invoke(main.cli, ["--storage-url", "memory://", "serve", *option])
    assert refused.exit_code == 2 and f"Invalid value for '{option[0]}'" in refused.stderr
    assert uvicorn_runs == []


@pytest.mark.parametrize(
    ("given", "trusted"),
    [(None, None), ("10.0.0.0/8, 192.168.1.7 ,::1", "10.0.0.0/8,192.168.1.7,::1"), ("*", "*")],
)
def test_only_the_proxies_named_may_say_who_the_client_is(
    given: str | None, trusted: str | None, uvicorn_runs: list[dict[str, Any]]
) -> None:
    """Uvicorn on its own trusts X-Forwarded-For from 127.0.0.1, so anyone on the host could
    claim any address: unless proxies are named, none is trusted."""
    option = [] if given is None else ["--forwarded-allow-ips", given]

    served = CliRunner().invoke(main.cli, ["--storage-url", "memory://", "serve", *option])

    assert served.exit_code == 0, served.output
    [call] = uvicorn_runs
    assert (call["proxy_headers"], call["forwarded_allow_ips"]) == (trusted is not None, trusted)


def test_several_workers_share_a_fresh_metrics_directory_gone_at_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SESSIONMETER_STORAGE_URL", "memory://")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    seen: list[str | None] = []

    def run(**options: Any) -> None:
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        assert directory is None or Path(directory).is_dir()
        seen.append(directory)

    monkeypatch.setattr(serve, "run_server", run)
    url = ["--storage-url", "sqlite:///:memory:"]

    for workers in ("1", "2"):
        served = CliRunner().invoke(main.cli, [*url, "serve", "--workers", workers])
        assert served.exit_code == 0, served.output

    one, two = seen
    assert one is None  # one process keeps its metrics in memory
    assert two is not None and not Path(two).exists()
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_a_metrics_directory_the_environment_names_is_used_and_kept(
    tmp_path: Path, uvicorn_runs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    url = f"sqlite:///{tmp_path}/fresh.db"

    served = CliRunner().invoke(main.cli, ["--storage-url", url, "serve", "--workers", "2"])

    assert served.exit_code == 0, served.output
    assert uvicorn_runs[0]["environ"]["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path)
    assert tmp_path.is_dir()


@pytest.mark.parametrize(
    ("flags", "env", "formatter"),
    [
        ([], {}, "JsonFormatter"),  # not a terminal: a collector reads it
        (["--log-format", "text"], {}, "TextFormatter"),
        ([], {"SESSIONMETER_LOG_FORMAT": "text"}, "TextFormatter"),
        (["--log-format", "json"], {"SESSIONMETER_LOG_FORMAT": "text"}, "JsonFormatter"),
    ],
)
def test_the_log_format_reaches_every_logger_and_replaces_the_access_log(
    uvicorn_runs: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    env: dict[str, str],
    formatter: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    served = CliRunner().invoke(main.cli, ["serve", "--log-level", "info", *flags])

    assert served.exit_code == 0, served.output
    [call] = uvicorn_runs
    config = call["log_config"]
    assert config["formatters"]["chosen"]["()"] == f"entrypoints.logs.{formatter}"
    assert config["root"] == {"handlers": ["stderr"], "level": "INFO"}
    assert config["loggers"]["uvicorn.access"] == {"handlers": [], "propagate": True}
    assert call["access_log"] is False


@pytest.mark.parametrize(
    ("flags", "env"), [(["--log-level", "trace"], {}), ([], {"SESSIONMETER_LOG_LEVEL": "TRACE"})]
)
def test_no_log_level_logs_the_query_string_and_its_key(
    uvicorn_runs: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    env: dict[str, str],
) -> None:
    """uvicorn's `trace` level logs every ASGI scope, query string included: the exit's beacon
    carries its key there (`?key=`), and the log must never hold a key."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    refused = CliRunner().invoke(main.cli, ["serve", *flags])

    assert refused.exit_code == 2, refused.output
    assert "trace" in refused.output.lower()
    assert uvicorn_runs == []


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_metrics_directory_the_environment_names_but_lacks_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    """A PROMETHEUS_MULTIPROC_DIR left in the environment whose directory is gone (a /run or /tmp
    path after a reboot): every worker would fail to build its app and, with several, uvicorn
    would replace them forever while the port, bound by the parent, takes connections."""
    monkeypatch.setenv("SESSIONMETER_STORAGE_URL", "memory://")
    gone = tmp_path / "gone" / "metrics"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(gone))
    seen: list[bool] = []
    monkeypatch.setattr(serve, "run_server", lambda **options: seen.append(gone.is_dir()))
    url = f"sqlite:///{tmp_path}/fresh.db"

    served = CliRunner().invoke(main.cli, ["--storage-url", url, "serve", "--workers", workers])

    assert served.exit_code == 0, served.output
    assert seen == [True]


@pytest.mark.parametrize(
    "shared", [False, True], ids=["by a server", "by another sessionmeter's workers"]
)
def test_several_workers_on_a_port_taken_stop_with_a_clear_error(
    shared: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each worker binds a socket of its own (entrypoints/cli/worker_sockets.py); the port is
    checked before any starts. Workers listening there already with SO_REUSEPORT, as another
    sessionmeter's do, would let ours join their group and split the traffic: refused too."""
    monkeypatch.setenv("SESSIONMETER_STORAGE_URL", "memory://")
    with socket.socket() as taken:
        if shared:
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        url = f"sqlite:///{tmp_path}/fresh.db"
        options = ["serve", "--workers", "2", "--port", port]

        refused = CliRunner().invoke(main.cli, ["--storage-url", url, *options])

    assert refused.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in refused.output
