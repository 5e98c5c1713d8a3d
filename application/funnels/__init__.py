"""Funnels: the stages a tenant defines for sessions of one kind, and where sessions stop.

Use cases (one module each): `set_funnel`, `list_funnels`, `get_funnel`, `delete_funnel`,
`report_funnel`, `roll_up_funnels` (run by the usage rollup).

Not use cases, shared by them: `count_funnel`, a window's tallies from rollups and events (the
funnel report and the daily summary read it).

`ports.py`: what this area needs from storage.
"""
