"""Moving a tenant between stores: export to and import from JSON lines.

Use cases (one module each): `export_tenant`, `import_tenant`.

Not use cases, shared by them:
- `tenant_export_format`: the export's line format.

`ports.py`: what this area needs from storage and the outside world.
"""
