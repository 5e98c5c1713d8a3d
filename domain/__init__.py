"""The sessionmeter domain: sessions, events, usage, tenants. Standard library only."""
