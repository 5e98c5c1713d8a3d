"""A revoked key is refused by every server process within 5 seconds, not only by the one that
revoked it: each process remembers a key that long at most."""

import time
from pathlib import Path

import pytest

from tests.e2e.serving import two_servers

pytestmark = pytest.mark.slow

WITHIN_SECONDS = 5


def test_a_key_revoked_on_one_server_is_refused_by_another_within_5_seconds(tmp_path: Path) -> None:
    with two_servers(tmp_path) as (one, two):
        one.operator("tenants", "create", "acme")
        admin = one.operator("keys", "create", "--tenant", "acme", "--role", "admin")
        leaked = one.operator(
            "keys", "create", "--tenant", "acme", "--role", "app", "--name", "leaked"
        )
        with one.client(admin) as on_one, two.client(leaked) as on_two:
            assert on_two.get("/v1/sessions").status_code == 200  # remembered by process two
            (key,) = [k for k in on_one.get("/v1/keys").json()["items"] if k["name"] == "leaked"]
            assert on_one.delete(f"/v1/keys/{key['id']}").status_code == 200
            revoked_at = time.monotonic()
            # Bounded by when each request was sent, not when it was answered: on a loaded
            # machine an answer may take most of a second, and the promise is about the server.
            while True:
                sent_after = time.monotonic() - revoked_at
                status = on_two.get("/v1/sessions").status_code
                if status != 200:
                    break
                assert sent_after < WITHIN_SECONDS, f"accepted {sent_after:.2f} s after"
                time.sleep(0.1)

    assert status == 401
