import pytest

from adapters.memory.storage import MemoryStorage
from tests.fakes import FakeClock


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def storage() -> MemoryStorage:
    """Unit tests use the in-memory adapter only (the contract suite covers the others)."""
    return MemoryStorage()
