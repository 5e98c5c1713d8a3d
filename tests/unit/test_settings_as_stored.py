"""A settings change applies to what follows it, although the tenant a request's key resolved
is remembered for a few seconds per process and a job reads its tenants when its run begins:
reads of the settings and job runs take the settings as stored (erasures too:
tests/contract/test_erasure.py; rollups: tests/contract/test_calendar_and_dimensions.py)."""

from dataclasses import replace

import pytest

from adapters.memory.storage import MemoryStorage
from application.tenants.read_settings import ReadSettingsQuery
from application.tenants.tenant_jobs import each_tenant
from domain.tenants import Tenant
from entrypoints.container.use_cases import UseCaseContainer

pytestmark = pytest.mark.anyio


async def email_made_personal(storage: MemoryStorage, tenant: Tenant) -> None:
    """Through another server process: this one still remembers `tenant` as it was."""
    await storage.tenants.change_settings(
        tenant.id, lambda s: replace(s, personal_attributes=("email",))
    )


async def test_the_settings_read_are_those_stored(
    storage: MemoryStorage, use_cases: UseCaseContainer, tenant: Tenant
) -> None:
    await email_made_personal(storage, tenant)

    settings = await use_cases.read_settings()(ReadSettingsQuery(tenant))

    assert settings.personal_attributes == ("email",)


async def test_a_job_serves_each_tenant_as_stored_when_its_turn_comes(
    storage: MemoryStorage, tenant: Tenant
) -> None:
    listed = [tenant]  # as the run read them when it began
    await email_made_personal(storage, tenant)
    served: list[Tenant] = []

    async def work(current: Tenant) -> None:
        served.append(current)

    assert await each_tenant(storage.tenants, listed, work) == []
    assert [t.settings.personal_attributes for t in served] == [("email",)]
