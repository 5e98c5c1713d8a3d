"""Server-load snapshots: what a media server reports, for the cost model.

Use cases (one module each): `record_snapshots`, `list_snapshots`.

`ports.py`: what this area needs from storage and the outside world.
"""
