"""Adapters: concrete implementations of the ports in application/ports.py."""
