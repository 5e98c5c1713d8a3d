"""Use cases of sessionmeter and the ports they need. Depends only on `domain` and the stdlib."""
