"""LiveKit webhook throughput: signed webhooks per second through a real server.

    .venv/bin/python benchmarks/webhooks.py [--seconds 10] [--clients 16] [--workers 1]
                                            [--compare-workers]
                                            [--storage postgresql|sqlite|mongodb]

A bootcamp's rooms churn: each client is a LiveKit node sending, for participant after
participant, participant_joined, track_published, track_unpublished and participant_left, each
signed as LiveKit signs it (a JWT carrying the body's sha256; signed before the clock starts,
as LiveKit signs on its own machines). The server verifies every one, records each stay and
track once, and answers. The tenant holds a deployment's sessions already
(harness.deployed_sessions), and the figure is timed after a second of the same load and an
ANALYZE (harness.analyze). Prints webhooks per second and the server's peak memory, per worker
and over all its processes. --compare-workers measures with 1 and then 2 server workers, each on a
fresh service of the same storage.
"""

import argparse
import asyncio
import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from harness import (
    STORAGES,
    Service,
    add_worker_flags,
    analyze,
    connections,
    cores_text,
    header_lines,
    peak_rss_while,
    rss_line,
    run_for,
    service,
    worker_counts,
    workers_cores,
)

from tests.livekit_server import LiveKitServer  # harness puts the project on the path

# Stays signed before the clock starts, per second of load: more than 1,000 webhooks a second.
PRESIGNED_STAYS_PER_SECOND = 300


def signed_stays(server: LiveKitServer, prefix: str = "p") -> Iterator[list[tuple[bytes, bytes]]]:
    """Participant after participant (`prefix` and a number), their four webhooks (body,
    header lines), signed."""
    start = datetime.now(UTC) - timedelta(minutes=1)
    for n in itertools.count():
        who, sid = f"{prefix}{n}", f"TR_{prefix}{n}"
        webhooks = [
            server.joined(who, start),
            server.track("track_published", who, start, sid, "CAMERA", start),
            server.track("track_unpublished", who, start, sid, "CAMERA", start),
            server.left(who, start, start + timedelta(seconds=30)),
        ]
        yield [(raw.encode(), header_lines(headers)) for raw, headers in webhooks]


def presigned(seconds: float, prefix: str = "p") -> Iterator[list[tuple[bytes, bytes]]]:
    """Stays (of participants named `prefix` and a number) enough for `seconds` of load signed
    now, then more as they are needed. Signing costs the client 0.2 ms a webhook, on the cores
    the server and the database use: LiveKit signs on its own machines."""
    signed = signed_stays(LiveKitServer(), prefix)
    return itertools.chain(
        list(itertools.islice(signed, int(PRESIGNED_STAYS_PER_SECOND * seconds))), signed
    )


async def webhooks_sent(
    base: str, stays: Iterator[list[tuple[bytes, bytes]]], seconds: float, clients: int
) -> float:
    """Webhooks a second, `clients` LiveKit nodes sending `stays` for `seconds`."""
    async with connections(base, clients, {}) as http:

        async def stay(i: int) -> int:
            webhooks = next(stays)
            for raw, headers in webhooks:
                status, body = await http[i].request("POST", "/v1/webhooks/livekit", raw, headers)
                assert status == 200, body
            return len(webhooks)

        return await run_for(seconds, clients, stay)


async def send(svc: Service, seconds: float, clients: int) -> dict[str, Any]:
    stays = presigned(seconds + 1)
    # A second of stays first, so that the tables have rows to analyse.
    await webhooks_sent(svc.base, stays, 1, clients)
    await analyze(svc.storage_url)
    with workers_cores(svc.process.pid) as cores:
        webhooks = await webhooks_sent(svc.base, stays, seconds, clients)
    return {"webhooks": webhooks, "cores": cores_text(cores)}


def registered_livekit(svc: Service, tenant: str) -> None:
    """The tenant accepts the webhooks `presigned` signs (tests.livekit_server's key)."""
    server = LiveKitServer()
    svc.cli("livekit", "add", "--tenant", tenant, "--api-key", server.key,
            "--api-secret", server.secret)  # fmt: skip


def measure(workers: int, storage: str, seconds: float, clients: int) -> dict[str, Any]:
    with service(workers, storage) as svc:
        tenant_id = svc.create_tenant("bootcamp")
        svc.store_deployed_sessions(tenant_id)
        registered_livekit(svc, "bootcamp")
        return asyncio.run(peak_rss_while(svc.process.pid, send(svc, seconds, clients)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--storage", choices=STORAGES, default="postgresql")
    add_worker_flags(parser)
    args = parser.parse_args()

    figures = {
        workers: measure(workers, args.storage, args.seconds, args.clients)
        for workers in worker_counts(args)
    }
    print(
        f"{args.storage}, {os.cpu_count()} cores shared by client, server and database; "
        f"{args.clients} clients, {args.seconds:g} s"
    )
    for workers, measured in figures.items():
        print(
            f"signed LiveKit webhooks/s, {workers} server worker(s): {measured['webhooks']:.0f}"
            f"  (cores each: {measured['cores']})"
        )
    for workers, measured in figures.items():
        print(rss_line(measured, workers))


if __name__ == "__main__":
    main()
