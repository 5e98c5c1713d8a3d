"""Tenants, their API keys and settings, and how a request proves which tenant it speaks for.

Use cases (one module each): `create_tenant`, `create_api_key`, `authenticate`, `update_settings`.

Not use cases, shared by them:
- `tenant_jobs`: runs a background job tenant by tenant, one failure not stopping the rest.

`ports.py`: what this area needs from storage and the outside world.
"""
