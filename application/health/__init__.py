"""Health: whether the storage answers.

Use cases (one module each): `check_health`.

`ports.py`: what this area needs from storage and the outside world.
"""
