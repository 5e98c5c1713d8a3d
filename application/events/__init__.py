"""Events: what happened inside a session, appended in batches, each once.

Use cases (one module each): `ingest_events`, `list_events`, `event_distribution`.

`ports.py`: what this area needs from storage and the outside world.
"""
