"""In-process storage for unit tests, demos and `memory://`: data lives as long as the process.

Every method runs without awaiting in between, so on one event loop each is atomic, which is
what the ports promise. Stored objects are copied in and out so callers never share them.
"""
