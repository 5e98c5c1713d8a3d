"""Rollups: hourly and daily usage buckets, rebuilt whole, rewound when late data arrives.

Use cases (one module each): `roll_up_usage`.

Not use cases, shared by them:
- `rollup_rewinds`: marks hours that late data or a correction changed (called by the
  sessions and events use cases).

`ports.py`: what this area needs from storage and the outside world.
"""
