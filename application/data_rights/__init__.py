"""Data rights: forgetting a person (subject erasure) and removing a resource's log, in bounded
steps that are safe against the writes that keep arriving meanwhile.

Use cases (one module each): `erase_subject`, `delete_resource`.

Not a use case: `sweeps` (the bounded loops the use cases and retention share).

`ports.py`: what this area needs from storage.
"""
