"""Retention: deleting what a tenant keeps no longer, in bounded batches.

Use cases (one module each): `apply_retention`.

`ports.py`: what this area needs from storage and the outside world.
"""
