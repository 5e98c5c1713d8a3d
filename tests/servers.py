"""Throwaway database servers for tests and benchmarks, started and removed by the tooling itself.

PostgreSQL 15's initdb and pg_ctl come from the PATH or `pg_config --bindir`. initdb refuses to run
as root, so as root the server runs as the `postgres` user. Set SESSIONMETER_TEST_POSTGRES_URL to
use a server of your own instead.

MongoDB: no mongod installs on these machines, so the tests run SecantusDB's Python server (the
MongoDB wire protocol over TCP, WiredTiger storage, in memory; see tests/secantus_server.py). Set SESSIONMETER_TEST_MONGODB_URI
to run the same tests against a real MongoDB 6+ instead.
"""

import functools
import itertools
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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


# Each process chooses ports from a block of its own (a pytest-xdist worker's by its number), below
# the kernel's range for outgoing connections. A port is bound seconds after it is chosen (initdb
# runs first, a server starts), and one the kernel chose for us (a bind to port 0) could meanwhile
# be chosen for another worker's server: two servers on one port. Nothing else takes ports here.
LOWEST_PORT = 10000
PORTS_A_PROCESS = 2000


def free_port() -> int:
    """A port on 127.0.0.1 nobody holds, for a server to listen on; not given out twice by this
    process until it has given out the rest of its block."""
    for port in itertools.islice(_ports_of_this_process(), PORTS_A_PROCESS):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # listened on, or its connections are still closing
            return int(s.getsockname()[1])  # port 0's: the one the kernel chose
    raise RuntimeError(f"no free port in the block of {PORTS_A_PROCESS} of this process")


@functools.cache
def _ports_of_this_process() -> Iterator[int]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, …; none outside pytest-xdist
    block = int(worker.removeprefix("gw")) + 1 if worker.startswith("gw") else 0
    first = LOWEST_PORT + block * PORTS_A_PROCESS
    try:
        outgoing = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except OSError:  # not Linux
        outgoing = 0
    if first + PORTS_A_PROCESS > outgoing:  # no room below that range: the kernel chooses
        return itertools.repeat(0)
    # Runs at once (a benchmark beside the tests) start at different places in their block.
    start = random.randrange(PORTS_A_PROCESS)
    return (first + (start + n) % PORTS_A_PROCESS for n in itertools.count())


def _bindir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


class PostgresServer:
    def __init__(self, of_its_own: bool = False) -> None:
        """`of_its_own`: start one even where SESSIONMETER_TEST_POSTGRES_URL names a server (a
        test that stops its database must not stop everyone's)."""
        self.url = "" if of_its_own else os.environ.get("SESSIONMETER_TEST_POSTGRES_URL", "")
        self._dir: Path | None = None
        self._options = ""

    def start(self) -> "PostgresServer":
        if self.url:
            return self
        self._dir = Path(tempfile.mkdtemp(prefix="sessionmeter-pg-"))
        as_root = os.geteuid() == 0
        if as_root:
            shutil.chown(self._dir, "postgres", "postgres")
        port = free_port()
        self._run(
            [
                str(_bindir() / "initdb"),
                "-D",
                str(self._dir / "data"),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )
        self._options = " ".join(f"-c {k}={v}" for k, v in SETTINGS.items())
        self._options += f" -p {port} -k {self._dir}"
        self.resume()
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        return self

    def halt(self) -> None:
        """Shut the server down as an operator does (its clients' connections are closed),
        keeping its data for `resume`."""
        assert self._dir is not None, "a server of one's own: PostgresServer(of_its_own=True)"
        self._pg_ctl("-m", "fast", "stop")

    def resume(self) -> None:
        """Start the server (again) on its data and port."""
        assert self._dir is not None
        self._pg_ctl("-o", self._options, "-l", str(self._dir / "log"), "-w", "-t", "60", "start")

    def stop(self) -> None:
        if self._dir is None:
            return
        self._pg_ctl("-m", "immediate", "stop", check=False)
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        assert self._dir is not None
        self._run([str(_bindir() / "pg_ctl"), "-D", str(self._dir / "data"), *args], check)

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


class MongoServer:
    def __init__(self, data: Path | None = None) -> None:
        """`data`: a folder to keep its data in, for a server of the test's own that it may
        halt and resume (SESSIONMETER_TEST_MONGODB_URI is then not used); else in memory."""
        self.url = "" if data else os.environ.get("SESSIONMETER_TEST_MONGODB_URI", "")
        self._data = data
        self._port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> "MongoServer":
        if self.url:
            return self
        self._port = free_port()
        self.resume()
        self.url = f"mongodb://127.0.0.1:{self._port}"
        return self

    def halt(self) -> None:
        """Stop the server, keeping its data for `resume`."""
        assert self._data is not None, "a server with a folder of its own: MongoServer(data)"
        self._terminate()

    def resume(self) -> None:
        """Start the server (again) on its port, on its data if it keeps them."""
        self._process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("secantus_server.py")),
                "--host",
                "127.0.0.1",
                "--port",
                str(self._port),
                "--storage-path",
                str(self._data) if self._data else ":memory:",
                "--log-level",
                "WARNING",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RuntimeError(f"the MongoDB test server exited: {error[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self._port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the MongoDB test server did not listen within 60 s")

    def freeze(self) -> None:
        """The server stops answering (SIGSTOP), as a hung one or a network partition."""
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGCONT)

    def stop(self) -> None:
        self._terminate()

    def _terminate(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            os.kill(self._process.pid, signal.SIGCONT)  # a frozen one would not hear SIGTERM
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def database_url(self, name: str) -> str:
        """The server's URL naming a database of its own (options, if any, kept)."""
        base, _, options = self.url.partition("?")
        host = base.split("://", 1)[1].split("/", 1)[0]
        scheme = base.split("://", 1)[0]
        return f"{scheme}://{host}/{name}" + (f"?{options}" if options else "")

    def __enter__(self) -> "MongoServer":
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
