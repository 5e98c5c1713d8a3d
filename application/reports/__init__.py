"""Reports: figures computed where the data lives or read from rollups.

Use cases (one module each): `report_active`, `report_resources`, `report_usage_stats`,
`report_watch_time`, `report_usage`, `report_cost_model`.

`ports.py`: what this area needs from storage and the outside world.
"""
