"""What charging costs: session start+exit with a rate, next to the same lifecycle without one.

    .venv/bin/python benchmarks/charging.py [--seconds 10] [--clients 32] [--storage mongodb]

Through a real server on PostgreSQL (or the MongoDB test server), --clients concurrent clients each start and end sessions
as their own subject for --seconds: first of a kind with no rate (nothing is charged), then of a
kind priced at 2 credits a minute (every exit is settled: the session read with its subject's
balance, domain.charging.settle, then the claim of its revision with the ledger entry).
Prints both rates and the cost multiplier of charging (target: at most 1.5x).
"""

import argparse
import asyncio

from harness import STORAGES, http_client, lifecycles, service


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--storage", choices=STORAGES, default="postgresql")
    args = parser.parse_args()

    with service(storage=args.storage) as svc:
        svc.cli("tenants", "create", "bench")
        admin = svc.cli("keys", "create", "--tenant", "bench", "--role", "admin")
        for i in range(args.clients):
            svc.cli("credits", "grant", f"u{i}", "1000000", "--tenant", "bench")
        asyncio.run(set_rate(svc.base, admin))
        plain = asyncio.run(lifecycles(svc.base, admin, args.seconds, args.clients, "webinar"))
        charged = asyncio.run(lifecycles(svc.base, admin, args.seconds, args.clients, "counseling"))

    print(f"start+exit pairs/s, {args.clients} clients, {args.storage}, {args.seconds:.0f} s each:")
    print(f"  (b) no rate (plain lifecycle): {plain:.0f}")
    print(f"  (a) charged at every exit:     {charged:.0f}")
    print(f"  charging costs {plain / charged:.2f}x the plain lifecycle (target <= 1.5x)")


async def set_rate(base: str, admin: str) -> None:
    async with (
        http_client(base, admin, 1) as http,
        http.put("/v1/rates/counseling", json={"credits_per_minute": 2}) as r,
    ):
        assert r.status == 200, await r.text()


if __name__ == "__main__":
    main()
