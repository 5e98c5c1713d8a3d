"""Settings changed through two server processes, each of which remembers the tenant its keys
resolve (for up to 5 seconds): every change stays, and each reads back what is stored."""

from pathlib import Path

import pytest

from tests.e2e.serving import two_servers

pytestmark = pytest.mark.slow


def test_settings_changed_through_two_servers_all_stay_and_read_back_at_once(
    tmp_path: Path,
) -> None:
    with two_servers(tmp_path) as (one, two):
        one.operator("tenants", "create", "acme")
        admin = one.operator("keys", "create", "--tenant", "acme", "--role", "admin")
        with one.client(admin) as on_one, two.client(admin) as on_two:
            # Process two now remembers the tenant its key resolves, settings included.
            assert on_two.get("/v1/settings").json()["personal_attributes"] == []
            made_personal = on_one.put("/v1/settings", json={"personal_attributes": ["email"]})
            assert made_personal.status_code == 200, made_personal.text
            read_on_two = on_two.get("/v1/settings").json()
            kept_a_month = on_two.put("/v1/settings", json={"session_retention_days": 30})
            assert kept_a_month.status_code == 200, kept_a_month.text
            read_on_one = on_one.get("/v1/settings").json()

    assert read_on_two["personal_attributes"] == ["email"]
    assert (read_on_one["personal_attributes"], read_on_one["session_retention_days"]) == (
        ["email"],
        30,
    )
