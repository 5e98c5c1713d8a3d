"""Throwaway database servers for tests and benchmarks, started and removed by the tooling itself.

PostgreSQL 15's initdb and pg_ctl come from the PATH or `pg_config --bindir`. initdb refuses to run
as root, so as root the server runs as the `postgres` user. Set SESSIONMETER_TEST_POSTGRES_URL to
use a server of your own instead.
"""

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

SETTINGS = {
    "listen_addresses": "127.0.0.1",
    # Durability is not under test here; speed is welcome.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "256MB",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bindir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


class PostgresServer:
    def __init__(self) -> None:
        self.url = os.environ.get("SESSIONMETER_TEST_POSTGRES_URL", "")
        self._dir: Path | None = None

    def start(self) -> "PostgresServer":
        if self.url:
            return self
        self._dir = Path(tempfile.mkdtemp(prefix="sessionmeter-pg-"))
        data = self._dir / "data"
        as_root = os.geteuid() == 0
        if as_root:
            shutil.chown(self._dir, "postgres", "postgres")
        port = free_port()
        bindir = _bindir()
        self._run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )
        options = " ".join(f"-c {k}={v}" for k, v in SETTINGS.items())
        options += f" -p {port} -k {self._dir}"
        self._run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(self._dir / "log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        return self

    def stop(self) -> None:
        if self._dir is None:
            return
        self._run(
            [str(_bindir() / "pg_ctl"), "-D", str(self._dir / "data"), "-m", "immediate", "stop"],
            check=False,
        )
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None

    def _run(self, args: list[str], check: bool = True) -> None:
        if os.geteuid() == 0:
            args = ["runuser", "-u", "postgres", "--", *args]
        done = subprocess.run(args, capture_output=True, text=True)
        if check and done.returncode != 0:
            log = self._dir / "log" if self._dir else None
            tail = log.read_text()[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{args[-1]} failed: {done.stderr or done.stdout}\n{tail}")

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
