"""This tree's server against another commit's, in turns on one database: what a change did to
the server's CPU a unit of work.

    .venv/bin/python benchmarks/against.py COMMIT [--storage postgresql|sqlite]
                                           [--load pairs|events|webhooks] [--seconds 8]
                                           [--rounds 4]

Two `sessionmeter serve` processes, one worker each, on one throwaway database: this tree's, and
COMMIT's, checked out in a temporary `git worktree` put first on its server's PYTHONPATH (both
run on this tree's venv, so a commit pinned to other versions is measured on these). The same
load goes through each in turn, --rounds times, the order mirrored each round (this, that; that,
this; ...), so that the drift of this VM, whose rates move by a fifth from one minute to the
next, and the growing tables weigh on both alike. The loads are ingest.py's: start+exit pairs
from 32 clients, or batches of 100 events from 8; or webhooks.py's: signed LiveKit webhooks from
16 clients, each server's stays of participants of its own. Each turn prints units per second and the CPU
a unit of the server's worker and (PostgreSQL) of the database; then, for each round, this
tree's worker CPU a unit over COMMIT's, and the median of those: the figure to read.

Both servers are driven with one app key (ingest.py's uses an ingest key, whose checks cost the
server about 4 % more a unit): a change's figure, not the ingest path's absolute cost.

Refuses a COMMIT whose migrations differ from this tree's: both servers share one schema. The
servers' background jobs are off: a reaper's run in one server's turn would count in its figure.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cpu_costs import Costs, Way, counters, http_batches, http_pairs, measured
from harness import ROOT, Service, analyze, cli, database, mirrored, server
from ingest import EVENT_CLIENTS, Numbers, open_sessions
from webhooks import presigned, registered_livekit, webhooks_sent

THIS = "this tree"
MIGRATIONS = "adapters/sqlalchemy/migrations"
WARM_UP_SECONDS = 2.0
PAIR_CLIENTS = 32  # as ingest.py's pairs
WEBHOOK_CLIENTS = 16  # as webhooks.py's
UNITS = {  # by --load
    "pairs": ("pair", "pairs"),
    "events": ("batch", "batches"),
    "webhooks": ("webhook", "webhooks"),
}
NO_JOBS = {
    f"SESSIONMETER_{job}_INTERVAL_SECONDS": "0"
    for job in ("REAPER", "RETENTION", "ROLLUP", "LIVEKIT_RECONCILE")
}


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


@contextmanager
def checkout(commit: str) -> Iterator[Path]:
    """The commit's files in a temporary worktree, removed afterwards."""
    changed = subprocess.run(["git", "diff", "--quiet", commit, "--", MIGRATIONS], cwd=ROOT)
    if changed.returncode or git("ls-files", "--others", "--exclude-standard", "--", MIGRATIONS):
        raise SystemExit(
            f"{commit}'s migrations differ from this tree's: one schema cannot serve both"
        )
    with tempfile.TemporaryDirectory(prefix="sessionmeter-against-") as directory:
        tree = Path(directory) / "tree"
        git("worktree", "add", "--detach", "--quiet", str(tree), commit)
        try:
            yield tree
        finally:
            # Not `git`: a failure here must not hide the one that ended the run.
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)


def imported_from(env: dict[str, str]) -> Path:
    """Where a process with `env` imports the service's code from. `-P` leaves the working
    folder off its path, as a server's (a console script puts the venv's bin first): the
    editable install finds the code after PYTHONPATH, the working folder before it."""
    code = "import entrypoints; print(entrypoints.__file__)"
    out = subprocess.run(
        [sys.executable, "-P", "-c", code],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    return Path(out.stdout.decode().strip()).resolve().parent.parent


async def compare(
    args: argparse.Namespace, servers: dict[str, Service], key: str
) -> dict[str, list[Costs]]:
    """Each server's turns, in order."""
    this = servers[THIS]
    if args.load == "pairs":
        loads = {name: http_pairs(svc, key, PAIR_CLIENTS) for name, svc in servers.items()}
    elif args.load == "webhooks":
        # Each server's own participants, so that neither's webhooks are the other's replays.
        seconds = WARM_UP_SECONDS + args.seconds * args.rounds
        loads = {
            name: webhooks_of(svc, presigned(seconds, prefix=f"s{n}p"))
            for n, (name, svc) in enumerate(servers.items())
        }
    else:
        sessions = await open_sessions(this.base, key, EVENT_CLIENTS)
        numbers = Numbers(len(sessions))
        loads = {name: http_batches(svc, key, sessions, numbers) for name, svc in servers.items()}
    for load in loads.values():
        await load(WARM_UP_SECONDS)
    await analyze(this.storage_url)
    turns: dict[str, list[Costs]] = {name: [] for name in servers}
    async with counters(this) as database_counters:
        for r, name in mirrored(list(servers), args.rounds):
            costs = Costs()
            await measured(costs, servers[name], database_counters, loads[name], args.seconds)
            turns[name].append(costs)
            print(f"  round {r + 1}, {name:>12}: {line(costs, args)}", flush=True)
    return turns


def webhooks_of(svc: Service, stays: Iterator[list[tuple[bytes, bytes]]]) -> Way:
    return lambda seconds: webhooks_sent(svc.base, stays, seconds, WEBHOOK_CLIENTS)


def line(costs: Costs, args: argparse.Namespace) -> str:
    unit, units = UNITS[args.load]
    database = (
        f", database {costs.per_unit(costs.database):,.0f} µs"
        if args.storage == "postgresql"
        else ""
    )
    return (
        f"{costs.rate:,.0f} {units}/s, worker {costs.per_unit(costs.server):,.0f} µs a {unit}"
        f"{database}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("commit")
    parser.add_argument("--storage", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--load", choices=tuple(UNITS), default="pairs")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    if args.rounds < 2 or args.rounds % 2 or args.seconds <= 0:
        parser.error("--rounds must be even (each order as often) and --seconds positive")
    found = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", "--short", f"{args.commit}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if found.returncode:
        raise SystemExit(f"no commit {args.commit} in {ROOT}")
    commit = found.stdout.strip()

    print(
        f"{args.storage}, {args.load}, {args.rounds} rounds of {args.seconds:g} s in turns, one"
        f" worker each: this tree ({git('rev-parse', '--short', 'HEAD')}"
        f"{', with uncommitted changes' if git('status', '--porcelain') else ''})"
        f" against {commit}",
        flush=True,
    )
    with checkout(commit) as tree, database(args.storage) as url:
        older = {"PYTHONPATH": str(tree)}
        if imported_from({}) != ROOT or imported_from(older) != tree.resolve():
            raise SystemExit(f"the servers would not run this tree's code and {commit}'s")
        cli({**os.environ, "SESSIONMETER_STORAGE_URL": url}, "db", "upgrade")
        with (
            server(url, extra_env=NO_JOBS) as this,
            server(url, extra_env={**NO_JOBS, **older}) as that,
        ):
            this.store_deployed_sessions(this.unlimited_tenant("against"))
            key = this.cli("keys", "create", "--tenant", "against", "--role", "app")
            if args.load == "webhooks":
                registered_livekit(this, "against")
            turns = asyncio.run(compare(args, {THIS: this, commit: that}, key))

    ratios = [
        mine.per_unit(mine.server) / theirs.per_unit(theirs.server)
        for mine, theirs in zip(turns[THIS], turns[commit], strict=True)
    ]
    unit, units = UNITS[args.load]
    for name, costs in turns.items():
        worker = statistics.median(c.per_unit(c.server) for c in costs)
        rate = statistics.median(c.rate for c in costs)
        print(f"median, {name:>12}: {rate:,.0f} {units}/s, worker {worker:,.0f} µs a {unit}")
    print(
        f"this tree's worker CPU a {unit}, over {commit}'s, round by round: "
        + ", ".join(f"{r:.1%}" for r in ratios)
        + f"; median {statistics.median(ratios):.1%}"
    )


if __name__ == "__main__":
    main()
