"""Funnels: the stages a tenant defines for sessions of one kind, and where sessions stop.

Use cases (one module each): `set_funnel`, `list_funnels`, `get_funnel`, `delete_funnel`,
`report_funnel`.

`ports.py`: what this area needs from storage.
"""
