"""Fixtures of the storage contract suite: one suite, run against every storage family.

`storage` (tests/conftest.py) is parametrised over memory, SQLite and a real PostgreSQL server; the
tests here speak only to the ports, so what passes here behaves the same on every backend.
"""

from typing import Any

import pytest

from domain.tenants import Tenant
from tests.contract.builders import add_tenant


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def tenant(storage: Any) -> Tenant:
    return await add_tenant(storage)
