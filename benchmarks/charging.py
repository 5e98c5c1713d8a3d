"""What charging costs: session start+exit with a rate, next to the same lifecycle without one.

    .venv/bin/python benchmarks/charging.py [--seconds 10] [--clients 32] [--storage sqlite]

Through a real server on PostgreSQL (or SQLite, or the MongoDB test server), --clients
concurrent clients each start and end sessions as their own subject: of a kind with no rate
(nothing is charged), and of a kind priced at 2 credits a minute (every exit is settled: the
session read with its subject's balance, domain.charging.settle, then the claim of its revision
with the ledger entry). The tenant already holds a deployment's sessions, on analysed tables
(harness.deployed_sessions), and the two figures are taken in turns, --seconds each in all in
3 slices, since this VM's speed moves from one minute to the next. Prints both rates and the
cost multiplier of charging (target: at most 1.5x), and the CPU each pair cost the server and,
on PostgreSQL, the database (cpu_costs.measured).

--history N (PostgreSQL) gives each client's subject N earlier ledger entries before anything is
timed: a charge's cost should not grow with its subject's ledger (a settlement once summed it).
"""

import argparse
import asyncio
from statistics import mean

import asyncpg
from cpu_costs import Costs, counters, measured
from harness import STORAGES, Service, analyze, http_client, lifecycles, service

ROUNDS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--storage", choices=STORAGES, default="postgresql")
    parser.add_argument("--history", type=int, default=0, help="earlier entries per subject")
    args = parser.parse_args()
    if args.history and args.storage != "postgresql":
        parser.error("--history is for PostgreSQL")

    with service(storage=args.storage) as svc:
        tenant_id = svc.unlimited_tenant("bench")
        svc.store_deployed_sessions(tenant_id)
        admin = svc.cli("keys", "create", "--tenant", "bench", "--role", "admin")
        for i in range(args.clients):
            svc.cli("credits", "grant", f"u{i}", "1000000", "--tenant", "bench")
        asyncio.run(set_rate(svc.base, admin))
        if args.history:
            asyncio.run(add_history(svc.storage_url, tenant_id, args.clients, args.history))
        asyncio.run(analyze(svc.storage_url))
        rates: dict[str, list[float]] = {"webinar": [], "counseling": []}
        cpu = asyncio.run(taken_in_turns(svc, admin, args, rates))
    plain, charged = mean(rates["webinar"]), mean(rates["counseling"])

    history = f", {args.history:,} earlier entries a subject" if args.history else ""
    print(
        f"start+exit pairs/s, {args.clients} clients, {args.storage}{history}, in {ROUNDS} turns:"
    )
    print(f"  (b) no rate (plain lifecycle): {plain:.0f} ({slices(rates['webinar'])})")
    print(f"  (a) charged at every exit:     {charged:.0f} ({slices(rates['counseling'])})")
    print(f"  charging costs {plain / charged:.2f}x the plain lifecycle (target <= 1.5x)")
    print("CPU microseconds a pair, server / database:")
    for label, kind in (("plain", "webinar"), ("charged", "counseling")):
        spent = cpu[kind]
        server, database = spent.per_unit(spent.server), spent.per_unit(spent.database)
        print(f"  {label + ':':9s}{server:,.0f} / {database:,.0f}")


async def taken_in_turns(
    svc: Service, admin: str, args: argparse.Namespace, rates: dict[str, list[float]]
) -> dict[str, Costs]:
    """Each kind's pairs in ROUNDS turns (their rates added to `rates`), and what they cost
    (cpu_costs.measured)."""
    costs = {kind: Costs() for kind in rates}
    async with counters(svc) as database:
        for _ in range(ROUNDS):
            for kind in rates:

                async def pairs(seconds: float, kind: str = kind) -> float:
                    rate = await lifecycles(svc.base, admin, seconds, args.clients, kind)
                    rates[kind].append(rate)
                    return rate

                await measured(costs[kind], svc, database, pairs, args.seconds / ROUNDS)
    return costs


async def add_history(url: str, tenant_id: str, subjects: int, entries: int) -> None:
    """`entries` grants of 1 credit to each subject u0, u1, …, dated a month ago."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "INSERT INTO ledger_entries"
            " (id, tenant_id, subject_id, amount, kind, reason, idempotency_key, created_at)"
            " SELECT gen_random_uuid()::text, $1, 'u' || (g % $2), 1, 'grant', 'history',"
            " 'history-' || g, now() - interval '30 days' FROM generate_series(1, $3) g",
            tenant_id,
            subjects,
            subjects * entries,
        )
    finally:
        await connection.close()


def slices(rates: list[float]) -> str:
    return " / ".join(f"{rate:.0f}" for rate in rates)


async def set_rate(base: str, admin: str) -> None:
    async with (
        http_client(base, admin, 1) as http,
        http.put("/v1/rates/counseling", json={"credits_per_minute": 2}) as r,
    ):
        assert r.status == 200, await r.text()


if __name__ == "__main__":
    main()
