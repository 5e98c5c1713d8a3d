"""Adapters: concrete implementations of the ports in application/<area>/ports.py, of the shared
ones in application/ports.py (the clock) and of application.storage.Storage (one per family)."""
