"""`make mutants` mutates the steps the Makefile names (tests/mutation_scope.py)."""

import asyncio
import fnmatch

import pytest

from adapters.driver_errors import translating
from tests.mutation_scope import atomic_patterns, mutated_files, run_at_import, unmatched


def test_every_step_the_makefile_names_is_one_mutmut_mutates() -> None:
    patterns = atomic_patterns()
    assert len(patterns) > 20, patterns  # make expanded the list
    assert unmatched(patterns, mutated_files()) == []


def test_a_step_renamed_or_in_a_file_left_out_is_caught() -> None:
    patterns = [
        "adapters.*.events.x?*EventLog?append__mutmut_*",
        "adapters.*.events.x?*EventLog?_lock_sessions__mutmut_*",  # gone since
        "adapters.*.refused_starts.x?*RefusedStarts?record__mutmut_*",
    ]
    globs = ["adapters/*/events.py"]  # refused_starts.py left out
    assert unmatched(patterns, globs) == patterns[1:]


def test_no_step_the_makefile_names_runs_at_import() -> None:
    """Its mutants would all survive: mutmut forks each mutant's process from one that has
    imported the code already (tests/mutation_scope.py)."""
    ran = run_at_import(mutated_files())
    assert "adapters.sqlalchemy.asyncpg_statements.x_unnest" in ran, ran  # the probe sees calls
    named = [
        f for f in ran if any(fnmatch.fnmatchcase(f"{f}__mutmut_1", p) for p in atomic_patterns())
    ]
    assert named == []


class _DriverError(Exception):
    pass


class _Held(Exception):
    pass


@translating(_DriverError)
class _Ledger:
    """As a mutmut run leaves an adapter: a private step's body in a copy named after it."""

    async def settle(self) -> None:
        try:
            await self.xǁ_Ledgerǁ_step__mutmut_orig()
        except _DriverError as error:  # the public method's own reading of a driver error
            raise _Held from error

    async def xǁ_Ledgerǁ_step__mutmut_orig(self) -> None:
        raise _DriverError("lock timeout")


def test_a_driver_error_reaches_the_public_method_as_raised_under_mutmut() -> None:
    """Its copies of private steps are not translated (adapters/driver_errors.py): else the
    public method would meet StorageError where it reads the driver's error, and a mutation run
    would fail on the code as it is."""
    with pytest.raises(_Held):
        asyncio.run(_Ledger().settle())
