"""Tenants, their API keys and settings, and how a request proves which tenant it speaks for.

Use cases (one module each): `create_tenant`, `create_api_key`, `list_api_keys`,
`revoke_api_key`, `read_settings`, `update_settings`.

Not use cases, shared by them:
- `authenticate`: resolves a request's API key to its tenant and role (the HTTP guard calls it
  on every request; `update_settings` makes it forget a tenant's cached keys, `revoke_api_key`
  a revoked one).
- `tenant_jobs`: runs a background job tenant by tenant, one failure not stopping the rest.
- `as_stored`: a tenant as stored now, for what must follow a settings change at once
  (erasures, jobs) rather than the few seconds a key is remembered.

`ports.py`: what this area needs from storage and the outside world.
"""
