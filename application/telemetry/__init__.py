"""Kiosk telemetry: errors, performance metrics and sales that devices report beside their
sessions, and the reports over them.

Use cases (one module each): `record_errors`, `list_errors`, `report_errors`,
`record_metrics`, `report_performance`, `record_sales`, `move_settlement`, `list_sales`,
`report_sales`.

Not use cases: `recorded` (what the three record use cases share: idempotency by client id,
sessions that must exist) and `window` (the window of a listing or report).

`ports.py`: what this area needs from storage.
"""
