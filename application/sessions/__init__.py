"""Sessions: someone enters, shows signs of life, leaves; the reaper ends what went quiet.

Use cases (one module each): `start_session`, `record_heartbeat`, `record_exit`,
`read_session`, `list_sessions`, `reap_stale_sessions`.

Not use cases, shared by them:
- `get_session`: one session of a tenant, or NotFound (used by the reads of this area and of
  events).
- `session_ids`: the rules of client-supplied session ids.

`ports.py`: what this area needs from storage and the outside world.
"""
