"""Adapters: concrete implementations of the ports in application/<area>/ports.py."""
