"""Sessions: someone enters, shows signs of life, leaves; the reaper ends what went quiet.

Use cases (one module each): `start_session`, `record_heartbeat`, `record_exit`, `get_session`,
`read_session`, `list_sessions`, `reap_stale_sessions`.

Not use cases, shared by them:
- `session_ids`: the rules of client-supplied session ids.

`ports.py`: what this area needs from storage and the outside world.
"""
