"""The ports of the health area: what its use cases need from storage and the outside world.

Whatever must be race-free is one method here; its docstring is the contract that the storage
contract suite (tests/contract) proves on every adapter with concurrent callers.
"""

from typing import Protocol


class StorageHealth(Protocol):
    async def ping(self) -> None:
        """Return when the storage answers; raise otherwise."""
        ...
