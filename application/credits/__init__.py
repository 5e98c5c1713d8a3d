"""Credits: rates, grants, charges of ended sessions, balances, the ledger and its alerts.

Use cases (one module each): `set_rate`, `grant_credits`, `get_balance`, `list_ledger`,
`list_alerts`.

Not use cases, shared by them:
- `deduct_credits`: charges a closed session, and settles it again after each correction
  (called by the sessions, events and LiveKit use cases, the reaper among them).
- `rate_book`: the tenant's rates, cached briefly per process.
- `running_cost`: what an open session would cost if it ended now.

`ports.py`: what this area needs from storage and the outside world.
"""
