"""The sessionmeter domain: sessions, events, usage, tenants, credits and charging, plans and
trials, LiveKit stays, rollups and reports. Standard library only."""
